"""`dlmia analyze`: a results folder's per-cell table, paper comparison, heatmaps and ROC curves.

Everything is written under `OUT/analysis/`: `comparison.csv` (every number, unrounded),
`comparison.md` (the same table, formatted), `side_quality.csv` (each side's recommender HR@10
beside popularity's), `heatmap_<panel>_<metric>.png` and, for chosen cells, `roc_<selector>.png`.
"""

from __future__ import annotations

import sys
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from analysis.heatmaps import write_heatmaps
from analysis.paper import compare_with_paper, label
from analysis.results import load_results, load_trials
from analysis.roc import select_rows, write_roc
from analysis.search import ORACLE_NOTE, PICKS, search_table, write_search_plots
from analysis.side_quality import side_quality_lines, side_quality_table
from dlmia.io import atomic_write
from dlmia.layout import ANALYSIS_DIR

_NOTE = "BA = balanced accuracy at threshold 0.5 (the paper's \"AUC\"), mean ± std over seeds."
_PAPER_NOTE = " The paper's columns are its balanced accuracies: compare them with BA only."


def summarize(out_dir: str | Path, *, roc: Sequence[str] = (), echo: bool = True) -> str:
    """Analyse `out_dir`: write the comparison table, heatmaps and ROC curves; return the report.

    Args:
        out_dir: a grid run's or a `dlmia cell` run's `--out` folder.
        roc: cell ids or shell patterns of cell ids whose ROC curves to draw (one figure each).
        echo: also print the report to stdout (a rich table on a terminal, plain text otherwise).

    Returns:
        The per-cell table, the failures and the paths written, as plain text.

    Raises:
        DataError: no readable results under `out_dir`.
        ConfigError: a `roc` selector matches no finished result.
    """
    out = Path(out_dir)
    frame = load_results(out)
    for selector in roc:
        select_rows(frame, selector)  # a typo fails before anything is written
    folder = out / ANALYSIS_DIR
    table = compare_with_paper(frame)
    shown = display_table(table)
    note = _NOTE + (_PAPER_NOTE if any(c.startswith("paper ") for c in shown.columns) else "")
    text = f"{markdown(shown)}\n\n{note}\n"
    paths = [
        atomic_write(folder / "comparison.csv", lambda tmp: table.to_csv(tmp, index=False)),
        atomic_write(folder / "comparison.md", lambda tmp: tmp.write_text(text)),
        *write_heatmaps(frame, folder),
        *(write_roc(frame, out, selector, folder) for selector in roc),
    ]
    sides = side_quality_table(frame)
    if not sides.empty:
        paths.append(atomic_write(folder / "side_quality.csv",
                                  lambda tmp: sides.to_csv(tmp, index=False)))  # fmt: skip
    searches = search_lines(out, folder, paths)
    failures = failure_lines(frame)
    tail = [*side_quality_lines(sides), *searches, *failures, "", "wrote:",
            *(f"  {path}" for path in paths)]  # fmt: skip
    report = "\n".join([shown.to_string(index=False), note, *tail])
    if echo:
        _print(report, shown, note, tail)
    return report


def display_table(table: pd.DataFrame) -> pd.DataFrame:
    """The comparison table as short formatted strings, one row per cell (attacks side by side)."""
    shown = pd.DataFrame(index=table.index)
    for column, title in (
        ("grid", "grid"), ("nonmember_lists", "policy"), ("vectors_fit_on", "vectors")
    ):
        if table[column].nunique() > 1:
            shown[title] = table[column]
    for role in ("shadow", "target"):
        sides = zip(table[f"{role}_dataset"], table[f"{role}_recommender"])
        shown[role] = [f"{label(dataset)}:{label(recommender)}" for dataset, recommender in sides]
    attacks = [c.removesuffix("_n_seeds") for c in table.columns if c.endswith("_n_seeds")]
    for metric, short in (("balanced_accuracy", "BA"), ("roc_auc", "ROC AUC")):
        for attack in attacks:
            stats = zip(table[f"{attack}_{metric}_mean"], table[f"{attack}_{metric}_std"])
            shown[f"{label(attack)} {short}"] = [_mean_std(mean, std) for mean, std in stats]
    for attack in ("biased", "dlmia"):
        values = table[f"paper_{attack}_balanced_accuracy"]
        if values.notna().any():
            shown[f"paper {label(attack)} BA"] = [_mean_std(v, float("nan")) for v in values]
    shown["seeds"] = table[[f"{a}_n_seeds" for a in attacks]].max(axis=1).astype(str)
    shown["failed"] = table[[f"{a}_n_failed" for a in attacks]].sum(axis=1).astype(str)
    return shown.reset_index(drop=True)


def search_lines(out: Path, folder: Path, paths: list[Path]) -> list[str]:
    """The searched cells' table (label-free pick, shadow-only pick, oracle) as lines; writes it
    (`search.csv`) and each search's plot, appending the paths to `paths`."""
    trials = load_trials(out)
    table = search_table(trials)
    if table.empty:
        return []
    paths.append(atomic_write(folder / "search.csv", lambda tmp: table.to_csv(tmp, index=False)))
    paths.extend(write_search_plots(trials, out, folder))
    shown = table.drop(columns="cell_id").copy()
    for column in [c for c in map(str, shown) if c.startswith(tuple(name for _, name in PICKS))]:
        shown[column] = [_mean_std(v, float("nan")) for v in shown[column]]
    return ["", "searched cells:", shown.to_string(index=False), ORACLE_NOTE]


def markdown(shown: pd.DataFrame) -> str:
    """A GitHub-flavoured markdown table of a frame of strings."""
    lines = ["| " + " | ".join(shown.columns) + " |", "|" + "---|" * len(shown.columns)]
    lines += ["| " + " | ".join(row) + " |" for row in shown.astype(str).itertuples(index=False)]
    return "\n".join(lines)


def failure_lines(frame: pd.DataFrame) -> list[str]:
    """One line per failed row: its cell id, attempts and the error's first line."""
    failed = frame[frame["status"] == "failed"]
    lines = [f"{len(failed)} failed:"] if len(failed) else []
    for cell_id, cause, tries in zip(failed["cell_id"], failed["error"], failed["attempts"]):
        text = "" if pd.isna(cause) else str(cause).strip()
        error = text.splitlines()[0] if text else "(no error recorded)"
        attempts = "" if pd.isna(tries) else f" after {tries} attempt(s)"
        lines.append(f"  {cell_id}{attempts}: {error}")
    return lines


def _mean_std(mean: float, std: float) -> str:
    if pd.isna(mean):
        return "-"
    return f"{mean:.3f}" if pd.isna(std) else f"{mean:.3f} ± {std:.3f}"


def _print(report: str, shown: pd.DataFrame, note: str, tail: list[str]) -> None:
    """Print the report: a rich table on a terminal wide enough for it, plain text otherwise."""
    from rich.console import Console
    from rich.table import Table

    console = Console()
    plain_width = max(len(line) for line in shown.to_string(index=False).splitlines())
    if not sys.stdout.isatty() or plain_width + 3 * len(shown.columns) > console.width:
        print(report)
        return
    table = Table(title="results per cell", caption=note)
    for column in shown.columns:
        left = column in ("grid", "policy", "vectors", "shadow", "target")
        table.add_column(column, justify="left" if left else "right", no_wrap=True)
    for row in shown.itertuples(index=False):
        table.add_row(*row)
    console.print(table)
    console.print("\n".join(tail), markup=False, highlight=False)
