"""Does a grid's search pay for itself? A searched run of a grid against the same grid at fixed
defaults (`--no-search`), cell by cell, for one attack.

Prints every cell's ROC AUC and balanced accuracy at the defaults and searched, the difference,
which trial the search picked (1 = the defaults) and whether that pick was degenerate; then the
means and how many cells the search made worse or better by more than `--tolerance` ROC AUC.
Target labels enter only through the recorded metrics of both runs.

    .venv/bin/python bench/search_vs_defaults.py out/paper-general out/general-fixed/paper-general
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from analysis.results import load_results, load_trials  # noqa: E402

METRICS = ["roc_auc", "balanced_accuracy"]


def cell_name(frame: pd.DataFrame) -> pd.Series:
    part = {key: frame[key].astype(str) for key in
            ("shadow_dataset", "shadow_recommender", "target_dataset", "target_recommender")}
    return (part["shadow_dataset"] + "/" + part["shadow_recommender"] + " -> "
            + part["target_dataset"] + "/" + part["target_recommender"])  # fmt: skip


def comparison(searched: Path, fixed: Path, attack: str) -> pd.DataFrame:
    """One row per cell of `attack`: defaults' and searched metrics, their difference, the pick."""
    rows = {}
    for label, folder in (("defaults", fixed), ("searched", searched)):
        frame = load_results(folder)
        frame = frame[(frame["attack"] == attack) & (frame["status"] == "ok")]
        rows[label] = frame.set_index(cell_name(frame))[[*METRICS, "cell_id"]]
    table = pd.merge(rows["defaults"][METRICS], rows["searched"][METRICS], left_index=True,
                     right_index=True, suffixes=("_defaults", "_searched"))  # fmt: skip
    for metric in METRICS:
        table[f"{metric}_gain"] = table[f"{metric}_searched"] - table[f"{metric}_defaults"]
    trials = load_trials(searched)
    picks = trials[trials["selected"]].set_index("cell_id")
    cells = rows["searched"]["cell_id"]
    table["pick"] = cells.map(picks["trial"])
    if "degenerate" in picks:  # trials tables written before the pick rule have neither
        table["pick_defaults"] = cells.map(picks["defaults"])
        table["pick_degenerate"] = cells.map(picks["degenerate"])
        degenerate = trials.groupby("cell_id")["degenerate"].sum()
        table["degenerate_trials"] = cells.map(degenerate)
    return table.sort_index()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("searched", type=Path, help="the searched run's output folder")
    parser.add_argument("fixed", type=Path, help="the --no-search run's output folder")
    parser.add_argument("--attack", default="dlmia")
    parser.add_argument("--tolerance", type=float, default=0.01)
    parser.add_argument("--csv", type=Path, help="write the table here too")
    args = parser.parse_args()
    table = comparison(args.searched, args.fixed, args.attack)
    pd.set_option("display.width", 200)
    print(table.round(3).to_string())
    gain = table["roc_auc_gain"]
    print(f"\n{len(table)} cells: mean ROC AUC {table['roc_auc_defaults'].mean():.3f} at the "
          f"defaults, {table['roc_auc_searched'].mean():.3f} searched; mean balanced accuracy "
          f"{table['balanced_accuracy_defaults'].mean():.3f} / "
          f"{table['balanced_accuracy_searched'].mean():.3f}; worse by more than "
          f"{args.tolerance} on {(gain < -args.tolerance).sum()} cells, better on "
          f"{(gain > args.tolerance).sum()}; trial 1 (the defaults) picked on "
          f"{(table['pick'] == 1).sum()}")
    if args.csv:
        table.to_csv(args.csv)


if __name__ == "__main__":
    main()
