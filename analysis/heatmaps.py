"""Paper-style heatmaps: rows are shadow sides, columns target sides, one panel per attack.

A paper family (general, sequential) gets its full 6x6 layout, cells missing from the results
drawn grey; any other grid (e.g. the demo's synthetic 2x2) gets a panel over the sides it holds.
Each figure shows one metric, the mean over finished seeds, one panel per attack side by side;
balanced-accuracy figures of a paper family add the paper's own panels below ours (its "AUC" is
a balanced accuracy, so only that metric is compared). matplotlib is imported inside the drawing
function (Agg backend), so importing this module stays cheap.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from analysis.figures import pyplot, save_figure
from analysis.paper import FAMILIES, family_of, label, paper_table
from analysis.results import aggregate, file_slug, ordered_attacks

#: The metrics drawn, with their titles.
HEATMAP_METRICS: dict[str, str] = {
    "balanced_accuracy": "balanced accuracy (the paper's \"AUC\")",
    "roc_auc": "ROC AUC",
}
Side = tuple[str, str]  # (dataset, recommender)
Matrix = npt.NDArray[np.float64]  # (n_shadow_sides, n_target_sides)


@dataclass(frozen=True, eq=False)
class Panel:
    """One heatmap layout: which cells it shows and under which name it is saved."""

    name: str  # file-name stem part, e.g. "general" or "demo"
    title: str  # figure title prefix
    rows: list[Side]  # shadow sides, top to bottom
    columns: list[Side]  # target sides, left to right
    cells: pd.DataFrame  # rows of `aggregate` drawn in this panel
    family: str | None  # the paper family, or None for another grid


def panels(frame: pd.DataFrame) -> list[Panel]:
    """The heatmap layouts the results call for: one per (grid, non-member policy, item-vector
    setting, paper family or none); the name and title say the policy and vector setting when
    the results hold more than one of either."""
    table = aggregate(frame)
    shadow = zip(table["shadow_dataset"].astype(str), table["shadow_recommender"].astype(str))
    target = zip(table["target_dataset"].astype(str), table["target_recommender"].astype(str))
    table["family"] = [getattr(family_of(s, t), "name", "") for s, t in zip(shadow, target)]
    keys = ["grid", "nonmember_lists", "vectors_fit_on", "family"]
    for key in keys[:-1]:
        table[key] = table[key].astype(str)
    varying = [key for key in keys[1:-1] if table[key].nunique() > 1]
    groups = [(tuple(map(str, key)), cells) for key, cells in table.groupby(keys, sort=True)]
    per_family = Counter(family for (*_, family), _ in groups)
    result = []
    for (grid, policy, vectors, family), cells in groups:
        setting = {"nonmember_lists": policy, "vectors_fit_on": vectors}
        suffix = "".join(f"_{setting[key]}" for key in varying)
        detail = "".join(f", {key.split('_')[0]}: {setting[key]}" for key in varying)
        known = next((f for f in FAMILIES if f.name == family), None)
        if known:
            name = f"{grid}_{family}" if per_family[family] > 1 and grid else family
            title = f"{family} recommenders{detail}"
            result.append(Panel(name + suffix, title, known.sides, known.sides, cells, family))
        else:
            rows, columns = sorted(_sides(cells, "shadow")), sorted(_sides(cells, "target"))
            title = f"grid {grid or '(cells)'}{detail}"
            result.append(Panel((grid or "cells") + suffix, title, rows, columns, cells, None))
    return result


def write_heatmaps(frame: pd.DataFrame, folder: str | Path) -> list[Path]:
    """Draw every panel for every metric of `HEATMAP_METRICS` as `heatmap_<panel>_<metric>.png`
    (and .pdf)."""
    out = Path(folder)
    out.mkdir(parents=True, exist_ok=True)
    attacks = ordered_attacks(frame["attack"])
    paths = []
    for panel in panels(frame):
        for metric in HEATMAP_METRICS:
            path = out / f"heatmap_{file_slug(panel.name)}_{metric}.png"
            _draw(panel, metric, attacks, path)
            paths.append(path)
    return paths


def grid_values(
    cells: pd.DataFrame, rows: list[Side], columns: list[Side], column: str
) -> npt.NDArray[np.float64]:
    """(len(rows), len(columns)) values of `column` per (shadow, target) side; NaN where absent."""
    values = np.full((len(rows), len(columns)), np.nan)  # (n_shadow_sides, n_target_sides)
    row_of = {side: i for i, side in enumerate(rows)}
    col_of = {side: j for j, side in enumerate(columns)}
    shadow = zip(cells["shadow_dataset"].astype(str), cells["shadow_recommender"].astype(str))
    target = zip(cells["target_dataset"].astype(str), cells["target_recommender"].astype(str))
    for s, t, value in zip(shadow, target, cells[column]):
        if s in row_of and t in col_of:
            values[row_of[s], col_of[t]] = value
    return values


def layers(panel: Panel, metric: str, attacks: list[str]) -> list[tuple[str, Matrix, Matrix]]:
    """(title, values, failed-seed counts) of each heatmap of one figure.

    Ours come first, one per attack; a paper family's balanced-accuracy figure then adds the
    paper's Biased and DL-MIA values (with zero failures).
    """
    result = []
    for attack in attacks:
        cells = panel.cells[panel.cells["attack"].astype(str) == attack]
        values = grid_values(cells, panel.rows, panel.columns, f"{metric}_mean")
        failed = grid_values(cells, panel.rows, panel.columns, "n_failed")
        result.append((f"ours: {label(attack)}", values, failed))
    if panel.family and metric == "balanced_accuracy":
        paper = paper_table()
        paper = paper[paper["family"] == panel.family]
        for attack in ("biased", "dlmia"):
            values = grid_values(paper, panel.rows, panel.columns, f"auc_{attack}")
            result.append((f"paper: {label(attack)}", values, np.zeros_like(values)))
    return result


def _sides(cells: pd.DataFrame, role: str) -> set[Side]:
    return set(zip(cells[f"{role}_dataset"].astype(str), cells[f"{role}_recommender"].astype(str)))


def _side_label(side: Side) -> str:
    dataset, recommender = side
    return f"{label(Path(dataset).stem if '/' in dataset else dataset)}\n{label(recommender)}"


def _draw(panel: Panel, metric: str, attacks: list[str], path: Path) -> None:
    """One figure: a panel per attack (ours), plus the paper's panels for balanced accuracy."""
    import matplotlib

    drawn = layers(panel, metric, attacks)
    n_cols = min(len(drawn), 2)
    n_rows = -(-len(drawn) // n_cols)
    size = 0.85 * max(len(panel.rows), len(panel.columns), 2) + 1.6  # inches per heatmap
    fig, axes = pyplot().subplots(
        n_rows, n_cols, figsize=(n_cols * size + 1.2, n_rows * size), squeeze=False,
        layout="constrained",
    )  # fmt: skip
    # 0..1 around chance: blue above 0.5, red below (a reversed attack), white at chance
    cmap = matplotlib.colormaps["RdBu"].with_extremes(bad="#d9d9d9")
    image = None
    for ax, (title, values, failed) in zip(axes.flat, drawn):
        image = ax.imshow(np.ma.masked_invalid(values), cmap=cmap, vmin=0.0, vmax=1.0)
        _annotate(ax, values, failed)
        ax.set_title(title, fontsize=11)
        ax.set_xticks(range(len(panel.columns)), list(map(_side_label, panel.columns)), fontsize=8)
        ax.set_yticks(range(len(panel.rows)), list(map(_side_label, panel.rows)), fontsize=8)
        ax.set_xlabel("target", fontsize=9)
        ax.set_ylabel("shadow", fontsize=9)
    for ax in axes.flat[len(drawn) :]:
        ax.set_visible(False)
    fig.suptitle(f"{panel.title}: {HEATMAP_METRICS[metric]}, mean over seeds", fontsize=12)
    fig.colorbar(image, ax=axes, shrink=0.6, label=HEATMAP_METRICS[metric])
    save_figure(fig, path)


def _annotate(ax: Any, values: Matrix, failed: Matrix) -> None:
    """Write each cell's value (3 decimals) in it, with a count of failed seeds if any."""
    for (i, j), value in np.ndenumerate(values):
        n_failed = int(np.nan_to_num(failed[i, j]))
        if np.isfinite(value):
            text = f"{value:.3f}\n{n_failed} failed" if n_failed else f"{value:.3f}"
            ax.text(j, i, text, ha="center", va="center", fontsize=9,
                    color="white" if abs(value - 0.5) > 0.35 else "black")  # fmt: skip
        elif n_failed:
            ax.text(j, i, "failed", ha="center", va="center", fontsize=7, color="#a00000")
