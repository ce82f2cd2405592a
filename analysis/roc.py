"""ROC curves of chosen result rows, redrawn from their per-user scores.

A selector is a `cell_id` or a shell-style pattern over cell ids (`'ml-1m*lfm*'`); each
selector gives one figure with a curve per matching cell (the mean over its seeds, with a band),
on linear axes and on log-log axes (the low-FPR region where membership inference matters most),
the 1% and 0.1% FPR marked.
"""

from __future__ import annotations

import fnmatch
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.figures import pyplot, save_figure
from analysis.paper import label
from analysis.results import file_slug, load_scores
from dlmia.errors import ConfigError
from dlmia.schema import SIDE_COLUMNS


def select_rows(frame: pd.DataFrame, selector: str) -> pd.DataFrame:
    """Finished cell results (a searched cell's: its selected trial) whose `cell_id` equals or
    matches `selector`; ConfigError when none does."""
    ids = frame["cell_id"].astype(str)
    chosen = frame[(ids == selector) | ids.map(lambda cell: fnmatch.fnmatchcase(cell, selector))]
    chosen = chosen[chosen["status"] == "ok"]
    if chosen.empty:
        known = ", ".join(sorted(frame.loc[frame["status"] == "ok", "cell_id"].astype(str))[:8])
        raise ConfigError(
            f"--roc {selector!r}: no finished result's cell id is or matches it; some ids: {known}"
        )
    return chosen


#: The low false-positive rates membership-inference papers report, marked on every plot.
FPR_MARKS: tuple[float, ...] = (0.01, 0.001)
#: The FPR grid a cell's seeds are interpolated on to draw their mean and band (log-spaced).
_FPR_GRID = np.concatenate([[0.0], np.logspace(-5, 0, 400)])
#: What makes curves of different seeds the same cell.
_CURVE_KEYS = ("grid", "nonmember_lists", "vectors_fit_on", *SIDE_COLUMNS, "attack")


def write_roc(frame: pd.DataFrame, out_dir: str | Path, selector: str, folder: str | Path) -> Path:
    """Draw the ROC curves of the rows `selector` picks into `folder/roc_<selector>.png` (and
    .pdf), on linear and on log axes, with the 1% and 0.1% FPR marked. A cell with several
    seeds is drawn as its mean curve with a band of one standard deviation over the seeds."""
    fig = roc_figure(select_rows(frame, selector), out_dir, f"ROC curves: {selector}")
    return save_figure(fig, Path(folder) / f"roc_{file_slug(selector)}.png")


def roc_figure(rows: pd.DataFrame, out_dir: str | Path, title: str) -> Any:
    """The figure of `rows`' ROC curves (their scores under `out_dir`), as `write_roc` draws it."""
    fig, (linear, loglog) = pyplot().subplots(1, 2, figsize=(12, 5), layout="constrained")
    floor = 1.0  # the smallest non-zero rate any curve can reach: the log axes start below it
    for _, cell in rows.groupby(list(_CURVE_KEYS), observed=True, sort=False):
        curves = [load_scores(out_dir, file) for file in cell["result_file"]]
        floor = min([floor, *(1 / c["label"].value_counts().max() for c in curves)])
        tpr = np.stack([_tpr_on_grid(c) for c in curves])  # (n_seeds, n_grid)
        name = _curve_label(cell)
        for ax in (linear, loglog):
            (line,) = ax.plot(_FPR_GRID, tpr.mean(0), label=name, linewidth=1.4)
            if len(curves) > 1:
                low, high = tpr.mean(0) - tpr.std(0), tpr.mean(0) + tpr.std(0)
                ax.fill_between(_FPR_GRID, low.clip(0), high.clip(max=1), alpha=0.2,
                                color=line.get_color(), linewidth=0)
    for ax, scale in ((linear, "linear"), (loglog, "log")):
        low = floor / 2 if scale == "log" else 0.0
        ax.plot([low, 1], [low, 1], color="grey", linestyle=":", linewidth=1, label="chance")
        for mark in FPR_MARKS:
            ax.axvline(mark, color="0.4", linestyle="--", linewidth=0.8)
            ax.text(mark, 1.0, f" {mark:.1%} FPR", fontsize=7, color="0.3", va="top",
                    rotation=90)
        ax.set_xscale(scale)
        ax.set_yscale(scale)
        ax.set_xlim(low, 1.02)
        ax.set_ylim(low, 1.02)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"ROC, {scale} axes")
    linear.legend(fontsize=7, loc="lower right")
    fig.suptitle(title)
    return fig


def _tpr_on_grid(scores: pd.DataFrame) -> npt.NDArray[np.float64]:
    """The TPR of one result's ROC curve at each FPR of `_FPR_GRID` (the best TPR reachable at
    or below that FPR, so the 0% point is the TPR before the first false positive)."""
    from dlmia.metrics import roc_curve

    fpr, tpr, _ = roc_curve(scores["label"].to_numpy(), scores["score"].to_numpy())
    reached = np.searchsorted(fpr, _FPR_GRID, side="right") - 1  # last point with fpr <= grid
    return tpr[reached]


def _curve_label(cell: pd.DataFrame) -> str:
    """A curve's legend entry: its sides, attack, seeds and ROC AUC (mean ± std over seeds)."""
    row = cell.iloc[0]
    auc = cell["roc_auc"].astype(float)
    seeds = f"seed {row['seed']}" if len(cell) == 1 else f"{len(cell)} seeds"
    value = f"{auc.mean():.3f}" if len(cell) == 1 else f"{auc.mean():.3f} ± {auc.std():.3f}"
    return (
        f"{label(str(row['shadow_dataset']))}/{label(str(row['shadow_recommender']))} -> "
        f"{label(str(row['target_dataset']))}/{label(str(row['target_recommender']))}, "
        f"{label(str(row['attack']))}, {seeds}: AUC {value}"
    )
