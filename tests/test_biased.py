"""The Biased baseline, its shared training helpers and the attack registry."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
from torch import nn

from dlmia.attacks import ATTACKS, BiasedAttack, BiasedConfig, make_attack
from dlmia.attacks.mlp import FusedMLPSGD, member_proba, membership_mlp
from dlmia.errors import ConfigError, DataError, TrainingError
from dlmia.metrics import attack_metrics


def _toy(n: int, d: int = 10, seed: int = 0, scale: float = 1.0) -> tuple[np.ndarray, np.ndarray]:
    """(n, d) float32 vectors whose label is the side of a fixed hyperplane, with a margin."""
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, d)).astype(np.float32)
    direction = np.linspace(1.0, -1.0, d, dtype=np.float32)
    labels = (x @ direction > 0).astype(np.int64)
    x += np.where(labels[:, None] == 1, 0.3, -0.3) * direction / np.linalg.norm(direction)
    return x * scale, labels


def _fit(settings: dict | None = None, seed: int = 0, n: int = 200, **toy: float) -> BiasedAttack:
    x, labels = _toy(n, **toy)  # type: ignore[arg-type]
    attack = make_attack("biased", {"epochs": 4, **(settings or {})}, device="cpu", seed=seed)
    assert isinstance(attack, BiasedAttack)
    return attack.fit(x, labels, _toy(50, seed=9)[0])


def test_learns_a_linearly_separable_problem() -> None:
    attack = _fit({"epochs": 20}, n=400)  # the reference recipe, one sample per step
    x_test, labels_test = _toy(500, seed=1)
    assert attack_metrics(labels_test, attack.predict_proba(x_test))["roc_auc"] > 0.95
    losses = attack.info["epoch_loss"]
    assert len(losses) == 20 and losses[-1] < losses[0]
    assert attack.info["n_steps"] == 20 * 400 and attack.info["fit_seconds"] > 0
    json.dumps(attack.info)


@pytest.mark.parametrize("batch_size", [1, 16])
def test_same_seed_is_bit_identical_and_other_seed_differs(batch_size: int) -> None:
    x_test, _ = _toy(100, seed=2)
    settings = {"batch_size": batch_size}
    first = _fit(settings, seed=3).predict_proba(x_test)
    np.testing.assert_array_equal(first, _fit(settings, seed=3).predict_proba(x_test))
    assert not np.array_equal(first, _fit(settings, seed=4).predict_proba(x_test))


def test_predict_proba_shape_range_and_dtype() -> None:
    proba = _fit().predict_proba(_toy(37, seed=5)[0])
    assert proba.shape == (37,) and proba.dtype == np.float64
    assert ((proba >= 0) & (proba <= 1)).all() and 0 < proba.std()


def test_divergence_raises_training_error() -> None:
    with pytest.raises(TrainingError, match="diverged in epoch 1/2"):
        _fit({"lr": 1e6, "grad_clip": None, "epochs": 2}, scale=1e10)


def test_non_finite_head_output_raises_training_error() -> None:
    model = membership_mlp(4)
    with torch.no_grad():
        model[0].weight.fill_(float("inf"))
    with pytest.raises(TrainingError, match="non-finite"):
        member_proba(model, torch.ones(3, 4))


@pytest.mark.parametrize("standardize", ["none", "shadow"])
def test_target_vectors_do_not_change_predictions(standardize: str) -> None:
    x, labels = _toy(150)
    x_test, _ = _toy(40, seed=6)
    predictions = []
    for target in (_toy(50, seed=7)[0], 100.0 * _toy(80, seed=8)[0] + 5.0):
        attack = make_attack("biased", {"standardize": standardize, "epochs": 3}, device="cpu")
        predictions.append(attack.fit(x, labels, target).predict_proba(x_test))
    np.testing.assert_array_equal(*predictions)


def test_shadow_standardisation_uses_shadow_statistics() -> None:
    # Shifting and scaling the shadow and test vectors alike leaves standardised inputs unchanged.
    x, labels = _toy(150)
    x_test, _ = _toy(40, seed=6)
    settings = {"standardize": "shadow", "epochs": 3}
    plain = make_attack("biased", settings, device="cpu").fit(x, labels, x_test)
    moved = make_attack("biased", settings, device="cpu").fit(7 * x + 3, labels, x_test)
    np.testing.assert_allclose(
        plain.predict_proba(x_test), moved.predict_proba(7 * x_test + 3), atol=1e-4
    )


def test_fused_step_matches_autograd_clipping_and_torch_sgd() -> None:
    x, labels = _toy(60, d=12)
    x_t, y_t = torch.from_numpy(x), torch.from_numpy(labels)
    one_hot = nn.functional.one_hot(y_t, 2).float()
    torch.manual_seed(0)
    reference = membership_mlp(12)
    fused = membership_mlp(12)
    fused.load_state_dict(reference.state_dict())
    optimizer = torch.optim.SGD(reference.parameters(), lr=0.1, momentum=0.9)
    step = FusedMLPSGD(fused, lr=0.1, momentum=0.9, grad_clip=0.5)
    loss_sum, expected_sum = torch.zeros(()), 0.0
    for start in range(0, 60, 3):  # batches of 3
        batch = slice(start, start + 3)
        optimizer.zero_grad()
        loss = nn.functional.cross_entropy(reference(x_t[batch]), y_t[batch])
        loss.backward()
        nn.utils.clip_grad_norm_(reference.parameters(), 0.5)
        optimizer.step()
        expected_sum += 3 * loss.item()
        step.step(x_t[batch], one_hot[batch], loss_sum)
    for want, got in zip(reference.parameters(), fused.parameters(), strict=True):
        torch.testing.assert_close(got, want, atol=1e-5, rtol=1e-5)
    assert loss_sum.item() == pytest.approx(expected_sum, rel=1e-5)


def test_membership_mlp_shape() -> None:
    linears = [m for m in membership_mlp(100) if isinstance(m, nn.Linear)]
    widths = [(m.in_features, m.out_features) for m in linears]
    assert widths == [(100, 32), (32, 8), (8, 2)]


def test_make_attack_applies_settings_and_names_bad_keys() -> None:
    assert ATTACKS["biased"] is BiasedAttack
    attack = make_attack("biased", {"hidden": [16], "batch_size": 4}, device="cpu", seed=5)
    assert attack.config == BiasedConfig(hidden=(16,), batch_size=4) and attack.seed == 5
    assert make_attack("biased").config == BiasedConfig()
    with pytest.raises(ConfigError, match="known attacks are biased"):
        make_attack("nope")
    with pytest.raises(ConfigError, match="attack.biased.learning_rate: unknown key"):
        make_attack("biased", {"learning_rate": 0.1})
    with pytest.raises(ConfigError, match="attack.biased.standardize"):
        make_attack("biased", {"standardize": "target"})
    with pytest.raises(ConfigError, match="attack.biased.epochs"):
        make_attack("biased", {"epochs": 0})


def test_bad_vectors_raise_data_error() -> None:
    x, labels = _toy(30)
    attack = make_attack("biased", {"epochs": 1}, device="cpu")
    with pytest.raises(DataError, match="need both members and non-members"):
        attack.fit(x, np.ones(30, dtype=np.int64), x)
    with pytest.raises(DataError, match="target vectors: expected an array of shape \\(n, 10\\)"):
        attack.fit(x, labels, x[:, :5])
    attack.fit(x, labels, x)
    with pytest.raises(DataError, match="vectors: expected an array of shape \\(n, 10\\)"):
        attack.predict_proba(x[:, :5])
