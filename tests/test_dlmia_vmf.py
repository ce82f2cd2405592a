"""The von Mises-Fisher pieces of DL-MIA: sampler moments, exact KL, its gradient."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch
from scipy import special, stats

from dlmia.attacks.dlmia import bessel, vmf


def _draws(
    dim: int, kappa: float, n: int = 20000, seed: int = 0
) -> tuple[torch.Tensor, torch.Tensor]:
    """n draws from vMF(mu, kappa) on S^{dim-1} around a fixed random direction mu, float64."""
    gen = torch.Generator().manual_seed(seed)
    mu = torch.randn(dim, generator=gen, dtype=torch.float64)
    mu = mu / mu.norm()
    mus = mu.expand(n, dim).contiguous()
    z = vmf.sample_vmf(mus, torch.full((n,), kappa, dtype=torch.float64), gen)  # (n, dim)
    return mu, z


@pytest.mark.parametrize(("dim", "kappa"), [(3, 2.0), (16, 5.0), (16, 50.0), (64, 200.0)])
def test_sampler_mean_direction_and_concentration(dim: int, kappa: float) -> None:
    mu, z = _draws(dim, kappa)
    assert torch.allclose(z.norm(dim=1), torch.ones(len(z), dtype=z.dtype), atol=1e-9)
    resultant = z.mean(0)  # E[z] = A_m(kappa) mu
    length = float(resultant.norm())
    expected = float(vmf.mean_resultant_length(torch.tensor([kappa], dtype=torch.float64), dim))
    assert length == pytest.approx(expected, abs=0.01)
    assert float(resultant @ mu) / length > 0.995  # the mean direction is mu


def test_sampler_is_reproducible_and_differentiable() -> None:
    mu = torch.randn(8, 5, generator=torch.Generator().manual_seed(1))
    mu = mu / mu.norm(dim=1, keepdim=True)
    kappa = torch.linspace(1, 20, 8, requires_grad=True)
    first = vmf.sample_vmf(mu, kappa, torch.Generator().manual_seed(3))
    second = vmf.sample_vmf(mu, kappa, torch.Generator().manual_seed(3))
    assert torch.equal(first, second)
    (first @ mu.T).diagonal().sum().backward()  # <z, mu> grows with kappa
    assert kappa.grad is not None and bool((kappa.grad > 0).all())


@pytest.mark.parametrize(("dim", "kappa"), [(3, 1.5), (16, 10.0), (32, 80.0)])
def test_kl_matches_monte_carlo(dim: int, kappa: float) -> None:
    """KL(q || U) = E_q[log q(z)] - log(1 / |S|) = kappa E<mu, z> + log C + log |S|."""
    mu, z = _draws(dim, kappa, n=40000, seed=2)
    k = torch.tensor([kappa], dtype=torch.float64)
    log_q = kappa * (z @ mu) + vmf.log_normaliser(k, dim)  # (n,) log densities
    monte_carlo = float((log_q + vmf.log_sphere_area(dim)).mean())
    exact = float(vmf.kl_to_uniform(k, dim))
    assert exact > 0
    assert exact == pytest.approx(monte_carlo, rel=0.02, abs=0.01)


def test_kl_is_zero_at_low_concentration_and_has_exact_gradient() -> None:
    tiny = vmf.kl_to_uniform(torch.tensor([1e-6], dtype=torch.float64), 10)
    assert float(tiny) == pytest.approx(0.0, abs=1e-9)
    kappa = torch.tensor([0.5, 3.0, 40.0, 900.0], dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(lambda k: vmf.kl_to_uniform(k, 12), (kappa,))


def test_kl_with_one_sphere_size_per_row_is_each_rows_own_kl() -> None:
    """Rows of kappa on spheres of different sizes (a stack of trials) in one call: bit for bit
    each row's own call, one size or several, with the exact gradient."""
    gen = torch.Generator().manual_seed(0)
    kappa = torch.rand(4, 6, generator=gen, dtype=torch.float64) * 300 + 0.1  # (A, B)
    kappa[1, 0] = 3e5  # beyond the tables: scipy directly
    for dims in ([8, 16, 8, 32], [16, 16, 16, 16]):
        rows = vmf.kl_to_uniform(kappa, dims)
        for a, dim in enumerate(dims):
            assert torch.equal(rows[a], vmf.kl_to_uniform(kappa[a], dim))
    leaf = kappa[:, 1:].clone().requires_grad_(True)  # inside the tables: smooth to 1e-12
    assert torch.autograd.gradcheck(lambda k: vmf.kl_to_uniform(k, [8, 16, 8, 32]), (leaf,))


def test_uniform_sphere_area() -> None:
    assert math.exp(vmf.log_sphere_area(3)) == pytest.approx(4 * math.pi)
    assert math.exp(vmf.log_sphere_area(2)) == pytest.approx(2 * math.pi)


@pytest.mark.parametrize("order", [0.0, 0.5, 3.0, 7.0, 15.5, 63.0])
def test_tabulated_bessel_terms_match_scipy(order: float) -> None:
    """The tables (and the scipy path outside them) give I_{v+1}/I_v and log I_v to 1e-10."""
    kappa = np.exp(np.random.default_rng(0).uniform(np.log(0.05), np.log(1e6), 5000))
    kappa[:2] = np.exp(bessel.LOG_K_RANGE)  # both ends of the table; 0.05 and 1e6 lie outside
    ratio, log_iv = bessel.ratio_and_log_iv(order, kappa)
    assert np.allclose(ratio, special.ive(order + 1, kappa) / special.ive(order, kappa),
                       rtol=1e-10, atol=0)
    assert np.allclose(log_iv, np.log(special.ive(order, kappa)) + kappa, rtol=1e-10, atol=1e-10)


@pytest.mark.parametrize(("dim", "kappa"), [(3, 2.0), (8, 1.0), (16, 5.0), (16, 50.0), (64, 3.0)])
def test_sampled_w_follows_its_exact_density(dim: int, kappa: float) -> None:
    """w = <mu, z> has density proportional to exp(kappa w) (1 - w^2)^((m-3)/2) on [-1, 1]:
    a KS test of 20,000 draws (fixed seed) against its CDF, integrated on a fine grid."""
    b = vmf.wood_b(torch.full((20000,), kappa, dtype=torch.float64), dim - 1.0)
    w = vmf.sample_w(b, vmf.accepted_eps(b, dim, torch.Generator().manual_seed(5))).numpy()
    grid = np.linspace(-1, 1, 400001)[1:-1]
    log_density = kappa * grid + (dim - 3) / 2 * np.log1p(-(grid**2))
    cdf = np.cumsum(np.exp(log_density - log_density.max()))
    result = stats.kstest(w, lambda x: np.interp(x, grid, cdf / cdf[-1]))
    assert result.pvalue > 0.01


@pytest.mark.parametrize("dim", [2, 3, 5, 16, 65])
def test_symmetric_beta_draws_follow_beta(dim: int) -> None:
    u = torch.rand((2, 50000), generator=torch.Generator().manual_seed(2), dtype=torch.float64)
    eps = vmf._symmetric_beta(u[0], u[1], dim).numpy()
    shape = (dim - 1) / 2
    assert stats.kstest(eps, stats.beta(shape, shape).cdf).pvalue > 0.01
