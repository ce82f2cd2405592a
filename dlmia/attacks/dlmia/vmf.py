"""The von Mises-Fisher distribution on the unit sphere S^{m-1}: a reparameterised sampler and the
exact KL divergence to the uniform distribution (DL-MIA's recommender-specific latent).

The sampler is Wood's (1994) algorithm as used by Davidson et al., "Hyperspherical Variational
Auto-Encoders" (UAI 2018): draw the component w = <z, mu> by rejection, a uniform direction
orthogonal to e1, then reflect e1 onto mu with a Householder map. Here the rejection loop is
batch-vectorised: candidates for the whole batch are drawn in blocks of rounds, a new block only
while some sample is still unaccepted, at most MAX_BLOCKS blocks, each candidate from three
uniforms (its Beta draw by Ulrich's (1984) two-uniform method); every random draw comes from a
passed `torch.Generator` (deterministic for a seed). Gradients reach mu exactly and kappa through
the accepted w (the reparameterised term of Davidson et al.; their rejection
correction term is left out, as in their reference code).

The density is C_m(kappa) exp(kappa <mu, z>) with
log C_m(kappa) = v log kappa - (v + 1) log(2 pi) - log I_v(kappa), v = m/2 - 1,
so KL(vMF || U) = kappa A_m(kappa) + log C_m(kappa) + log |S^{m-1}|, with the mean resultant
length A_m(kappa) = I_{m/2}(kappa) / I_{m/2-1}(kappa) = E<mu, z>.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from dlmia.attacks.dlmia.bessel import ratio_and_log_iv

ROUND_BLOCK = 4  # candidates per sample per block; a block is drawn while some are unaccepted
MAX_BLOCKS = 5  # at most 20 candidates: Wood's acceptance is >= 0.67, so all fail w.p. < 3e-10


def _numpy_terms(kappa: torch.Tensor, dim: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """kappa as float64 numpy, A_m(kappa) and log C_m(kappa) (see the module doc), no gradient."""
    k = kappa.detach().double().cpu().numpy()
    return (k, *_terms(k, dim))


def _terms(k: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """A_m(k) and log C_m(k) for float64 concentrations k."""
    order = dim / 2 - 1
    ratio, log_iv = ratio_and_log_iv(order, k)
    log_c = order * np.log(k) - (order + 1) * math.log(2 * math.pi) - log_iv
    return ratio, log_c


class _KLToUniform(torch.autograd.Function):
    """KL(vMF(., kappa) || U(S^{m-1})) and its exact derivative dKL/dk = k (1 - A^2) - (m - 1) A.

    (From d/dk log I_v = A + v/k and A'(k) = 1 - A^2 - (m - 1) A / k.) Evaluated in float64 on the
    CPU from scipy's values, tabulated (bessel.py); the transfer is one array each way, whatever
    the number of sphere sizes (`dims`: one m, or one per row of kappa).
    """

    @staticmethod
    def forward(ctx: Any, kappa: torch.Tensor, dims: int | tuple[int, ...]) -> torch.Tensor:
        k = kappa.detach().double().cpu().numpy()
        kl, slope = np.empty_like(k), np.empty_like(k)
        for dim, rows in _rows_by_dim(dims):
            kl[rows], slope[rows] = _kl_and_slope(k[rows], dim)
        ctx.save_for_backward(torch.from_numpy(slope).to(kappa))
        return torch.from_numpy(kl).to(kappa)

    @staticmethod
    def backward(ctx: Any, grad_output: torch.Tensor) -> tuple[torch.Tensor, None]:
        (slope,) = ctx.saved_tensors
        return grad_output * slope, None


def _rows_by_dim(dims: int | tuple[int, ...]) -> list[tuple[int, Any]]:
    """(m, the rows of kappa on S^{m-1}) per distinct m: every row for one m."""
    if isinstance(dims, int) or len(set(dims)) == 1:
        return [(dims if isinstance(dims, int) else dims[0], slice(None))]
    per_row = np.asarray(dims)
    return [(dim, np.flatnonzero(per_row == dim)) for dim in dict.fromkeys(dims)]


def _kl_and_slope(k: np.ndarray, dim: int) -> tuple[np.ndarray, np.ndarray]:
    """KL to the uniform on S^{dim-1} at concentrations k (float64), and its k-derivative."""
    ratio, log_c = _terms(k, dim)
    kl = k * ratio + log_c + log_sphere_area(dim)
    return kl, k * (1 - ratio**2) - (dim - 1) * ratio


def mean_resultant_length(kappa: torch.Tensor, dim: int) -> torch.Tensor:
    """A_m(kappa) = E<mu, z> for z ~ vMF(mu, kappa) on S^{dim-1}; (...) like kappa, no gradient."""
    _, ratio, _ = _numpy_terms(kappa, dim)
    return torch.from_numpy(ratio).to(kappa)


def log_normaliser(kappa: torch.Tensor, dim: int) -> torch.Tensor:
    """log C_m(kappa), the log normaliser of vMF on S^{dim-1}; (...) like kappa, no gradient."""
    _, _, log_c = _numpy_terms(kappa, dim)
    return torch.from_numpy(log_c).to(kappa)


def log_sphere_area(dim: int) -> float:
    """log of the surface area of S^{dim-1}: log(2 pi^{dim/2} / Gamma(dim/2))."""
    return math.log(2.0) + dim / 2 * math.log(math.pi) - math.lgamma(dim / 2)


def kl_to_uniform(kappa: torch.Tensor, dim: int | Sequence[int]) -> torch.Tensor:
    """Exact KL(vMF(., kappa) || Uniform(S^{dim-1})) per sample (mu-free), differentiable.

    Args:
        kappa: (B,) concentrations > 0; (A, B) with one dim per row.
        dim: the ambient dimension m (the sphere is S^{m-1}), or (A,) of them, one per row.

    Returns:
        KL divergences in nats (>= 0), like kappa.
    """
    return _KLToUniform.apply(kappa, dim if isinstance(dim, int) else tuple(dim))


def wood_b(kappa: torch.Tensor, m1: float | torch.Tensor) -> torch.Tensor:
    """b = (m-1) / (2 kappa + sqrt(4 kappa^2 + (m-1)^2)) of Wood's sampler, in its stable form;
    (...) like kappa, differentiable; m1 = m - 1, a float or a tensor broadcasting with kappa."""
    width = m1 if isinstance(m1, torch.Tensor) else kappa.new_tensor(m1)
    return m1 / (2 * kappa + torch.hypot(2 * kappa, width))


def accepted_eps(b: torch.Tensor, dim: int, generator: torch.Generator) -> torch.Tensor:
    """Wood's rejection sampler for w = <mu, z>: each sample's first accepted eps, all samples at
    once, candidates in blocks, no autograd (`sample_w` forms w from it).

    A candidate is eps ~ Beta((m-1)/2, (m-1)/2) (`_symmetric_beta`), giving
    w = (1 - (1+b) eps) / (1 - (1-b) eps) with b = `wood_b(kappa, m - 1)`.
    Wood's test (m-1) log t - t + d >= log u, t = 2ab / (1 - (1-b) eps), simplifies:
    a = (m-1)(1+b) / (4b) makes d = 4ab / (1+b) - (m-1) log(m-1) the constant
    (m-1)(1 - log(m-1)), so with s = t / (m-1) = (1+b) / (2 (1 - (1-b) eps)) it reads
    log s - s + 1 >= log(u) / (m-1).

    Args:
        b: (B,) Wood's b of each sample.
        dim: m >= 2.
        generator: source of every draw.

    Returns:
        (B,) accepted eps.
    """
    m1 = dim - 1.0
    n = b.shape[0]
    opts: dict[str, Any] = {"generator": generator, "device": b.device, "dtype": b.dtype}
    with torch.no_grad():
        half_1pb, one_mb = ((1 + b) / 2).unsqueeze(1), (1 - b).unsqueeze(1)  # (B, 1) each
        eps_out = torch.zeros_like(b)  # (B,)
        todo = torch.ones(n, dtype=torch.bool, device=b.device)  # (B,) not yet accepted
        for block in range(MAX_BLOCKS):
            u = torch.rand((3, n, ROUND_BLOCK), **opts)  # (3, B, R)
            eps = _symmetric_beta(u[0], u[1], dim)  # (B, R)
            log_u = u[2].log().div_(m1)  # (B, R); u = 0 accepts
            s = half_1pb / (1 - one_mb * eps)  # (B, R)
            accept = s.log() - s + 1 >= log_u  # (B, R)
            if block == MAX_BLOCKS - 1:  # the last candidate stands in for a sample never accepted
                accept[:, -1] = True
            first = accept.int().argmax(1, keepdim=True)  # (B, 1) first accepted round
            take = todo & accept.any(1)  # (B,)
            eps_out = torch.where(take, eps.gather(1, first).squeeze(1), eps_out)
            todo &= ~take
            if not bool(todo.any()):
                break
    return eps_out


def accepted_eps_rows(
    b: torch.Tensor, dims: Sequence[int], generators: Sequence[torch.Generator]
) -> torch.Tensor:
    """`accepted_eps` for A rows of samples at once, row a on S^{dims[a]-1} drawing from
    generators[a] exactly the blocks a lone call would: (A, B) eps for b (A, B)."""
    rows, n = b.shape
    m1 = b.new_tensor([d - 1.0 for d in dims])[:, None, None]  # (A, 1, 1)
    power = b.new_tensor([2 / (d - 2) if d > 2 else 0.0 for d in dims])[:, None, None]
    circle = b.new_tensor([d == 2 for d in dims], dtype=torch.bool)[:, None, None]
    opts: dict[str, Any] = {"device": b.device, "dtype": b.dtype}
    with torch.no_grad():
        half_1pb, one_mb = ((1 + b) / 2).unsqueeze(-1), (1 - b).unsqueeze(-1)  # (A, B, 1)
        eps_out = torch.zeros_like(b)
        todo = torch.ones_like(b, dtype=torch.bool)  # (A, B) not yet accepted
        for block in range(MAX_BLOCKS):
            drawing = todo.any(1).tolist()  # a row draws a block only while it needs one
            u = torch.empty((rows, 3, n, ROUND_BLOCK), **opts)
            for a, more in enumerate(drawing):
                if more:
                    torch.rand((3, n, ROUND_BLOCK), generator=generators[a], out=u[a])
                else:
                    u[a].fill_(1.0)
            cos = torch.cos(u[:, 1] * (2 * math.pi))
            spread = torch.where(circle, 1.0, (1 - u[:, 0].pow(power)).sqrt_())
            eps = (cos * spread).mul_(0.5).add_(0.5)  # (A, B, R) symmetric Beta draws
            log_u = u[:, 2].log() / m1
            s = half_1pb / (1 - one_mb * eps)
            accept = s.log() - s + 1 >= log_u  # (A, B, R)
            if block == MAX_BLOCKS - 1:
                accept[..., -1] = True
            first = accept.int().argmax(-1, keepdim=True)
            take = todo & accept.any(-1)
            eps_out = torch.where(take, eps.gather(-1, first).squeeze(-1), eps_out)
            todo &= ~take
            if not bool(todo.any()):
                break
    return eps_out


def sample_w(b: torch.Tensor, eps: torch.Tensor) -> torch.Tensor:
    """w = (1 - (1+b) eps) / (1 - (1-b) eps) in [-1, 1], differentiable in b; (...) like b."""
    w = (1 - (1 + b) * eps) / (1 - (1 - b) * eps)
    return w.clamp(-1.0, 1.0)


def _symmetric_beta(u1: torch.Tensor, u2: torch.Tensor, dim: int) -> torch.Tensor:
    """Beta((m-1)/2, (m-1)/2) draws from two uniforms (Ulrich 1984):
    1/2 + sqrt(1 - u1^(2/(m-2))) cos(2 pi u2) / 2, the arcsine law's cos term alone for m = 2.
    Two uniforms per draw where X / (X + Y) with X, Y ~ chi^2_{m-1} needs 2(m - 1) normals."""
    cos = torch.cos(u2 * (2 * math.pi))
    if dim > 2:
        cos *= (1 - u1.pow(2 / (dim - 2))).sqrt_()
    return cos.mul_(0.5).add_(0.5)


def sample_vmf(mu: torch.Tensor, kappa: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
    """Reparameterised draws z ~ vMF(mu, kappa), one per row.

    Args:
        mu: (B, m) unit mean directions, m >= 2.
        kappa: (B,) concentrations > 0.
        generator: source of every draw (on mu's device).

    Returns:
        (B, m) unit vectors.
    """
    dim = mu.shape[1]
    b = wood_b(kappa, dim - 1.0)  # (B,)
    w = sample_w(b, accepted_eps(b, dim, generator)).unsqueeze(1)  # (B, 1)
    v = torch.randn(mu.shape[0], dim - 1, generator=generator, device=mu.device, dtype=mu.dtype)
    return rotate_to(mu, w, v)


def rotate_to(mu: torch.Tensor, w: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """Draws around e1, z = (w, sqrt(1 - w^2) v / |v|), reflected to the mean directions mu.

    Args:
        mu: (..., m) unit mean directions (zero padding after a row's own size is kept zero).
        w: (..., 1) components along the mean.
        v: (..., m-1) Gaussian directions (zeros where mu is padded).

    Returns:
        (..., m) unit vectors.
    """
    v = v / v.norm(dim=-1, keepdim=True).clamp_min(1e-12)  # (..., m-1) uniform on S^{m-2}
    z = torch.cat([w, torch.sqrt((1 - w**2).clamp_min(1e-12)) * v], dim=-1)  # around e1
    e1 = torch.zeros_like(mu)
    e1[..., 0] = 1.0
    h = e1 - mu  # (..., m) Householder direction mapping e1 to mu
    h = h / h.norm(dim=-1, keepdim=True).clamp_min(1e-12)
    return z - 2 * (z * h).sum(-1, keepdim=True) * h
