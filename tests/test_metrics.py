"""dlmia.metrics: exact values on hand-built cases, agreement with scikit-learn, input checks."""

from __future__ import annotations

import json

import numpy as np
import pytest
from sklearn import metrics as skm
from sklearn.metrics import roc_auc_score

from dlmia.errors import TrainingError
from dlmia.metrics import attack_metrics, bootstrap_roc_auc, clopper_pearson, roc_curve
from dlmia.schema import ATTACK_METRICS


def test_hand_computed_mixed_case() -> None:
    # Member/non-member pairs: 0.9 beats 0.6 and 0.1, 0.4 beats 0.1 only -> 3 of 4.
    m = attack_metrics([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1])
    assert m["roc_auc"] == 0.75
    assert (m["tp"], m["fp"], m["tn"], m["fn"]) == (1, 1, 1, 1)
    for key in ("balanced_accuracy", "accuracy", "precision", "recall", "f1"):
        assert m[key] == 0.5, key


def test_balanced_accuracy_is_one_plus_tpr_minus_fpr_over_two() -> None:
    # Members 0.9, 0.8, 0.3 -> TPR 2/3; non-members 0.6, 0.2 -> FPR 1/2.
    m = attack_metrics([1, 1, 1, 0, 0], [0.9, 0.8, 0.3, 0.6, 0.2])
    assert m["balanced_accuracy"] == pytest.approx((1 + 2 / 3 - 1 / 2) / 2)
    assert m["accuracy"] == pytest.approx(3 / 5)
    assert m["precision"] == pytest.approx(2 / 3)
    assert m["recall"] == pytest.approx(2 / 3)
    assert m["f1"] == pytest.approx(2 / 3)
    assert (m["n_members"], m["n_nonmembers"]) == (3, 2)


def test_ties_count_one_half() -> None:
    # Each member at 0.7 ties the non-member at 0.7 (1/2) and beats the one at 0.2 (1).
    assert attack_metrics([1, 0, 1, 0], [0.7, 0.7, 0.7, 0.2])["roc_auc"] == 0.75


def test_all_same_scores_give_half_and_no_member_predicted() -> None:
    m = attack_metrics([1, 0, 1, 0, 0], [0.5] * 5)
    assert m["roc_auc"] == 0.5
    assert m["balanced_accuracy"] == 0.5  # 0.5 is not > 0.5: nobody is called a member
    assert (m["tp"], m["fp"], m["precision"], m["f1"]) == (0, 0, 0.0, 0.0)
    assert m["accuracy"] == 3 / 5
    assert m["tpr_at_1pct_fpr"] == 0.0  # the only operating points are (0, 0) and (1, 1)


def test_perfect_separation() -> None:
    m = attack_metrics([0, 1, 0, 1], [0.1, 0.9, 0.2, 0.8])
    assert m["roc_auc"] == m["balanced_accuracy"] == m["accuracy"] == m["f1"] == 1.0
    assert m["tpr_at_1pct_fpr"] == m["tpr_at_0.1pct_fpr"] == 1.0


def test_low_fpr_points_and_their_counts() -> None:
    # 200 non-members: 1% allows 2 false positives, 0.1% allows none.
    # Operating points (fp, tp): (0, 3) at 0.9, (1, 3) at 0.8, (1, 5) at 0.7, (2, 5) at 0.6.
    members = [0.9] * 3 + [0.7] * 2 + [0.05] * 5
    nonmembers = [0.8, 0.6] + [0.1] * 198
    m = attack_metrics([1] * 10 + [0] * 200, members + nonmembers)
    assert (m["fp_allowed_at_1pct_fpr"], m["tp_at_1pct_fpr"], m["tpr_at_1pct_fpr"]) == (2, 5, 0.5)
    assert (m["fp_allowed_at_0.1pct_fpr"], m["tp_at_0.1pct_fpr"]) == (0, 3)
    assert m["tpr_at_0.1pct_fpr"] == m["tpr_at_0pct_fpr"] == 0.3  # 3 above all non-members
    assert (m["fp_allowed_at_0pct_fpr"], m["tp_at_0pct_fpr"]) == (0, 3)


def test_low_fpr_cannot_split_a_tie() -> None:
    # 100 non-members, one tied at the top with 4 members: at 0 false positives none of them count.
    labels = [1] * 6 + [0] * 100
    proba = [0.95] * 4 + [0.9] * 2 + [0.95] + [0.1] * 99
    m = attack_metrics(labels, proba)
    assert (m["fp_allowed_at_0.1pct_fpr"], m["tp_at_0.1pct_fpr"]) == (0, 0)
    assert (m["fp_allowed_at_1pct_fpr"], m["tp_at_1pct_fpr"]) == (1, 6)


def _brute_force_tpr_at(labels: np.ndarray, proba: np.ndarray, limit: float) -> float:
    """Highest TPR over thresholds t (member iff proba >= t) with FPR <= limit."""
    best = 0.0
    for t in np.unique(proba):
        predicted = proba >= t
        fpr = np.mean(predicted[labels == 0])
        if fpr <= limit:
            best = max(best, float(np.mean(predicted[labels == 1])))
    return best


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_agrees_with_sklearn_and_brute_force(seed: int) -> None:
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, 2, 3000)
    proba = np.clip(np.round(rng.normal(0.45 + 0.1 * labels, 0.2), 2), 0, 1)  # many ties
    m = attack_metrics(labels, proba)
    predicted = proba > 0.5
    assert m["roc_auc"] == pytest.approx(skm.roc_auc_score(labels, proba), abs=1e-12)
    assert m["balanced_accuracy"] == pytest.approx(skm.balanced_accuracy_score(labels, predicted))
    assert m["accuracy"] == pytest.approx(skm.accuracy_score(labels, predicted))
    assert m["precision"] == pytest.approx(skm.precision_score(labels, predicted))
    assert m["recall"] == pytest.approx(skm.recall_score(labels, predicted))
    assert m["f1"] == pytest.approx(skm.f1_score(labels, predicted))
    for suffix, limit in (("1pct", 0.01), ("0.1pct", 0.001), ("0pct", 0.0)):
        assert m[f"tpr_at_{suffix}_fpr"] == _brute_force_tpr_at(labels, proba, limit)
    assert json.loads(json.dumps(m)) == m
    assert set(m) == set(ATTACK_METRICS)  # the results table declares every key


def test_roc_curve_points() -> None:
    fpr, tpr, thresholds = roc_curve([1, 1, 0, 0], [0.9, 0.4, 0.6, 0.1])
    np.testing.assert_array_equal(fpr, [0.0, 0.0, 0.5, 0.5, 1.0])
    np.testing.assert_array_equal(tpr, [0.0, 0.5, 0.5, 1.0, 1.0])
    assert thresholds[0] == np.inf and fpr.dtype == tpr.dtype == np.float64
    np.testing.assert_array_equal(thresholds[1:], [0.9, 0.6, 0.4, 0.1])


@pytest.mark.parametrize(
    ("labels", "proba", "message"),
    [
        ([1, 1, 1], [0.2, 0.5, 0.9], "members and non-members"),
        ([0, 0], [0.2, 0.5], "members and non-members"),
        ([1, 0, 1], [0.2, 0.5], "differ in length"),
        ([1, 0, 2], [0.2, 0.5, 0.1], "0 \\(non-member\\) or 1"),
        ([1, 0], [0.2, 1.5], "\\[0, 1\\]"),
        ([[1, 0]], [[0.2, 0.5]], "1-d"),
    ],
)
def test_bad_inputs_raise_value_error(labels: list, proba: list, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        attack_metrics(labels, proba)
    with pytest.raises(ValueError, match=message):
        roc_curve(labels, proba)


@pytest.mark.parametrize("bad", [np.nan, np.inf])
def test_non_finite_probabilities_raise_training_error(bad: float) -> None:
    with pytest.raises(TrainingError, match="1 of 3 member probabilities are not finite"):
        attack_metrics([1, 0, 1], [0.2, bad, 0.7])


def test_bootstrap_interval_matches_resampling_by_hand() -> None:
    """The vectorised bootstrap equals sklearn on explicitly resampled users, ties included."""
    rng = np.random.default_rng(3)
    labels = rng.integers(0, 2, 300)
    proba = np.round(np.clip(rng.normal(0.45 + 0.1 * labels, 0.2), 0, 1), 1)  # many ties
    low, high = bootstrap_roc_auc(labels, proba, n_samples=400, seed=5)
    by_hand = []
    draws = np.random.default_rng(11)
    for _ in range(400):
        rows = draws.integers(0, len(labels), len(labels))
        by_hand.append(roc_auc_score(labels[rows], proba[rows]))
    hand_low, hand_high = np.quantile(by_hand, [0.025, 0.975])
    assert low < roc_auc_score(labels, proba) < high
    assert abs(low - hand_low) < 0.02 and abs(high - hand_high) < 0.02
    assert bootstrap_roc_auc(labels, proba, n_samples=400, seed=5) == (low, high)  # seeded


def test_bootstrap_of_a_perfect_attack_is_a_point() -> None:
    labels = np.array([0, 0, 0, 1, 1, 1])
    assert bootstrap_roc_auc(labels, labels * 0.8 + 0.1) == (1.0, 1.0)


def test_metrics_without_the_interval_are_the_same_metrics() -> None:
    rng = np.random.default_rng(3)
    labels, proba = np.repeat([0, 1], 50), rng.random(100)
    full, bare = attack_metrics(labels, proba), attack_metrics(labels, proba, interval=False)
    assert np.isnan(bare.pop("roc_auc_low")) and np.isnan(bare.pop("roc_auc_high"))
    assert bare == {k: v for k, v in full.items() if k not in ("roc_auc_low", "roc_auc_high")}


def test_clopper_pearson_matches_published_values_and_covers() -> None:
    # Clopper & Pearson's own table and the 0-of-n rule: 1 - (alpha/2)^(1/n)
    assert clopper_pearson(0, 10) == pytest.approx((0.0, 1 - 0.025 ** (1 / 10)))
    assert clopper_pearson(10, 10) == pytest.approx((0.025 ** (1 / 10), 1.0))
    assert clopper_pearson(5, 10) == pytest.approx((0.18709, 0.81291), abs=1e-5)
    rng = np.random.default_rng(0)  # exact: coverage >= 95% at a small n and p
    draws = rng.binomial(40, 0.05, size=4000)
    bounds = np.array([clopper_pearson(int(x), 40) for x in np.unique(draws)])
    covered = dict(zip(np.unique(draws), (bounds[:, 0] <= 0.05) & (0.05 <= bounds[:, 1])))
    assert np.mean([covered[x] for x in draws]) >= 0.95


def test_low_fpr_points_carry_their_exact_intervals() -> None:
    labels = np.array([1] * 200 + [0] * 300)
    scores = np.r_[np.linspace(0.3, 1.0, 200), np.linspace(0.0, 0.7, 300)]
    m = attack_metrics(labels, scores, interval=False)
    for suffix in ("1pct", "0.1pct", "0pct"):
        found = m[f"tp_at_{suffix}_fpr"]
        assert (m[f"tpr_at_{suffix}_fpr_low"], m[f"tpr_at_{suffix}_fpr_high"]) == (
            clopper_pearson(int(found), 200)
        )
        assert m[f"tpr_at_{suffix}_fpr_low"] <= m[f"tpr_at_{suffix}_fpr"]
        assert m[f"tpr_at_{suffix}_fpr"] <= m[f"tpr_at_{suffix}_fpr_high"]
