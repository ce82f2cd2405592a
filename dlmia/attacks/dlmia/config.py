"""DL-MIA's settings: one frozen dataclass, checked on construction (method.md section 6).

`norm_feature` defaults to `side`: each head also reads the log-norm of the difference vector,
z-scored within its own side (shadow or target), a rotation-invariant signal that survives the
unaligned item spaces of two datasets (method.md sections 4 and 8). Measured (ROC AUC, seed 0,
off -> side): Digital Music ItemCF -> ML-1M LFM with all-histories vectors 0.583 -> 0.968,
Digital Music LFM -> ML-1M ItemCF 0.678 -> 0.960 (0.854 -> 0.882 with vectorization vectors);
same-dataset ML-1M and Digital Music cells within +-0.007; one cell lost: ML-1M LFM -> Digital
Music LFM with vectorization vectors, 0.859 -> 0.691 (the search space keeps `off`).

The ablations of the issue are switches here: `use_encoder=False` (heads on the raw vector with
DL-MIA's training), `use_weights=False` (w = 1, no weight phase), `lambda_align=0` (no alignment)
and `use_pseudo_labels=False`. Seed and device are the Attack's, not settings.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from dlmia.config import MAX_WIDTH, check_domain
from dlmia.errors import ConfigError


@dataclass(frozen=True)
class DLMIAConfig:
    """Every DL-MIA setting. Head weights: `alpha` raw vector, `beta` invariant, rest specific."""

    latent_inv: int = 16  # size of the recommender-invariant (Gaussian) latent
    latent_spe: int = 16  # size of the recommender-specific latent (vMF: a unit vector in R^n)
    spe_dist: Literal["vmf", "gauss"] = "vmf"  # distribution of the specific latent
    hidden: int = 64  # width of the encoders' and the decoder's hidden layer
    kl_inv: float = 0.01  # weight of KL(invariant posterior || N(0, I))
    kl_spe: float = 0.001  # weight of KL(specific posterior || uniform on sphere, or N(0, I))
    lambda_align: float = 1.0  # weight of the shadow-target MMD of invariant latents (0 = off)
    mmd_scales: tuple[float, ...] = (0.25, 1.0, 4.0)  # RBF bandwidths^2, in units of latent_inv
    head: Literal["mix", "concat"] = "mix"  # three heads mixed by alpha/beta, or one on the concat
    alpha: float = 0.2  # mix weight of the head on the raw vector
    beta: float = 0.6  # mix weight of the invariant-latent head (specific: 1 - alpha - beta)
    norm_feature: Literal["off", "pooled", "side"] = "side"  # log-norm head input (heads.py)
    tau: float = 0.9  # keep a target pseudo-label when the model's confidence is >= tau
    period: int = 5  # stage 3 alternates joint and weight phases every `period` epochs
    lambda_w: float = 1.0  # pull of the sample weights w(p) towards 1 (larger = milder weighting)
    lr_estimator: float = 0.05  # Adam learning rate of the scores p and the map w
    epochs_vae: int = 40  # stage 1: VAE epochs
    epochs_heads: int = 30  # stage 2: attack-head epochs (VAE frozen)
    epochs_joint: int = 30  # stage 3: alternating epochs (joint and weight phases together)
    patience: int = 10  # stop a stage after this many epochs with no better held-out loss; 0 off
    batch_size: int = 128  # samples per side (shadow and target) in each step
    lr: float = 1e-3  # Adam learning rate of the VAE and the heads
    weight_decay: float = 1e-5  # Adam weight decay of the VAE and the heads
    grad_clip: float = 5.0  # gradient-norm clipping of every update
    cpu_threads: int = 1  # torch threads in fit/predict on CPU (1 is fastest); 0 = leave as is
    val_fraction: float = 0.1  # held-out shadow users for early stopping and model selection
    use_encoder: bool = True  # ablation: False = heads on the raw vector only, no VAE
    use_weights: bool = True  # ablation: False = every sample weight is 1 and no weight phase
    use_pseudo_labels: bool = True  # ablation: False = target vectors get no attack loss

    def __post_init__(self) -> None:
        def bad(key: str, rule: str) -> ConfigError:
            return ConfigError(f"attack.dlmia.{key}: {rule}, got {getattr(self, key)!r}")

        for key in ("latent_inv", "latent_spe", "hidden", "batch_size", "period"):
            if getattr(self, key) < 1:
                raise bad(key, "must be >= 1")
        sizes = ("latent_inv", "latent_spe", "hidden")
        check_domain(self, at_most=dict.fromkeys(sizes, MAX_WIDTH))
        if self.spe_dist == "vmf" and self.latent_spe < 2:
            raise bad("latent_spe", "must be >= 2 with spe_dist vmf")
        for key in ("epochs_vae", "epochs_heads", "epochs_joint", "patience", "cpu_threads",
                    "kl_inv", "kl_spe", "lambda_align", "weight_decay"):
            if getattr(self, key) < 0:
                raise bad(key, "must be >= 0")
        for key in ("lambda_w", "lr", "lr_estimator", "grad_clip"):
            if not getattr(self, key) > 0:
                raise bad(key, "must be > 0")
        if not self.mmd_scales or min(self.mmd_scales) <= 0:
            raise bad("mmd_scales", "need one or more positive values")
        if not (0 <= self.alpha <= 1 and 0 <= self.beta <= 1 and self.alpha + self.beta <= 1):
            raise ConfigError(
                "attack.dlmia.alpha, attack.dlmia.beta: need 0 <= alpha, beta and "
                f"alpha + beta <= 1, got alpha={self.alpha}, beta={self.beta}"
            )
        if not 0.5 <= self.tau < 1:
            raise bad("tau", "must be in [0.5, 1)")
        if not 0 <= self.val_fraction < 0.5:
            raise bad("val_fraction", "must be in [0, 0.5)")

    @property
    def mix_weights(self) -> tuple[float, float, float]:
        """Weights of the (raw, invariant, specific) heads; (1, 0, 0) without the encoder."""
        if not self.use_encoder:
            return (1.0, 0.0, 0.0)
        return (self.alpha, self.beta, 1.0 - self.alpha - self.beta)
