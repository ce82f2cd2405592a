"""Label-free criteria for choosing DL-MIA's settings across runs (method.md section 8).

Held-out shadow users cannot see the shadow-to-target shift, so a trial is scored by three
criteria that read the shadow labels and the *unlabelled* target vectors only:

- shadow validation: log-loss (and ROC AUC, for the record) of the fitted attack on the shadow
  users `fit` held out (DLMIAAttack.held_out), against their true labels;
- reverse validation: a fresh logistic-regression head is fit on the target's invariant latents
  with the attack's own hard pseudo-labels, then scored (log-loss, and ROC AUC for the record)
  on the held-out shadow users with their true labels: if what the attack believes about the
  target also holds on the shadow, the beliefs transfer;
- residual discrepancy: the MMD between shadow and target invariant latents (posterior means,
  each coordinate standardised with pooled statistics, so a shrunken latent does not look
  aligned), with the attack's own kernel bandwidths, divided by their count (range [0, 2]).

`objective` combines them into one scalar (higher is better), so ASHA can rank trials:
-(w_shadow * shadow log-loss + w_reverse * reverse log-loss + w_mmd * MMD). Log-losses, not
AUCs: on easy cells every good trial reaches a held-out AUC of 1.0 and an AUC-based objective
could not tell them apart (it sat at its ceiling and picked worse trials than shadow validation
alone on 3 of the demo's 4 cells); a log-loss keeps rewarding confident, calibrated
separation. The default weights (all 1) were chosen with `bench/search.py` on four cells; its
10-cell run in bench/results/search/ (both item-vector settings, TPE and random, 16 trials each,
target metrics measured afterwards) puts their pick at 0.895 mean target ROC AUC against 0.795
for shadow validation alone (0.863 for the leave-one-cell-out choice of weights). The margin
is two cross-dataset cells where shadow validation picks an attack that fails on the target
(0.07 and 0.63); reverse validation flags both (losses 3.0 and 0.69, i.e. above and at chance,
against 0.36 and 0.015 for the trials the objective picked). On 6 of the 10 cells shadow
validation alone picks better, by 0.0001-0.14. No per-cell choice ever reads target labels.
Target membership labels are not an argument of anything in this module.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import torch
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score

from dlmia.attacks.dlmia import DLMIAAttack
from dlmia.attacks.dlmia.attack import Scaler, Side, cpu_threads
from dlmia.attacks.dlmia.encoder import mmd
from dlmia.attacks.dlmia.model import DLMIAModel
from dlmia.errors import ConfigError
from dlmia.seeding import numpy_rng

CHANCE_LOSS = float(np.log(2.0))  # log-loss of a constant 0.5: stands in where none is measured


@dataclass(frozen=True)
class SelectionConfig:
    """Weights of the label-free objective:
    -(w_shadow*loss_val + w_reverse*loss_rev + w_mmd*MMD)."""

    w_shadow: float = 1.0  # weight of the held-out shadow log-loss
    w_reverse: float = 1.0  # weight of the reverse-validation log-loss
    w_mmd: float = 1.0  # weight of the residual invariant-latent discrepancy (in [0, 2])
    max_mmd_samples: int = 1000  # per side; MMD memory is quadratic in the sample count
    reverse_c: float = 1.0  # inverse L2 strength of the reverse-validation logistic head

    def __post_init__(self) -> None:
        for key in ("w_shadow", "w_reverse", "w_mmd"):
            if getattr(self, key) < 0:
                value = getattr(self, key)
                raise ConfigError(f"{key}: must be >= 0, got {value}")
        if not 2 <= self.max_mmd_samples <= 20_000 or self.reverse_c <= 0:
            raise ConfigError(
                "need 2 <= max_mmd_samples <= 20,000 (memory grows with its square) and "
                "reverse_c > 0, got "
                f"{self.max_mmd_samples}, {self.reverse_c}"
            )


def _fitted(attack: DLMIAAttack) -> tuple[DLMIAModel, Scaler, npt.NDArray[np.bool_]]:
    if attack.model is None or attack.scaler is None or attack.held_out is None:
        raise RuntimeError("selection criteria need a fitted DLMIAAttack")
    return attack.model, attack.scaler, attack.held_out


def side_proba(
    attack: DLMIAAttack, vectors: npt.NDArray[np.float32], side: Side
) -> npt.NDArray[np.float64]:
    """(n,) member probabilities of vectors (n, d) from `side` (the norm feature's statistics)."""
    model, scaler, _ = _fitted(attack)
    x = torch.from_numpy(scaler.vectors(vectors)).to(attack.device)
    norm = scaler.norm(vectors, side)
    norm_t = None if norm is None else torch.from_numpy(norm).to(attack.device)
    with cpu_threads(attack.config.cpu_threads, attack.device):
        proba = model.proba(x, norm_t)
    return proba.double().cpu().numpy()


def invariant_latents(
    attack: DLMIAAttack, vectors: npt.NDArray[np.float32]
) -> npt.NDArray[np.float32]:
    """(n, latent_inv) invariant posterior means of vectors (n, d); the standardised vectors
    (n, d) themselves for the no-encoder ablation."""
    model, scaler, _ = _fitted(attack)
    x = scaler.vectors(vectors)
    if model.vae is None:
        return x
    with torch.no_grad(), cpu_threads(attack.config.cpu_threads, attack.device):
        mu = model.vae.encode(torch.from_numpy(x).to(attack.device)).mu_inv
    return mu.cpu().numpy()


def _auc(labels: npt.NDArray[np.int64], scores: npt.NDArray[np.float64]) -> float:
    return float(roc_auc_score(labels, scores)) if len(np.unique(labels)) == 2 else float("nan")


def _log_loss(labels: npt.NDArray[np.int64], proba: npt.NDArray[np.float64]) -> float:
    """Mean binary log-loss of member probabilities, clipped to [1e-7, 1 - 1e-7]."""
    p = np.clip(proba, 1e-7, 1 - 1e-7)
    return float(-np.mean(np.where(labels == 1, np.log(p), np.log(1 - p))))


def shadow_validation(
    attack: DLMIAAttack,
    shadow_vectors: npt.NDArray[np.float32],
    shadow_labels: npt.NDArray[np.int64],
) -> dict[str, float]:
    """ROC AUC and mean log-loss on the shadow users the fit held out (nan when none)."""
    _, _, held = _fitted(attack)
    if not held.any():
        return {"shadow_val_auc": float("nan"), "shadow_val_loss": float("nan")}
    labels = shadow_labels[held]
    proba = side_proba(attack, shadow_vectors[held], "shadow")  # (n_val,)
    return {"shadow_val_auc": _auc(labels, proba), "shadow_val_loss": _log_loss(labels, proba)}


def reverse_validation(
    attack: DLMIAAttack,
    shadow_vectors: npt.NDArray[np.float32],
    shadow_labels: npt.NDArray[np.int64],
    target_vectors: npt.NDArray[np.float32],
    config: SelectionConfig,
) -> dict[str, float]:
    """ROC AUC and log-loss on the held-out shadow users of a logistic head fit on the target's
    invariant latents with the attack's own pseudo-labels; chance (0.5, log 2) when the
    pseudo-labels are one class or no shadow user is held out."""
    _, _, held = _fitted(attack)
    pseudo = (side_proba(attack, target_vectors, "target") >= 0.5).astype(np.int64)  # (n_t,)
    if not held.any() or len(np.unique(pseudo)) < 2:
        return {"reverse_auc": 0.5, "reverse_loss": CHANCE_LOSS}
    head = LogisticRegression(C=config.reverse_c, max_iter=500)
    head.fit(invariant_latents(attack, target_vectors), pseudo)
    scores = head.predict_proba(invariant_latents(attack, shadow_vectors[held]))[:, 1]  # (n_val,)
    labels = shadow_labels[held]
    return {"reverse_auc": _auc(labels, scores), "reverse_loss": _log_loss(labels, scores)}


def residual_discrepancy(
    attack: DLMIAAttack,
    shadow_vectors: npt.NDArray[np.float32],
    target_vectors: npt.NDArray[np.float32],
    config: SelectionConfig,
) -> float:
    """MMD^2 / len(mmd_scales), in [0, 2], between pooled-standardised shadow and target
    invariant latents (a seeded subsample of at most `max_mmd_samples` per side)."""
    rng = numpy_rng(attack.seed, "selection", "mmd")
    sides = []
    for vectors in (shadow_vectors, target_vectors):
        rows = np.sort(rng.permutation(len(vectors))[: config.max_mmd_samples])
        sides.append(invariant_latents(attack, vectors[rows]).astype(np.float64))
    pooled = np.concatenate(sides)  # (n_s' + n_t', k)
    mean, std = pooled.mean(0), pooled.std(0)
    std = np.where(std > 0, std, 1.0)
    a, b = (torch.from_numpy((s - mean) / std) for s in sides)
    scales = attack.config.mmd_scales
    return float(mmd(a, b, scales)) / len(scales)


def criteria(
    attack: DLMIAAttack,
    shadow_vectors: npt.NDArray[np.float32],
    shadow_labels: npt.NDArray[np.int64],
    target_vectors: npt.NDArray[np.float32],
    config: SelectionConfig | None = None,
) -> dict[str, float]:
    """Every label-free criterion of a fitted attack, and the combined `objective` (higher better).

    Args:
        attack: a DLMIAAttack after `fit(shadow_vectors, shadow_labels, target_vectors)`.
        shadow_vectors: (n_s, d) the vectors it was fit on; shadow_labels (n_s,) their labels.
        target_vectors: (n_t, d) the unlabelled target vectors it was fit on.
    """
    config = config or SelectionConfig()
    out = shadow_validation(attack, shadow_vectors, shadow_labels)
    out.update(reverse_validation(attack, shadow_vectors, shadow_labels, target_vectors, config))
    out["residual_mmd"] = residual_discrepancy(attack, shadow_vectors, target_vectors, config)
    out["objective"] = objective(out, config)
    return out


def objective(values: dict[str, float], config: SelectionConfig) -> float:
    """-(w_shadow * shadow_val_loss + w_reverse * reverse_loss + w_mmd * residual_mmd); a loss
    that could not be measured (nan) counts as chance, log 2."""
    def loss(key: str) -> float:
        value = values[key]
        return CHANCE_LOSS if np.isnan(value) else value

    return -(
        config.w_shadow * loss("shadow_val_loss")
        + config.w_reverse * loss("reverse_loss")
        + config.w_mmd * values["residual_mmd"]
    )
