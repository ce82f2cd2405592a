"""ROC curves of chosen result rows, redrawn from their per-user scores.

A selector is a `cell_id` or a shell-style pattern over cell ids (`'ml-1m*lfm*'`); each
selector gives one figure with a curve per matching finished row, on linear axes and on log-log
axes (the low-FPR region where membership inference matters most).
"""

from __future__ import annotations

import fnmatch
from pathlib import Path

import pandas as pd

from analysis.figures import pyplot, save_figure
from analysis.paper import label
from analysis.results import file_slug, load_scores
from dlmia.errors import ConfigError


def select_rows(frame: pd.DataFrame, selector: str) -> pd.DataFrame:
    """Finished cell results (a search's selected trial) whose `cell_id` equals or matches
    `selector`; ConfigError when none does."""
    ids = frame["cell_id"].astype(str)
    chosen = frame[(ids == selector) | ids.map(lambda cell: fnmatch.fnmatchcase(cell, selector))]
    chosen = chosen[(chosen["status"] == "ok") & chosen["selected"]]
    if chosen.empty:
        known = ", ".join(sorted(frame.loc[frame["status"] == "ok", "cell_id"].astype(str))[:8])
        raise ConfigError(
            f"--roc {selector!r}: no finished result's cell id is or matches it; some ids: {known}"
        )
    return chosen


def write_roc(frame: pd.DataFrame, out_dir: str | Path, selector: str, folder: str | Path) -> Path:
    """Draw the ROC curves of the rows `selector` picks into `folder/roc_<selector>.png`."""
    from dlmia.metrics import roc_curve

    fig, (linear, loglog) = pyplot().subplots(1, 2, figsize=(11, 4.8), layout="constrained")
    floor = 1.0  # the smallest non-zero rate any curve can reach: the log axes start below it
    for row in select_rows(frame, selector).itertuples(index=False):
        scores = load_scores(out_dir, row.result_file)
        fpr, tpr, _ = roc_curve(scores["label"].to_numpy(), scores["score"].to_numpy())
        name = (
            f"{label(str(row.shadow_dataset))}/{label(str(row.shadow_recommender))} -> "
            f"{label(str(row.target_dataset))}/{label(str(row.target_recommender))}, "
            f"{label(str(row.attack))}, seed {row.seed}: AUC {row.roc_auc:.3f}"
        )
        floor = min(floor, 1 / scores["label"].value_counts().max())
        linear.plot(fpr, tpr, label=name)
        loglog.plot(fpr[1:], tpr[1:], label=name)  # fpr[0] = 0 has no place on a log axis
    for ax, scale in ((linear, "linear"), (loglog, "log")):
        low = floor / 2 if scale == "log" else 0.0
        ax.plot([low, 1], [low, 1], color="grey", linestyle=":", linewidth=1)  # chance
        ax.set_xscale(scale)
        ax.set_yscale(scale)
        ax.set_xlim(low, 1.02)
        ax.set_ylim(low, 1.02)
        ax.set_xlabel("false positive rate")
        ax.set_ylabel("true positive rate")
        ax.set_title(f"ROC, {scale} axes")
    linear.legend(fontsize=7, loc="lower right")
    fig.suptitle(f"ROC curves: {selector}")
    return save_figure(fig, Path(folder) / f"roc_{file_slug(selector)}.png")
