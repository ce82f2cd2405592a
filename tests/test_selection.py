"""Label-free selection criteria (dlmia.selection): ranges, independence from target labels,
and the residual discrepancy seeing the alignment term's effect."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from dlmia import selection
from dlmia.attacks.dlmia import DLMIAAttack, DLMIAConfig
from dlmia.errors import ConfigError
from dlmia.schema import CRITERIA

SMALL = DLMIAConfig(
    latent_inv=4, latent_spe=4, hidden=32, epochs_vae=15, epochs_heads=4, epochs_joint=4,
    period=2, batch_size=64, use_weights=False,
)


def shifted(n: int = 240, dim: int = 10, seed: int = 0) -> tuple[np.ndarray, ...]:
    """Shadow (n, dim) + labels and target (n, dim) + labels: members nearer the origin; the
    target side shifted by 2 along every coordinate (a shift the alignment term can remove)."""
    rng = np.random.default_rng(seed)

    def side(offset: float) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n)
        scale = np.where(labels[:, None] == 1, 0.6, 1.4)
        return (rng.normal(size=(n, dim)) * scale + offset).astype(np.float32), labels

    shadow, shadow_labels = side(0.0)
    target, target_labels = side(2.0)
    return shadow, shadow_labels, target, target_labels


@pytest.fixture(scope="module")
def cell() -> tuple[np.ndarray, ...]:
    return shifted()


@pytest.fixture(scope="module")
def fitted(cell: tuple[np.ndarray, ...]) -> DLMIAAttack:
    shadow, labels, target, _ = cell
    return DLMIAAttack(SMALL, device="cpu", seed=0).fit(shadow, labels, target)


def test_criteria_ranges(fitted: DLMIAAttack, cell: tuple[np.ndarray, ...]) -> None:
    shadow, labels, target, _ = cell
    values = selection.criteria(fitted, shadow, labels, target)
    assert set(values) == {"shadow_val_auc", "shadow_val_loss", "reverse_auc", "reverse_loss",
                           "residual_mmd", "objective"} == set(CRITERIA)  # the declared columns
    assert 0.5 < values["shadow_val_auc"] <= 1  # the held-out users are separable here
    assert values["shadow_val_loss"] > 0 and values["reverse_loss"] > 0
    assert 0 <= values["reverse_auc"] <= 1
    assert 0 <= values["residual_mmd"] <= 2
    expected = -(values["shadow_val_loss"] + values["reverse_loss"] + values["residual_mmd"])
    assert values["objective"] == pytest.approx(expected)
    assert fitted.held_out is not None and fitted.held_out.sum() == round(0.1 * len(labels))


def test_objective_keeps_ranking_where_auc_saturates() -> None:
    """Two trials with a perfect held-out AUC: the more confident one wins on log-loss."""
    config = selection.SelectionConfig()
    base = {"shadow_val_auc": 1.0, "reverse_auc": 1.0, "residual_mmd": 0.1}
    sure = {**base, "shadow_val_loss": 0.05, "reverse_loss": 0.10}
    unsure = {**base, "shadow_val_loss": 0.40, "reverse_loss": 0.45}
    assert selection.objective(sure, config) > selection.objective(unsure, config)
    missing = {**base, "shadow_val_loss": float("nan"), "reverse_loss": 0.1}
    assert selection.objective(missing, config) == pytest.approx(-(np.log(2) + 0.1 + 0.1))


def test_criteria_are_deterministic(fitted: DLMIAAttack, cell: tuple[np.ndarray, ...]) -> None:
    shadow, labels, target, _ = cell
    assert selection.criteria(fitted, shadow, labels, target) == selection.criteria(
        fitted, shadow, labels, target
    )


def test_target_labels_cannot_enter() -> None:
    """No criterion has a parameter through which target labels could come in."""
    for function in (selection.criteria, selection.reverse_validation,
                     selection.residual_discrepancy, selection.shadow_validation):
        names = set(inspect.signature(function).parameters)
        assert names <= {"attack", "shadow_vectors", "shadow_labels", "target_vectors", "config"}


def test_alignment_lowers_residual_mmd(cell: tuple[np.ndarray, ...]) -> None:
    shadow, labels, target, _ = cell
    residual = {}
    for weight in (0.0, 10.0):
        config = dataclasses.replace(SMALL, lambda_align=weight)
        attack = DLMIAAttack(config, device="cpu", seed=0).fit(shadow, labels, target)
        residual[weight] = selection.residual_discrepancy(
            attack, shadow, target, selection.SelectionConfig()
        )
    assert residual[10.0] < 0.5 * residual[0.0]


def test_bad_weights_raise() -> None:
    with pytest.raises(ConfigError, match="w_mmd"):
        selection.SelectionConfig(w_mmd=-1)
