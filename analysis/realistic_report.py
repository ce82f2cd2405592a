"""The report of the realistic grids: every attack under realistic lists, at low FPR.

`write_realistic_report(folders, to, pool_sizes)` reads result folders (runs of any parts of
`grids/realistic.yaml` and `grids/realistic-unseen.yaml`) and writes under `to`:

- `report.md`: per family, policy and seen-item rule, each attack's mean ROC AUC and TPR at 1%
  and 0.1% FPR; every cell with its intervals (bootstrap for the ROC AUC, exact for the TPRs)
  and the non-members behind them; the reference attack against its pool size (from
  bench/reference.py's CSV, when given); and who is most exposed (members found at 1% FPR by
  quartile of history length and of item popularity);
- `cells.csv` (every number), `summary.csv`, `pool_sizes.png` and `roc/` (each cell's attacks
  on linear and log axes).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.exposure import exposure_table, target_histories
from analysis.figures import pyplot, save_figure
from analysis.report import markdown as report_markdown
from analysis.results import load_results, load_scores
from analysis.roc import write_roc
from dlmia.io import atomic_write

GENERAL = ("itemcf", "lfm", "ncf")
ATTACKS = ("norm", "list-frequency", "own-hits", "biased", "dlmia", "reference")
SUMMARY = ("roc_auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr")
CELL_KEYS = ["family", "cell", "nonmember_lists", "exclude_seen"]


def write_realistic_report(
    folders: Sequence[str | Path], to: str | Path, pool_sizes: str | Path | None = None
) -> list[Path]:
    """Write the report, its tables and figures for the results under `folders`."""
    out = Path(to)
    frame = results_of(folders)
    summary = summary_table(frame)
    cells = cell_table(frame)
    paths = [
        atomic_write(out / "cells.csv", lambda tmp: cells.to_csv(tmp, index=False)),
        atomic_write(out / "summary.csv", lambda tmp: summary.to_csv(tmp, index=False)),
        *roc_figures(frame, out / "roc"),
    ]
    lines = ["# Realistic lists: every attack at low FPR", "", *source_lines(folders), "",
             "## Mean per family, policy and attack", "", markdown(summary), "",
             "## Every cell", "", markdown(cells), ""]  # fmt: skip
    if pool_sizes is not None and Path(pool_sizes).is_file():
        sizes = pool_size_table(Path(pool_sizes))
        paths.append(pool_size_figure(sizes, out / "pool_sizes.png"))
        lines += ["## The reference attack against its pool size", "",
                  f"From `{Path(pool_sizes).name}` (bench/reference.py).", "", markdown(sizes),
                  ""]  # fmt: skip
    lines += ["## Who is most exposed", "", *exposure_lines(frame), ""]
    text = "\n".join(lines)
    paths.append(atomic_write(out / "report.md", lambda tmp: tmp.write_text(text)))
    return paths


def results_of(folders: Sequence[str | Path]) -> pd.DataFrame:
    """The finished result rows of `folders`, with the family, the cell and the seen-item rule
    as columns and where each row was read."""
    frames = []
    for folder in folders:
        rows = load_results(folder)
        frames.append(rows[rows["status"] == "ok"].assign(folder=str(folder)))
    frame = pd.concat(frames, ignore_index=True)
    frame["family"] = [
        "general" if str(r) in GENERAL else "sequential" for r in frame["target_recommender"]
    ]
    frame["cell"] = [
        f"{sd}/{sr} -> {td}/{tr}" for sd, sr, td, tr in frame[
            ["shadow_dataset", "shadow_recommender", "target_dataset", "target_recommender"]
        ].astype(str).itertuples(index=False)
    ]  # fmt: skip
    frame["exclude_seen"] = [json.loads(c)["target"]["exclude_seen"] for c in frame["config"]]
    return frame


def summary_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per family, policy, seen-item rule and attack: the mean of each summary metric and the
    number of cells behind it."""
    keys = ["family", "nonmember_lists", "exclude_seen", "attack"]
    grouped = frame.groupby(keys, observed=True)
    table = grouped[list(SUMMARY)].mean().round(3)
    table["cells"] = grouped.size()
    return table.reset_index()


def cell_table(frame: pd.DataFrame) -> pd.DataFrame:
    """One row per cell and attack: ROC AUC and the low-FPR TPRs with their intervals."""
    def interval(row: pd.Series, metric: str, low: str, high: str) -> str:
        return f"{row[metric]:.3f} [{row[low]:.3f}, {row[high]:.3f}]"

    rows = []
    for _, row in frame.iterrows():
        rows.append({
            **{key: row[key] for key in CELL_KEYS}, "attack": row["attack"],
            "seed": row["seed"],
            "roc_auc": interval(row, "roc_auc", "roc_auc_low", "roc_auc_high"),
            **{f"tpr_at_{p}_fpr": interval(row, f"tpr_at_{p}_fpr", f"tpr_at_{p}_fpr_low",
                                          f"tpr_at_{p}_fpr_high") for p in ("1pct", "0.1pct")},
            "balanced_accuracy": round(float(row["balanced_accuracy"]), 3),
            "non_members": row["n_nonmembers"],
        })  # fmt: skip
    order = {name: i for i, name in enumerate(ATTACKS)}
    table = pd.DataFrame(rows)
    table["_order"] = table["attack"].astype(str).map(order)
    return table.sort_values([*CELL_KEYS, "_order"]).drop(columns="_order")


def roc_figures(frame: pd.DataFrame, folder: Path) -> list[Path]:
    """Every cell's attacks on one figure (linear and log axes), one figure per cell, policy
    and seed."""
    selectors = {(out, every_attack(cell_id)) for out, cell_id in zip(frame["folder"],
                                                                      frame["cell_id"])}
    return [write_roc(frame[frame["folder"] == out], out, selector, folder)
            for out, selector in sorted(selectors)]  # fmt: skip


def every_attack(cell_id: str) -> str:
    """The pattern of every attack's cell id beside `cell_id` (a grid's cell id is
    shadow__target__attack[__policy]__seed); another id stands for itself."""
    parts = str(cell_id).split("__")
    return "__".join([*parts[:2], "*", *parts[3:]]) if len(parts) >= 4 else str(cell_id)


def pool_size_table(path: Path) -> pd.DataFrame:
    """From bench/reference.py's CSV: the default scoring (own-dcg, global spread) of each
    cell, offline and online, against R."""
    bench = pd.read_csv(path)
    chosen = bench[(bench["scoring"] == "reference") & (bench["statistic"] == "own-dcg")
                   & (bench["spread"] == "global")]  # fmt: skip
    keys = ["dataset", "target", "pool", "policy", "exclude_seen", "variant", "references"]
    return chosen[[*keys, "roc_auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr"]].reset_index(
        drop=True
    )


def pool_size_figure(sizes: pd.DataFrame, path: Path) -> Path:
    """ROC AUC and TPR at 1% FPR against R, one line per cell and variant (log2 axis of R)."""
    fig, axes = pyplot().subplots(1, 2, figsize=(11, 4.2), layout="constrained")
    for keys, rows in sizes.groupby(["dataset", "target", "pool", "policy", "variant"]):
        name = f"{keys[0]} {keys[1]} (pool {keys[2]}), {keys[3]}, {keys[4]}"
        for ax, metric in zip(axes, ("roc_auc", "tpr_at_1pct_fpr")):
            ax.plot(rows["references"], rows[metric], marker="o", label=name)
    for ax, metric in zip(axes, ("ROC AUC", "TPR at 1% FPR")):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("reference recommenders R")
        ax.set_ylabel(metric)
    axes[0].legend(fontsize=7)
    fig.suptitle("The reference attack against its pool size (own-dcg, global spread)")
    return save_figure(fig, path)


def exposure_lines(frame: pd.DataFrame) -> list[str]:
    """For the reference attack under the model policy with seen items kept: members found at
    1% FPR per quartile of history length and of item popularity, one table per cell."""
    chosen = frame[(frame["attack"] == "reference") & (frame["nonmember_lists"] == "model")
                   & ~frame["exclude_seen"]]  # fmt: skip
    lines = []
    for _, row in chosen.iterrows():
        scores = load_scores(row["folder"], row["result_file"])
        table = exposure_table(scores, target_histories(row["config"]))
        lines += [f"### {row['cell']}, seed {row['seed']}", "", markdown(table), ""]
    return lines or ["No reference-attack cell under the model policy with seen items kept."]


def source_lines(folders: Sequence[str | Path]) -> list[str]:
    """Where the numbers come from."""
    return [f"Result folders: {', '.join(f'`{Path(f).name}`' for f in folders)}. "
            "ROC AUC with its 95% bootstrap interval; TPR at 1% and 0.1% FPR with exact "
            "(Clopper-Pearson) 95% intervals; `non_members` is how many non-members each "
            "low-FPR point rests on (668 allow 6 false positives at 1% and none at 0.1%)."]


def markdown(table: pd.DataFrame) -> str:
    """`table` as a GitHub markdown table, numbers to 3 decimals ("(none)" when empty)."""
    if table.empty:
        return "(none)"
    return report_markdown(table.map(lambda v: f"{v:.3f}" if isinstance(v, float) else str(v)))
