"""The leak test: DL-MIA never sees target membership labels (method.md section 6).

The published code overwrote its target pseudo-labels with `pred == true label` in place
(reference-implementation.md 8.8, B1). Here the labels cannot reach the attack at all: the fit
signature has no place for them, no code under dlmia/attacks names them, a target-vector object
that carries its labels is never asked for them, and permuting them changes nothing.
"""

from __future__ import annotations

import dataclasses
import inspect
import io
import tokenize
from pathlib import Path
from typing import Any

import numpy as np

import dlmia.attacks
from dlmia.attacks.dlmia import DLMIAAttack, DLMIAConfig
from dlmia.metrics import attack_metrics

CONFIG = DLMIAConfig(
    latent_inv=4, latent_spe=4, hidden=32, epochs_vae=3, epochs_heads=3, epochs_joint=6, period=2,
    batch_size=64, tau=0.6,
)


class LabelledVectors:
    """Target vectors that also carry their membership labels, as a data frame with a label
    column would. It logs every read: converting it to an array reads "vectors", touching
    `labels` reads "labels" (and gets poisoned values); any other use fails loudly."""

    def __init__(self, vectors: np.ndarray, labels: np.ndarray) -> None:
        self._vectors, self._labels = vectors, labels
        self.reads: list[str] = []

    def __array__(self, dtype: Any = None, copy: Any = None) -> np.ndarray:
        self.reads.append("vectors")
        return self._vectors.astype(dtype or self._vectors.dtype, copy=True)

    @property
    def labels(self) -> np.ndarray:
        self.reads.append("labels")
        return np.full_like(self._labels, -1)


def _data(seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    shadow_labels = rng.integers(0, 2, 240)
    target_labels = rng.integers(0, 2, 200)
    shadow = rng.normal(size=(240, 10)) - 0.8 * shadow_labels[:, None]
    target = rng.normal(size=(200, 10)) - 0.8 * target_labels[:, None]
    return shadow.astype(np.float32), shadow_labels, target.astype(np.float32), target_labels


def test_fit_has_no_place_for_target_labels() -> None:
    assert list(inspect.signature(DLMIAAttack.fit).parameters) == [
        "self", "shadow_vectors", "shadow_labels", "target_vectors",
    ]


def test_no_code_under_dlmia_attacks_names_target_labels() -> None:
    """No identifier (strings and comments excluded) pairs 'target' with 'label' or 'member'."""
    offenders = []
    for path in Path(dlmia.attacks.__file__).parent.rglob("*.py"):
        for token in tokenize.generate_tokens(io.StringIO(path.read_text()).readline):
            name = token.string.lower()
            if token.type != tokenize.NAME:
                continue
            pairs = "target" in name and ("label" in name or "member" in name)
            if pairs or name in {"y_t", "yt", "y_target", "target_y"}:
                offenders.append(f"{path.name}:{token.start[0]}: {token.string}")
    assert offenders == []


def test_permuted_target_labels_give_bit_identical_predictions() -> None:
    shadow, shadow_labels, target, target_labels = _data()
    permuted = np.random.default_rng(1).permutation(target_labels)
    runs = []
    for labels in (target_labels, permuted):  # the labels exist beside the fit, never inside it
        attack = DLMIAAttack(CONFIG, device="cpu", seed=0).fit(shadow, shadow_labels, target)
        runs.append((attack.predict_proba(target), labels))
    (first, labels_a), (second, labels_b) = runs
    assert np.array_equal(first, second)
    # Only the metrics read the labels: the same predictions score differently against them.
    auc_a = attack_metrics(labels_a, first)["roc_auc"]
    assert auc_a != attack_metrics(labels_b, second)["roc_auc"]


def test_target_vectors_carrying_labels_are_only_read_as_vectors() -> None:
    shadow, shadow_labels, target, target_labels = _data()
    wrapped = LabelledVectors(target, target_labels)
    config = dataclasses.replace(CONFIG, tau=0.5)  # keep every pseudo-label: the widest code path
    attack = DLMIAAttack(config, device="cpu", seed=0).fit(shadow, shadow_labels, wrapped)
    assert wrapped.reads and set(wrapped.reads) == {"vectors"}
    plain = DLMIAAttack(config, device="cpu", seed=0).fit(shadow, shadow_labels, target)
    assert np.array_equal(attack.predict_proba(target), plain.predict_proba(target))
    assert attack.info["pseudo_labels_kept"] > 0  # the pseudo-label path did run
