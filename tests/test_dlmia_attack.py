"""DL-MIA: settings, shapes, ablations, determinism, each loss term, shifted synthetic cells."""

from __future__ import annotations

import dataclasses
import json
from typing import Any

import numpy as np
import pytest
import torch
from scipy.stats import ortho_group

from dlmia.attacks import make_attack
from dlmia.attacks.biased import BiasedAttack
from dlmia.attacks.dlmia import DLMIAAttack, DLMIAConfig
from dlmia.attacks.dlmia.encoder import DisentangledVAE, mmd, rbf_terms
from dlmia.attacks.dlmia.estimator import WeightEstimator
from dlmia.attacks.dlmia.model import DLMIAModel, posterior_means, slice_inputs
from dlmia.attacks.dlmia.schedule import LossSums
from dlmia.errors import ConfigError
from dlmia.metrics import attack_metrics

SMALL = DLMIAConfig(
    latent_inv=4, latent_spe=4, hidden=32, epochs_vae=4, epochs_heads=4, epochs_joint=6, period=2,
    batch_size=64,
)


def shifted_cell(n: int, dim: int, seed: int, scale: float = 3.0) -> tuple[np.ndarray, ...]:
    """Shadow and target vectors from one membership model in two unaligned spaces.

    Members: N(0, 0.8^2 I); non-members: N(-c, I) with c = 2.5 e_0 (further from the origin).
    The target side is the same model seen through an orthogonal map R that sends e_0 to a
    direction orthogonal to e_0 (the item spaces of two datasets are not aligned), times `scale`.
    Only distances to the origin (the norm signal of method.md section 8) mean the same on both.

    Returns:
        shadow vectors (n, dim), shadow labels (n,), target vectors (n, dim), target labels (n,).
    """
    rng = np.random.default_rng(seed)
    offset = np.zeros(dim)
    offset[0] = 2.5

    def side() -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n)
        spread = np.where(labels[:, None] == 1, 0.8, 1.0)
        return rng.normal(size=(n, dim)) * spread - (1 - labels[:, None]) * offset, labels

    shadow, shadow_labels = side()
    target, target_labels = side()
    rotation = ortho_group.rvs(dim, random_state=seed)
    h = rotation[:, 0] - np.eye(dim)[1]
    h /= np.linalg.norm(h)
    mapping = (np.eye(dim) - 2 * np.outer(h, h)) @ rotation  # orthogonal, maps e_0 to e_1
    target = scale * target @ mapping.T
    return shadow.astype(np.float32), shadow_labels, target.astype(np.float32), target_labels


@pytest.fixture(scope="module")
def cell() -> tuple[np.ndarray, ...]:
    return shifted_cell(200, 12, seed=0)


@pytest.mark.parametrize(
    ("override", "key"),
    [
        ({"alpha": 0.7, "beta": 0.4}, "attack.dlmia.alpha"),
        ({"tau": 1.0}, "attack.dlmia.tau"),
        ({"tau": 0.4}, "attack.dlmia.tau"),
        ({"val_fraction": 0.5}, "attack.dlmia.val_fraction"),
        ({"latent_spe": 1}, "attack.dlmia.latent_spe"),
        ({"lr": 0.0}, "attack.dlmia.lr"),
        ({"head": "sum"}, "attack.dlmia.head"),
        ({"no_such_key": 1}, "attack.dlmia.no_such_key"),
    ],
)
def test_bad_settings_raise_config_error_naming_the_key(override: dict, key: str) -> None:
    with pytest.raises(ConfigError, match=key):
        make_attack("dlmia", override)


def test_registry_builds_dlmia_with_settings() -> None:
    attack = make_attack("dlmia", {"lambda_align": 0, "spe_dist": "gauss"}, device="cpu", seed=3)
    assert isinstance(attack, DLMIAAttack)
    assert attack.config.lambda_align == 0.0 and attack.config.spe_dist == "gauss"
    assert attack.config.mix_weights == pytest.approx((0.2, 0.6, 0.2))


@pytest.mark.parametrize("spe_dist", ["vmf", "gauss"])
def test_vae_shapes(spe_dist: str) -> None:
    vae = DisentangledVAE(12, dataclasses.replace(SMALL, spe_dist=spe_dist, latent_spe=5))
    x = torch.randn(7, 12)
    post = vae.encode(x)
    z_inv, z_spe = vae.sample(post, torch.Generator().manual_seed(0))
    assert z_inv.shape == (7, 4) and z_spe.shape == (7, 5)
    assert vae.decode(z_inv, z_spe).shape == (7, 12)
    assert vae.kl_inv(post).shape == (7,) and vae.kl_spe(post).shape == (7,)
    if spe_dist == "vmf":
        assert torch.allclose(z_spe.norm(dim=1), torch.ones(7), atol=1e-5)
        assert post.spread_spe.shape == (7,) and bool((post.spread_spe >= 1).all())


@pytest.mark.parametrize("override", [{}, {"use_encoder": False}, {"norm_feature": "off"}])
def test_training_shortcuts_equal_what_they_replace(override: dict) -> None:
    """A joint step reads its pseudo-labels at the posterior means it already computed, and the
    frozen-VAE head step draws its latents without the VAE terms: both give the numbers (and
    leave the generator in the state) of the full computations they stand in for."""
    model = DLMIAModel(12, dataclasses.replace(SMALL, **override))
    x, norm = torch.randn(10, 12), torch.randn(10, 1)
    norm_in = None if override.get("norm_feature") == "off" else norm
    full, short = torch.Generator().manual_seed(4), torch.Generator().manual_seed(4)
    inputs, post, _ = model.forward_train(x, norm_in, 6, full)
    sampled, _ = model.sample_inputs(x, norm_in, short)
    for field in dataclasses.fields(inputs):
        a, b = getattr(inputs, field.name), getattr(sampled, field.name)
        assert (a is None and b is None) or torch.equal(a, b)
    assert torch.equal(torch.rand(3, generator=full), torch.rand(3, generator=short))
    with torch.no_grad():
        reused = model.heads.proba(slice_inputs(posterior_means(x, post, norm_in), slice(6, None)))
    assert torch.equal(reused, model.proba(x[6:], None if norm_in is None else norm_in[6:]))


def test_mmd_is_zero_for_equal_sets_and_grows_with_shift() -> None:
    a = torch.randn(64, 4, generator=torch.Generator().manual_seed(0))
    assert float(mmd(a, a, (1.0,))) == pytest.approx(0.0, abs=1e-6)
    assert float(mmd(a, a + 0.5, (0.25, 1.0))) < float(mmd(a, a + 2.0, (0.25, 1.0)))


def _block_mmd(a: torch.Tensor, b: torch.Tensor, scales: tuple[float, ...]) -> torch.Tensor:
    """The MMD written out as the three block means of the summed RBF kernel, for autograd."""
    both = torch.cat([a, b])
    dist = torch.cdist(both, both).square()
    kernel = sum(torch.exp(-dist / (2 * s * a.shape[1])) for s in scales)
    assert isinstance(kernel, torch.Tensor)
    n = len(a)
    return kernel[:n, :n].mean() + kernel[n:, n:].mean() - 2 * kernel[:n, n:].mean()


@pytest.mark.parametrize("scales", [(0.25, 1.0, 4.0), (3.0, 0.3, 1.5, 0.7), (1.0,)])
def test_mmd_value_and_hand_written_gradient_match_autograd(scales: tuple[float, ...]) -> None:
    """DL-MIA's bandwidths (a factor 4 apart: squared terms), a mix of squared and exp terms
    in any order, and a single bandwidth."""
    gen = torch.Generator().manual_seed(3)
    x = torch.randn(31, 5, generator=gen, dtype=torch.float64, requires_grad=True)
    shift = torch.cat([torch.zeros(19, 5), torch.full((12, 5), 0.7)]).double()
    mine = mmd((x + shift)[:19], (x + shift)[19:], scales)
    reference = _block_mmd((x + shift)[:19], (x + shift)[19:], scales)
    (grad_mine,) = torch.autograd.grad(mine, x)
    (grad_reference,) = torch.autograd.grad(reference, x)
    assert float(mine.detach()) == pytest.approx(float(reference.detach()), rel=1e-10)
    assert torch.allclose(grad_mine, grad_reference, rtol=1e-8, atol=1e-12)
    shifted = (x.detach() + shift).requires_grad_()
    assert torch.autograd.gradcheck(lambda t: mmd(t[:19], t[19:], scales), (shifted,))
    with torch.no_grad():  # no backward pass: the same value
        assert float(mmd(x[:19], x[19:], scales)) == pytest.approx(
            float(_block_mmd(x[:19], x[19:], scales)), rel=1e-10
        )


def test_rbf_terms_square_a_term_only_for_power_of_two_rate_ratios(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    dist = torch.rand(40, 40, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    rates = (2.4, 0.1, 0.2, 0.3, 0.3)  # 0.2 = 2 x 0.1 and 2.4 = 8 x 0.3 are squared
    exps: list[torch.Tensor] = []

    def counted_exp_(t: torch.Tensor) -> torch.Tensor:
        exps.append(t)
        return torch.exp(t, out=t)

    monkeypatch.setattr(torch.Tensor, "exp_", counted_exp_)
    drawn = []
    for rate, term in rbf_terms(dist * 9, rates):  # a term is valid until the next is drawn
        assert torch.allclose(term, (-rate * dist * 9).exp(), rtol=1e-12, atol=0)
        drawn.append(rate)
    assert drawn == sorted(rates)
    assert len(exps) == 3  # 0.1, 0.3, 0.3


def test_weight_estimator_keeps_scores_by_id_and_fits_the_ratio() -> None:
    est = WeightEstimator(6, lambda_w=1.0)
    d1 = torch.tensor([0.1, 0.2, 0.3, 0.1, 0.2, 0.3])
    d2 = torch.tensor([0.2, 0.8, 0.6, 0.5, 0.4, 0.3])  # target p = d1 / d2 in (0, 1]
    optimizer = torch.optim.Adam(est.parameters(), lr=0.1)
    ids = torch.arange(6)
    for step in range(250):
        perm = ids[torch.randperm(6, generator=torch.Generator().manual_seed(step))]
        optimizer.zero_grad()
        est.loss(perm, d1[perm], d2[perm]).backward()
        optimizer.step()
    assert torch.allclose(est.scores(ids)[:5], (d1 / d2)[:5], atol=0.03)
    weights = est.weights(torch.tensor([4, 0, 2]))
    assert float(weights.mean()) == pytest.approx(1.0) and bool((weights > 0).all())


@pytest.mark.parametrize(
    "override",
    [
        {},
        {"spe_dist": "gauss"},
        {"head": "concat"},
        {"use_encoder": False},
        {"use_weights": False},
        {"lambda_align": 0.0},
        {"use_pseudo_labels": False},
        {"norm_feature": "off", "val_fraction": 0.0},
    ],
    ids=lambda o: ",".join(f"{k}={v}" for k, v in o.items()) or "default",
)
def test_fit_predict_shapes_and_info(cell: tuple[np.ndarray, ...], override: dict) -> None:
    shadow, labels, target, _ = cell
    attack = DLMIAAttack(dataclasses.replace(SMALL, **override), device="cpu", seed=1)
    proba = attack.fit(shadow, labels, target).predict_proba(target[:17])
    assert proba.shape == (17,) and proba.dtype == np.float64
    assert bool(((proba >= 0) & (proba <= 1)).all())
    info = attack.info
    json.dumps(info)  # a result row must be able to carry it
    for stage in ("vae", "heads", "joint", "fit"):
        assert info[f"{stage}_seconds"] >= 0
    assert info["settings"]["use_encoder"] == attack.config.use_encoder
    assert 0 <= info["pseudo_labels_kept"] <= len(target)
    assert info["n_shadow_train"] + info["n_shadow_val"] == len(shadow)
    assert "heads" in info["final_losses"] and isinstance(info["chosen_epoch"], str)


def test_same_seed_is_bit_identical_and_another_seed_differs(cell: tuple[np.ndarray, ...]) -> None:
    shadow, labels, target, _ = cell
    runs = [DLMIAAttack(SMALL, device="cpu", seed=s) for s in (5, 5, 6)]
    runs = [run.fit(shadow, labels, target) for run in runs]
    probas = [run.predict_proba(target) for run in runs]
    assert np.array_equal(probas[0], probas[1])
    assert not np.array_equal(probas[0], probas[2])
    assert runs[0].info["history"] == runs[1].info["history"]


def test_every_loss_term_decreases_on_a_toy_problem(cell: tuple[np.ndarray, ...]) -> None:
    shadow, labels, target, _ = cell
    config = dataclasses.replace(
        SMALL, epochs_vae=25, epochs_heads=10, epochs_joint=16, period=4, patience=0,
        kl_inv=0.5, kl_spe=0.5, lambda_align=5.0,
    )
    history = DLMIAAttack(config, device="cpu", seed=0).fit(shadow, labels, target).info["history"]
    terms = [("vae", "total"), ("vae", "recon"), ("vae", "kl_inv"), ("vae", "kl_spe"),
             ("vae", "mmd"), ("heads", "attack"), ("joint", "attack"), ("weight", "estimator")]
    for stage, term in terms:
        values = history[stage][term]
        assert values[-1] < values[0], f"{stage}.{term} did not decrease: {values}"


@pytest.fixture(scope="module")
def rotated_cell() -> tuple[np.ndarray, ...]:
    return shifted_cell(500, 16, seed=0, scale=1.0)


def _target_auc(attack: Any, cell: tuple[np.ndarray, ...]) -> float:
    shadow, labels, target, target_labels = cell
    proba = attack.fit(shadow, labels, target).predict_proba(target)
    return float(attack_metrics(target_labels, proba)["roc_auc"])


SHIFT = DLMIAConfig(epochs_vae=25, epochs_heads=20, epochs_joint=20)


def test_alignment_recovers_what_a_rotation_takes_from_biased(rotated_cell: tuple) -> None:
    """Unaligned spaces: Biased's direction cue is gone; DL-MIA's MMD-aligned invariant latent
    recovers much of the signal, and switching the alignment off loses it."""
    auc_biased = _target_auc(BiasedAttack(device="cpu", seed=0), rotated_cell)
    auc_dlmia = _target_auc(DLMIAAttack(SHIFT, device="cpu", seed=0), rotated_cell)
    no_align = dataclasses.replace(SHIFT, lambda_align=0.0)
    auc_no_align = _target_auc(DLMIAAttack(no_align, device="cpu", seed=0), rotated_cell)
    assert auc_biased < 0.6
    assert auc_dlmia >= auc_biased + 0.1
    assert auc_dlmia >= auc_no_align + 0.05


def test_side_norm_feature_survives_rotation_and_scale() -> None:
    """With a 3x rescaled target space pooled standardisation mixes two scales; the norm
    feature, z-scored per side, keeps the rotation- and scale-invariant norm signal."""
    cell = shifted_cell(500, 16, seed=0, scale=3.0)
    auc_biased = _target_auc(BiasedAttack(device="cpu", seed=0), cell)
    with_norm = dataclasses.replace(SHIFT, norm_feature="side")
    auc_dlmia = _target_auc(DLMIAAttack(with_norm, device="cpu", seed=0), cell)
    assert auc_biased < 0.6
    assert auc_dlmia >= auc_biased + 0.25


def test_loss_sums_give_per_term_means_and_refuse_changing_terms() -> None:
    sums = LossSums()
    assert sums.means() == {}
    for step in range(4):
        sums.add(total=torch.tensor(float(step)), mmd=torch.tensor(2.0 * step, requires_grad=True))
    assert sums.means() == {"total": 1.5, "mmd": 3.0}
    with pytest.raises(AssertionError, match="same terms"):
        sums.add(total=torch.tensor(1.0))
