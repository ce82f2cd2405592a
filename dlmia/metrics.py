"""Membership-inference metrics from member probabilities (method.md section 7).

Labels: 1 = member, 0 = non-member. Scores: member probabilities in [0, 1], higher = more
likely member. Two different numbers are called "AUC" in this field:

- `roc_auc` is the true area under the ROC curve (tied scores count one half), a ranking metric;
- `balanced_accuracy` is what the paper's heatmap calls "AUC": the area under the two-segment
  curve through the single confusion point at threshold 0.5, which equals (1 + TPR - FPR) / 2.
  An attack that calls everyone a member (or no one) scores exactly 0.5.

Low-FPR operating points (`tpr_at_1pct_fpr`, `tpr_at_0.1pct_fpr`) follow the usual definition:
the highest TPR over the ROC operating points (thresholds `t`, predicting member when
score >= t) whose FPR <= the limit. Tied scores form one operating point, so a member tied with a
non-member cannot be counted without that non-member. With `n_nonmembers` non-members the
limit allows `floor(limit * n_nonmembers)` false positives (`fp_allowed_*`); when that is 0 the
point is the share of members scored above every non-member. `tp_*` is the number of members
found there, and `tpr_at_*_fpr_low` / `_high` its exact (Clopper-Pearson) 95% interval as a
binomial share of the members: the uncertainty of the TPR at that threshold, with the threshold
taken as given (with few non-members the FPR itself is coarse: `n_nonmembers` and
`fp_allowed_*` say how coarse).
"""

from __future__ import annotations

import math

import numpy as np
import numpy.typing as npt
from scipy.stats import beta
from sklearn.metrics import roc_auc_score
from sklearn.metrics import roc_curve as _sk_roc_curve

from dlmia.errors import TrainingError

#: The low-FPR points reported, as (key suffix, FPR limit): 1%, 0.1% and 0% (no false positive).
LOW_FPR_POINTS: tuple[tuple[str, float], ...] = (("1pct", 0.01), ("0.1pct", 0.001), ("0pct", 0.0))
BOOTSTRAP_SAMPLES = 1000  # resamples of the target users behind roc_auc_low / roc_auc_high
BOOTSTRAP_LEVEL = 0.95  # coverage of that interval
EXACT_LEVEL = 0.95  # coverage of the Clopper-Pearson intervals of the low-FPR TPRs


def attack_metrics(
    labels: npt.ArrayLike,
    proba: npt.ArrayLike,
    threshold: float = 0.5,
    seed: int = 0,
    interval: bool = True,
) -> dict[str, float | int]:
    """Every metric of a membership attack, as one flat JSON-friendly dict.

    Args:
        labels: (n,) true membership, 1 = member, 0 = non-member; both classes must occur.
        proba: (n,) member probabilities in [0, 1].
        threshold: a user is predicted a member when its probability is > threshold (ties go to
            non-member, as the reference's argmax over two equal class probabilities does).
        seed: seed of the bootstrap resamples.
        interval: False skips the bootstrap (`roc_auc_low` and `roc_auc_high` are nan): a
            search's per-trial rows do, for they are not results (their trials table keeps no
            interval) and the resamples are most of this function's time (~0.1 s for 2,700 users).

    Returns:
        `roc_auc` with its 95% bootstrap interval over users (`roc_auc_low`, `roc_auc_high`),
        `balanced_accuracy`, `accuracy`, `precision`, `recall`, `f1` (precision and
        f1 are 0 when nobody is predicted a member), `tpr_at_1pct_fpr`, `tpr_at_0.1pct_fpr`,
        `tpr_at_0pct_fpr` (the members found before the first false positive) each with its
        exact interval (`tpr_at_*_fpr_low`, `tpr_at_*_fpr_high`), and the counts behind them:
        `n_members`, `n_nonmembers`, `tp`, `fp`, `tn`, `fn` at `threshold`, and
        `fp_allowed_at_*` / `tp_at_*` for each low-FPR point.

    Raises:
        ValueError: mismatched lengths, labels outside {0, 1}, one class only, or scores
            outside [0, 1].
        TrainingError: a non-finite probability (the attack diverged).
    """
    y, p = _checked(labels, proba)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    predicted = p > threshold
    tp = int(np.count_nonzero(predicted & (y == 1)))
    fp = int(np.count_nonzero(predicted & (y == 0)))
    tpr, fpr = tp / n_pos, fp / n_neg
    precision = tp / (tp + fp) if tp + fp else 0.0
    low, high = bootstrap_roc_auc(y, p, seed=seed) if interval else (math.nan, math.nan)
    result: dict[str, float | int] = {
        "roc_auc": float(roc_auc_score(y, p)),
        "roc_auc_low": low,
        "roc_auc_high": high,
        "balanced_accuracy": (1.0 + tpr - fpr) / 2.0,
        "accuracy": (tp + n_neg - fp) / y.size,
        "precision": precision,
        "recall": tpr,
        "f1": 2 * precision * tpr / (precision + tpr) if precision + tpr else 0.0,
    }
    fps, tps = _operating_points(y, p)
    for suffix, limit in LOW_FPR_POINTS:
        allowed = math.floor(limit * n_neg + 1e-9)  # epsilon: 0.29 * 100 is 28.999...
        found = int(tps[fps <= allowed].max())  # (0, 0) is always an operating point
        result[f"tpr_at_{suffix}_fpr"] = found / n_pos
        low_tpr, high_tpr = clopper_pearson(found, n_pos)
        result[f"tpr_at_{suffix}_fpr_low"] = low_tpr
        result[f"tpr_at_{suffix}_fpr_high"] = high_tpr
        result[f"fp_allowed_at_{suffix}_fpr"] = allowed
        result[f"tp_at_{suffix}_fpr"] = found
    result.update(
        n_members=n_pos, n_nonmembers=n_neg, tp=tp, fp=fp, tn=n_neg - fp, fn=n_pos - tp
    )
    return result


def clopper_pearson(
    successes: int, trials: int, level: float = EXACT_LEVEL
) -> tuple[float, float]:
    """The exact (Clopper-Pearson) two-sided interval of a binomial share `successes / trials`:
    it covers the true share with probability at least `level` whatever it is, which matters at
    the few successes that low-FPR points leave (0 found gives [0, 1 - (alpha/2)^(1/n)])."""
    alpha = 1.0 - level
    low = beta.ppf(alpha / 2, successes, trials - successes + 1) if successes else 0.0
    high = beta.ppf(1 - alpha / 2, successes + 1, trials - successes) if successes < trials else 1
    return float(low), float(high)


def bootstrap_roc_auc(
    labels: npt.ArrayLike,
    proba: npt.ArrayLike,
    n_samples: int = BOOTSTRAP_SAMPLES,
    level: float = BOOTSTRAP_LEVEL,
    seed: int = 0,
) -> tuple[float, float]:
    """Percentile bootstrap interval of the ROC AUC, resampling users with replacement.

    All resamples at once: each is a row of multinomial user counts (weights), and the weighted
    Mann-Whitney statistic of every row comes from one pass over the users in score order
    (tied scores form one group and count one half). A resample left with one class is dropped.
    """
    y, p = _checked(labels, proba)
    rng = np.random.default_rng([seed, 0xB007])
    order = np.argsort(p, kind="stable")
    y, p = y[order], p[order]
    counts = rng.multinomial(y.size, np.full(y.size, 1.0 / y.size), size=n_samples)  # (B, n)
    starts = np.flatnonzero(np.r_[True, p[1:] != p[:-1]])  # (G,) first user of each tie group
    group = np.cumsum(np.r_[True, p[1:] != p[:-1]]) - 1  # (n,) tie group of each user
    negatives = np.add.reduceat(counts * (y == 0), starts, axis=1)  # (B, G) per-group weight
    below = np.cumsum(negatives, axis=1) - negatives  # (B, G) negatives strictly below
    positive_counts = counts * (y == 1)  # (B, n)
    wins = (positive_counts * (below + 0.5 * negatives)[:, group]).sum(axis=1)  # (B,)
    pairs = positive_counts.sum(axis=1) * negatives.sum(axis=1)  # (B,)
    aucs = wins[pairs > 0] / pairs[pairs > 0]
    tail = (1.0 - level) / 2.0
    low, high = np.quantile(aucs, [tail, 1.0 - tail])
    return float(low), float(high)


def roc_curve(
    labels: npt.ArrayLike, proba: npt.ArrayLike
) -> tuple[npt.NDArray[np.float64], npt.NDArray[np.float64], npt.NDArray[np.float64]]:
    """ROC curve points for plots: (fpr, tpr, thresholds), each (m,), FPR increasing.

    `thresholds[0]` is +inf (the point (0, 0)); collinear points are dropped, corners kept.
    Inputs and errors as in `attack_metrics`.
    """
    y, p = _checked(labels, proba)
    fpr, tpr, thresholds = _sk_roc_curve(y, p)
    return fpr.astype(np.float64), tpr.astype(np.float64), thresholds.astype(np.float64)


def _operating_points(
    y: npt.NDArray[np.int64], p: npt.NDArray[np.float64]
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(m,) false- and true-positive counts at every ROC operating point, (0, 0) included."""
    fpr, tpr, _ = _sk_roc_curve(y, p, drop_intermediate=False)
    n_pos = int(y.sum())
    n_neg = int(y.size - n_pos)
    return np.rint(fpr * n_neg).astype(np.int64), np.rint(tpr * n_pos).astype(np.int64)


def _checked(
    labels: npt.ArrayLike, proba: npt.ArrayLike
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.float64]]:
    """Validated (n,) int64 labels and (n,) float64 probabilities."""
    y = np.asarray(labels)
    p = np.asarray(proba, dtype=np.float64)
    if y.ndim != 1 or p.ndim != 1:
        raise ValueError(f"labels and proba must be 1-d; got shapes {y.shape} and {p.shape}")
    if y.size != p.size:
        raise ValueError(f"labels and proba differ in length: {y.size} vs {p.size}")
    if not np.isin(y, (0, 1)).all():
        raise ValueError("labels must be 0 (non-member) or 1 (member); found other values")
    y = y.astype(np.int64)
    n_pos = int(y.sum())
    if n_pos == 0 or n_pos == y.size:
        raise ValueError(
            f"metrics need members and non-members; got {n_pos} members of {y.size} users"
        )
    if not np.isfinite(p).all():
        bad = int(np.count_nonzero(~np.isfinite(p)))
        raise TrainingError(
            f"{bad} of {p.size} member probabilities are not finite: the attack diverged"
        )
    if p.min() < 0.0 or p.max() > 1.0:
        raise ValueError(
            f"member probabilities must lie in [0, 1]; got range [{p.min()}, {p.max()}]"
        )
    return y, p
