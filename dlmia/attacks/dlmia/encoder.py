"""DL-MIA's disentangled encoder: a VAE over (standardised) difference vectors.

Two encoders read the vector: one gives the recommender-invariant latent (diagonal Gaussian,
prior N(0, I)), the other the recommender-specific latent (von Mises-Fisher on the sphere with a
uniform prior, or a diagonal Gaussian with prior N(0, I)). A decoder reconstructs the vector from
both. Reconstruction is a Gaussian likelihood with unit variance, written as the mean squared
error per coordinate (the log-likelihood up to a constant, divided by d/2), so the KL weights are
per-coordinate weights. The alignment term is a multi-bandwidth RBF MMD between the invariant
posterior means of shadow and target vectors (method.md section 6). Unlike the published code the
vector is encoded as a vector, not as a sentence of number tokens.
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any, cast

import torch
from torch import nn

from dlmia.attacks.dlmia import vmf
from dlmia.attacks.dlmia.config import DLMIAConfig


@dataclass(frozen=True)
class Posterior:
    """The encoder's output for a batch of B vectors."""

    mu_inv: torch.Tensor  # (B, latent_inv) invariant mean
    logvar_inv: torch.Tensor  # (B, latent_inv) invariant log-variance
    mu_spe: torch.Tensor  # (B, latent_spe) specific mean (a unit vector for vMF)
    spread_spe: torch.Tensor  # vMF: (B,) concentration kappa; gauss: (B, latent_spe) log-variance


def _mlp(in_dim: int, hidden: int, out_dim: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(in_dim, hidden), nn.ReLU(), nn.Linear(hidden, out_dim))


def gauss_kl(mu: torch.Tensor, logvar: torch.Tensor) -> torch.Tensor:
    """(...,) KL(N(mu, diag exp(logvar)) || N(0, I)) for (..., k) parameters."""
    return 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(-1)


def vmf_parameters(spe: torch.Tensor, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """The vMF posterior of the specific encoder's output spe (..., size + 1): unit mean
    directions (..., size) and concentrations kappa (...,) > 1."""
    direction = spe[..., :size]
    mu = direction / direction.norm(dim=-1, keepdim=True).clamp_min(1e-8)
    return mu, nn.functional.softplus(spe[..., -1]) + 1.0


def _gauss_sample(
    mu: torch.Tensor, logvar: torch.Tensor, generator: torch.Generator
) -> torch.Tensor:
    noise = torch.randn(mu.shape, generator=generator, device=mu.device, dtype=mu.dtype)  # (B, k)
    return mu + torch.exp(0.5 * logvar) * noise


class DisentangledVAE(nn.Module):
    """Invariant and specific encoders plus a decoder over d-dimensional vectors."""

    def __init__(self, dim: int, config: DLMIAConfig) -> None:
        super().__init__()
        self.vmf = config.spe_dist == "vmf"
        self.latent_inv, self.latent_spe = config.latent_inv, config.latent_spe
        spe_out = config.latent_spe + 1 if self.vmf else 2 * config.latent_spe
        self.enc_inv = _mlp(dim, config.hidden, 2 * config.latent_inv)
        self.enc_spe = _mlp(dim, config.hidden, spe_out)
        self.dec = _mlp(config.latent_inv + config.latent_spe, config.hidden, dim)

    def encode(self, x: torch.Tensor) -> Posterior:
        """Posterior parameters for x (B, d)."""
        mu_inv, logvar_inv = self.enc_inv(x).chunk(2, dim=1)  # (B, k_i) each
        spe = self.enc_spe(x)  # (B, k_s + 1) or (B, 2 k_s)
        if self.vmf:
            mu_spe, kappa = vmf_parameters(spe, self.latent_spe)  # (B, k_s), (B,)
            return Posterior(mu_inv, logvar_inv.clamp(-10, 10), mu_spe, kappa)
        mu_spe, logvar_spe = spe.chunk(2, dim=1)  # (B, k_s) each
        return Posterior(mu_inv, logvar_inv.clamp(-10, 10), mu_spe, logvar_spe.clamp(-10, 10))

    def sample(
        self, post: Posterior, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Reparameterised draws (z_inv (B, k_i), z_spe (B, k_s)) from the posterior."""
        z_inv = _gauss_sample(post.mu_inv, post.logvar_inv, generator)
        if self.vmf:
            return z_inv, vmf.sample_vmf(post.mu_spe, post.spread_spe, generator)
        return z_inv, _gauss_sample(post.mu_spe, post.spread_spe, generator)

    def decode(self, z_inv: torch.Tensor, z_spe: torch.Tensor) -> torch.Tensor:
        """(B, d) reconstruction from both latents."""
        return self.dec(torch.cat([z_inv, z_spe], dim=1))

    def kl_inv(self, post: Posterior) -> torch.Tensor:
        """(B,) KL of the invariant posterior to N(0, I)."""
        return gauss_kl(post.mu_inv, post.logvar_inv)

    def kl_spe(self, post: Posterior) -> torch.Tensor:
        """(B,) KL of the specific posterior to its prior (uniform on the sphere, or N(0, I))."""
        if self.vmf:
            return vmf.kl_to_uniform(post.spread_spe, self.latent_spe)
        return gauss_kl(post.mu_spe, post.spread_spe)


def reconstruction_error(x: torch.Tensor, x_hat: torch.Tensor) -> torch.Tensor:
    """(...,) mean squared error per coordinate between x and x_hat (..., d)."""
    return (x - x_hat).square().mean(-1)


def mmd(a: torch.Tensor, b: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    """Squared MMD (biased V-statistic, >= 0) between samples a (n, k) and b (m, k).

    The kernel is a sum of RBF kernels exp(-|x - y|^2 / (2 s k)) over the bandwidths^2 s in
    `scales` (in units of the latent size k, so N(0, I) latents see the same widths at any k).
    Written as one quadratic form w^T K w (w = 1/n on a's rows, -1/m on b's) with its gradient
    by hand (`_KernelQuadraticForm`): on a step's 256 x 256 kernel, autograd through the three
    block means cost twice the forward pass.
    """
    n, m, k = a.shape[0], b.shape[0], a.shape[1]
    weights = torch.cat([a.new_full((n,), 1 / n), a.new_full((m,), -1 / m)])  # (n + m,)
    rates = tuple(1 / (2 * s * k) for s in scales)
    value: torch.Tensor = _KernelQuadraticForm.apply(torch.cat([a, b]), weights, rates)
    return value


class _KernelQuadraticForm(torch.autograd.Function):
    """w^T K w for K_ij = sum_r exp(-r |x_i - x_j|^2) over rates r, differentiable in x (N, k).

    With S_ij = sum_r r exp(-r D_ij) and G = (w w^T) * S, the gradient is
    dL/dx_i = -4 sum_j G_ij (x_i - x_j) = -4 w_i (x_i (S w)_i - (S (w * x))_i).
    """

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weights: torch.Tensor, rates: tuple[float, ...]
    ) -> torch.Tensor:
        sq = x.square().sum(1)  # (N,)
        dist = torch.addmm(sq[:, None], x, x.T, alpha=-2).add_(sq).clamp_min_(0)  # (N, N)
        value, slope = x.new_zeros(()), None
        for rate, term in rbf_terms(dist, rates):
            value += weights @ (term @ weights)
            if ctx.needs_input_grad[0]:  # S, only for a backward pass
                slope = term * rate if slope is None else slope.add_(term, alpha=cast(float, rate))
        if slope is not None:
            ctx.save_for_backward(x, weights, slope)
        return value

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None]:
        x, weights, slope = ctx.saved_tensors
        w = weights[:, None]  # (N, 1); G = (w w^T) * S is never formed
        row_sums = w * (slope @ w)  # (N, 1) sum_j G_ij
        return -4 * grad * (x * row_sums - w * (slope @ (w * x))), None, None


def rbf_terms(
    dist: torch.Tensor, rates: tuple[float, ...], scale: torch.Tensor | None = None
) -> Iterator[tuple[float | torch.Tensor, torch.Tensor]]:
    """(rate r, exp(-r D)) for squared distances D and each rate, in ascending rate order;
    with `scale` (broadcasting with D, > 0), each rate is r * scale (one per stacked trial).

    A rate 2^j times the previous one (DL-MIA's bandwidths are a factor 4 apart) is that term
    squared j times in place: exp(-2r D) = exp(-r D)^2, a multiplication where an exp costs
    ~5x more, and no new N x N buffer. So a term is valid only until the next one is drawn.
    When every rate after the first is such a multiple, D is read once and the first term is
    formed in its buffer: D is overwritten (the callers' D is their own scratch).
    """
    ordered = sorted(rates)
    # squarings from the previous term to each rate's (None: an exp of its own)
    squarings = [None, *(_doublings(a, b) for a, b in zip(ordered, ordered[1:]))]
    in_place = all(j is not None for j in squarings[1:])
    term = dist  # the first rate always sets term before its first yield
    for rate, doublings in zip(ordered, squarings, strict=True):
        effective = rate if scale is None else scale * rate
        if doublings is None:
            term = (dist.mul_ if in_place else dist.mul)(-effective).exp_()
        else:
            for _ in range(doublings):
                term.square_()
        yield effective, term


def stacked_mmd(
    latents: torch.Tensor, n_first: int, sizes: torch.Tensor, scales: tuple[float, ...]
) -> torch.Tensor:
    """(K,) squared MMDs, as `mmd`, between rows :n_first and n_first: of each of K stacked
    samples latents (K, N, Mi) (zero-padded), trial t's bandwidths in units of sizes[t]."""
    n, m = n_first, latents.shape[1] - n_first
    weights = torch.cat([latents.new_full((n,), 1 / n), latents.new_full((m,), -1 / m)])
    rates = tuple(1 / (2 * s) for s in scales)
    value: torch.Tensor = _StackedQuadraticForm.apply(
        latents, weights, rates, 1 / sizes.to(latents)[:, None, None]
    )
    return value


class _StackedQuadraticForm(torch.autograd.Function):
    """`_KernelQuadraticForm` for K stacked samples x (K, N, k), rates r * scale[t]: (K,)."""

    @staticmethod
    def forward(
        ctx: Any, x: torch.Tensor, weights: torch.Tensor, rates: tuple[float, ...],
        scale: torch.Tensor,
    ) -> torch.Tensor:  # fmt: skip
        sq = x.square().sum(-1)  # (K, N)
        dist = torch.baddbmm(sq[:, :, None], x, x.transpose(1, 2), alpha=-2)
        dist = dist.add_(sq[:, None, :]).clamp_min_(0)  # (K, N, N)
        value, slope = x.new_zeros(x.shape[0]), None
        for rate, term in rbf_terms(dist, rates, scale):
            value += (term @ weights) @ weights
            if ctx.needs_input_grad[0]:
                rates_t = cast(torch.Tensor, rate)
                slope = term * rates_t if slope is None else slope.addcmul_(term, rates_t)
        if slope is not None:
            ctx.save_for_backward(x, weights, slope)
        return value

    @staticmethod
    def backward(ctx: Any, grad: torch.Tensor) -> tuple[torch.Tensor, None, None, None]:
        x, weights, slope = ctx.saved_tensors
        w = weights[:, None]  # (N, 1)
        row_sums = w * (slope @ w)  # (K, N, 1)
        g = grad[:, None, None]
        return -4 * g * (x * row_sums - w * (slope @ (w * x))), None, None, None


def _doublings(low: float, high: float) -> int | None:
    """j in 1..8 with high = 2^j low (to float precision), else None."""
    ratio = high / low
    j = round(math.log2(ratio)) if ratio > 1 else 0
    return j if 1 <= j <= 8 and math.isclose(ratio, 2.0**j, rel_tol=1e-12) else None
