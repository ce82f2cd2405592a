"""The DL-MIA network (optional VAE + attack heads) and the tensors it trains on.

Every loss here is per sample, so the weight estimator can weight it by sample id.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlmia.attacks.dlmia.config import DLMIAConfig
from dlmia.attacks.dlmia.encoder import DisentangledVAE, Posterior, mmd, reconstruction_error
from dlmia.attacks.dlmia.heads import AttackHeads, HeadInputs


@dataclass(frozen=True)
class TrainData:
    """Training tensors on the model's device. Sample ids index the rows of `x`."""

    x: torch.Tensor  # (n, d) standardised vectors: n_shadow shadow-train rows, then target rows
    norm: torch.Tensor | None  # (n, 1) norm feature, or None when off
    labels: torch.Tensor  # (n_shadow,) int64 membership of the shadow-train rows
    val_x: torch.Tensor  # (n_val, d) standardised held-out shadow vectors
    val_norm: torch.Tensor | None  # (n_val, 1)
    val_labels: torch.Tensor  # (n_val,) int64

    @property
    def n_shadow(self) -> int:
        return int(self.labels.shape[0])

    @property
    def n_target(self) -> int:
        return int(self.x.shape[0]) - self.n_shadow

    def norm_at(self, ids: torch.Tensor) -> torch.Tensor | None:
        """(B, 1) norm feature of samples ids (B,), or None."""
        return None if self.norm is None else self.norm[ids]


@dataclass(frozen=True)
class VAETerms:
    """Per-batch VAE loss terms (per sample where a weight applies)."""

    recon: torch.Tensor  # (B,) reconstruction error per sample
    kl_inv: torch.Tensor  # () mean invariant KL
    kl_spe: torch.Tensor  # () mean specific KL
    mmd: torch.Tensor  # () shadow-target MMD of the invariant means (0 without target rows)

    def total(self, config: DLMIAConfig, weights: torch.Tensor | None = None) -> torch.Tensor:
        """Scalar VAE loss; `weights` (B,) multiply the per-sample reconstruction errors."""
        recon = self.recon if weights is None else weights * self.recon
        return (
            recon.mean()
            + config.kl_inv * self.kl_inv
            + config.kl_spe * self.kl_spe
            + config.lambda_align * self.mmd
        )


class DLMIAModel(nn.Module):
    """The VAE (None for the no-encoder ablation) and the attack heads."""

    def __init__(self, dim: int, config: DLMIAConfig) -> None:
        super().__init__()
        self.config = config
        self.vae = DisentangledVAE(dim, config) if config.use_encoder else None
        self.heads = AttackHeads(dim, config)

    def sample_inputs(
        self, x: torch.Tensor, norm: torch.Tensor | None, generator: torch.Generator
    ) -> tuple[HeadInputs, Posterior | None]:
        """Sampled head inputs for x (B, d) and the posterior they were drawn from (None without
        the VAE). A step's only random draw: the VAE terms add none."""
        if self.vae is None:
            return HeadInputs(x, None, None, norm), None
        post = self.vae.encode(x)
        z_inv, z_spe = self.vae.sample(post, generator)  # (B, k_i), (B, k_s)
        return HeadInputs(x, z_inv, z_spe, norm), post

    def forward_train(
        self, x: torch.Tensor, norm: torch.Tensor | None, n_shadow: int, generator: torch.Generator
    ) -> tuple[HeadInputs, Posterior | None, VAETerms | None]:
        """Sampled head inputs, their posterior and the VAE terms for x (B, d), whose first
        n_shadow rows are shadow (posterior and terms None without the VAE)."""
        inputs, post = self.sample_inputs(x, norm, generator)
        if post is None:
            return inputs, None, None
        assert self.vae is not None and inputs.inv is not None and inputs.spe is not None
        recon = reconstruction_error(x, self.vae.decode(inputs.inv, inputs.spe))  # (B,)
        kl_inv, kl_spe = self.vae.kl_inv(post).mean(), self.vae.kl_spe(post).mean()
        return inputs, post, VAETerms(recon, kl_inv, kl_spe, self._mmd(post, n_shadow))

    def _mmd(self, post: Posterior, n_shadow: int) -> torch.Tensor:
        if self.config.lambda_align == 0 or n_shadow in (0, post.mu_inv.shape[0]):
            return post.mu_inv.new_zeros(())
        return mmd(post.mu_inv[:n_shadow], post.mu_inv[n_shadow:], self.config.mmd_scales)

    def mean_inputs(self, x: torch.Tensor, norm: torch.Tensor | None) -> HeadInputs:
        """Deterministic head inputs: posterior means (the vMF mean direction) for x (B, d)."""
        return posterior_means(x, None if self.vae is None else self.vae.encode(x), norm)

    @torch.no_grad()
    def proba(self, x: torch.Tensor, norm: torch.Tensor | None) -> torch.Tensor:
        """(B,) deterministic member probabilities for x (B, d)."""
        return self.heads.proba(self.mean_inputs(x, norm))


def posterior_means(
    x: torch.Tensor, post: Posterior | None, norm: torch.Tensor | None
) -> HeadInputs:
    """Head inputs of x (B, d) at the means of its posterior `post` (None: no VAE)."""
    if post is None:
        return HeadInputs(x, None, None, norm)
    return HeadInputs(x, post.mu_inv, post.mu_spe, norm)


def slice_inputs(inputs: HeadInputs, part: slice) -> HeadInputs:
    """The rows `part` of every tensor in `inputs`."""
    def cut(t: torch.Tensor | None) -> torch.Tensor | None:
        return None if t is None else t[part]

    return HeadInputs(inputs.raw[part], cut(inputs.inv), cut(inputs.spe), cut(inputs.norm))


def pseudo_labels(
    proba: torch.Tensor, tau: float | torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """Hard labels (...) int64 from member probabilities (...), and the mask (...) of confidence
    >= tau (a float, or a tensor broadcasting with proba)."""
    labels = (proba >= 0.5).long()
    keep = torch.maximum(proba, 1 - proba) >= tau
    return labels, keep


def mixture_nll(proba: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(B,) -log P(label) under member probabilities (B,): the attack loss D of a sample."""
    p_label = torch.where(labels == 1, proba, 1 - proba)
    return -torch.log(p_label.clamp_min(1e-7))


@torch.no_grad()
def sample_losses(model: DLMIAModel, data: TrainData) -> torch.Tensor:
    """(n,) current attack loss of every training sample: shadow rows against their labels, target
    rows against the model's own hard pseudo-labels (never target labels, which are not given)."""
    return own_label_losses(model.proba(data.x, data.norm), data.labels)


def own_label_losses(proba: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
    """(..., n) attack losses of member probabilities (..., n) whose first rows along the last
    axis are shadow rows with `labels` (n_shadow,), the rest target rows against the model's
    own hard labels."""
    n_shadow = labels.shape[0]
    own = (proba[..., n_shadow:] >= 0.5).long()  # the model's own hard labels
    return mixture_nll(proba, torch.cat([labels.expand(*proba.shape[:-1], -1), own], dim=-1))


@torch.no_grad()
def validation_loss(model: DLMIAModel, data: TrainData) -> float:
    """Mean -log P(true label) on the held-out shadow vectors; nan when there are none."""
    if data.val_labels.numel() == 0:
        return float("nan")
    return float(mixture_nll(model.proba(data.val_x, data.val_norm), data.val_labels).mean())
