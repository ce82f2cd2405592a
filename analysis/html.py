"""One self-contained HTML report of a results folder (an audit's or a grid's), for a privacy
reviewer: what was attacked, how much each attack finds, against which baselines, who is most
exposed, and what produced the numbers.

The page needs nothing at view time: styles are inline, figures are PNG data URIs, and there is
no script. `write_html(out)` writes `OUT/report.html` for an audit (`dlmia audit`) and
`OUT/analysis/report.html` for a grid or cell folder (`dlmia analyze --html`).
"""

from __future__ import annotations

import base64
import html
import io
import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

import dlmia
from analysis.exposure import exposure_table, ranking_table, target_histories
from analysis.figures import pyplot
from analysis.paper import label
from analysis.results import load_results, result_files
from analysis.roc import roc_figure
from analysis.side_quality import shown_table, side_quality_table, weak_side_warnings
from dlmia.errors import DlmiaError
from dlmia.io import atomic_write
from dlmia.layout import AUDIT_FILE, RESULTS_DIR, SCORES_DIR

BASELINES = ("norm", "list-frequency", "own-hits")
LOW_FPR = (("1pct", "1%"), ("0.1pct", "0.1%"), ("0pct", "0%"))
MAX_FIGURES = 24  # ROC figures on one page; the rest are named, not drawn
CELL_KEYS = ["grid", "nonmember_lists", "vectors_fit_on", "shadow_dataset", "shadow_recommender",
             "target_dataset", "target_recommender", "seed"]  # fmt: skip
STYLE = """
body { font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 72rem; color: #222; }
h1 { font-size: 1.6rem; }
h2 { font-size: 1.25rem; margin-top: 2rem; border-bottom: 1px solid #ccc; }
table { border-collapse: collapse; margin: 0.6rem 0; font-size: 0.85rem; }
th, td { border: 1px solid #ccc; padding: 0.25rem 0.5rem; text-align: right; }
th { background: #f2f2f2; } td.text, th.text { text-align: left; }
.note { color: #555; font-size: 0.9rem; max-width: 60rem; }
.warn { background: #fff4e5; border-left: 4px solid #e69500; padding: 0.5rem 0.8rem; }
img { max-width: 100%; }
"""


def write_html(out_dir: str | Path) -> Path:
    """Write the report of `out_dir` (an audit's or a grid's --out folder); return its path."""
    out = Path(out_dir)
    summary = audit_summary(out)
    frame = load_results(out) if result_files(out) else pd.DataFrame()  # unlabelled: scores only
    title = "dlmia audit report" if summary is not None else f"dlmia report: {out.name}"
    sections = [
        f"<h1>{escape(title)}</h1>",
        data_section(summary, frame),
        attacks_section(frame) if len(frame) else unlabelled_section(out, summary),
        baselines_section(frame) if len(frame) else "",
        quality_section(frame) if len(frame) else "",
        roc_section(frame, out) if len(frame) else "",
        exposure_section(frame, out, summary),
        provenance_section(frame, summary),
    ]
    page = ("<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">"
            f"<title>{escape(title)}</title><style>{STYLE}</style></head><body>\n"
            + "\n".join(part for part in sections if part) + "\n</body></html>\n")  # fmt: skip
    path = out / "report.html" if summary is not None else out / "analysis" / "report.html"
    return atomic_write(path, lambda tmp: tmp.write_text(page, encoding="utf-8"))


def audit_summary(out: Path) -> dict[str, Any] | None:
    """The audit's `audit.json` (None for a grid or cell folder)."""
    path = out / AUDIT_FILE
    return json.loads(path.read_text()) if path.is_file() else None


def audit_table(out_dir: str | Path) -> str:
    """The attacks of an audit as plain text: their metrics with labels, else their top users."""
    out = Path(out_dir)
    if result_files(out):
        return attack_table(load_results(out)).to_string(index=False)
    scores = pd.concat([pd.read_parquet(path).assign(attack=path.stem)
                        for path in sorted((out / SCORES_DIR).glob("*.parquet"))])  # fmt: skip
    top = scores[scores["rank"] <= 5].sort_values(["attack", "rank"])
    return ("no membership labels were given: scores and rankings only\n"
            + top[["attack", "rank", "user", "score"]].to_string(index=False))  # fmt: skip


def data_section(summary: dict[str, Any] | None, frame: pd.DataFrame) -> str:
    """What was attacked: the audit's data and settings, or the grid's cells."""
    if summary is not None:
        shown = {k: v for k, v in summary.items() if k not in ("dataset", "dataset_spec")}
        shown.update({f"dataset {k}": v for k, v in summary.get("dataset", {}).items()})
        rows = "".join(f"<tr><th class=text>{escape(key)}</th><td class=text>{escape(value)}"
                       "</td></tr>" for key, value in shown.items())  # fmt: skip
        return f"<h2>Data and settings</h2><table>{rows}</table>"
    cells = frame.drop_duplicates(CELL_KEYS)[CELL_KEYS] if len(frame) else frame
    return f"<h2>Cells</h2>{table_html(cells)}" if len(cells) else ""


def attack_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per cell and attack: ROC AUC with its interval, TPR at 1%, 0.1% and 0% FPR with exact
    intervals, the non-members behind them, balanced accuracy."""
    rows = []
    for _, row in frame[frame["status"] == "ok"].iterrows():
        entry: dict[str, Any] = {"cell": cell_name(row), "attack": label(str(row["attack"])),
                                 "ROC AUC": interval(row, "roc_auc")}  # fmt: skip
        for key, shown in LOW_FPR:
            entry[f"TPR at {shown} FPR"] = interval(row, f"tpr_at_{key}_fpr")
        entry["non-members"] = int(row["n_nonmembers"])
        entry["FP allowed at 1% / 0.1%"] = (
            f"{int(row['fp_allowed_at_1pct_fpr'])} / {int(row['fp_allowed_at_0.1pct_fpr'])}"
        )
        entry["balanced accuracy"] = f"{row['balanced_accuracy']:.3f}"
        rows.append(entry)
    return pd.DataFrame(rows)


def attacks_section(frame: pd.DataFrame) -> str:
    note = ("ROC AUC with its 95% bootstrap interval over the scored users; TPR at low FPR with "
            "its exact (Clopper-Pearson) 95% interval. At 0.1% FPR a side of a few hundred "
            "non-members allows no false positive: the point is then the 0% one.")  # fmt: skip
    return f"<h2>Attacks</h2>{table_html(attack_table(frame))}<p class=note>{note}</p>"


def baselines_section(frame: pd.DataFrame) -> str:
    """Every attack beside the better training-free baseline of its cell, and what that says."""
    finished = frame[frame["status"] == "ok"]
    rows = []
    for _, cell in finished.groupby(CELL_KEYS, observed=True, sort=False):
        base = cell[cell["attack"].isin(BASELINES)]
        if base.empty:
            continue
        best = base.sort_values("roc_auc", ascending=False).iloc[0]
        for _, row in cell[~cell["attack"].isin(BASELINES)].iterrows():
            margin = float(row["roc_auc"] - best["roc_auc"])
            better = f"{label(str(best['attack']))} {best['roc_auc']:.3f}"
            rows.append({
                "cell": cell_name(row), "attack": label(str(row["attack"])),
                "ROC AUC": f"{row['roc_auc']:.3f}", "better baseline": better,
                "margin": f"{margin:+.3f}", "reading": reading(margin, best),
            })  # fmt: skip
    note = ("norm (-|d|), list-frequency and own-hits (the user's own items handed back) need no "
            "shadow model and no labels: what they reach is what the protocol gives away for "
            "free. An attack's contribution is its margin over the best of them.")  # fmt: skip
    table = table_html(pd.DataFrame(rows)) if rows else "<p>No baseline ran beside them.</p>"
    return f"<h2>Against the training-free baselines</h2>{table}<p class=note>{note}</p>"


def quality_section(frame: pd.DataFrame) -> str:
    """Each side's recommender beside popularity, a warning per side that did not beat it."""
    table = side_quality_table(frame)
    if table.empty:
        return ""
    warnings = "".join(f"<p class=warn>{escape(sentence)}</p>"
                       for sentence in weak_side_warnings(table))  # fmt: skip
    note = ("HR@10: the share of a side's non-members whose next item is in the top 10 the "
            "side's recommender gives them; popularity's, counted over the same members, is the "
            "floor; 'both 0': too sparse to tell. A shadow no better than popularity may serve "
            "its members lists like its non-members', and then its cells rest on chance.")
    return (f"<h2>Recommenders against popularity</h2>{table_html(shown_table(table))}"
            f"{warnings}<p class=note>{note}</p>")  # fmt: skip


def reading(margin: float, best: pd.Series) -> str:
    """What an attack's margin over the better baseline supports."""
    if best["roc_auc"] >= 0.95:
        return "the lists give members away without any attack (protocol leak)"
    if margin > 0.02:
        return "the attack finds members the baselines miss"
    if margin < -0.02:
        return "below a training-free score: the attack learnt nothing that transfers"
    return "no better than a training-free score"


def roc_section(frame: pd.DataFrame, out: Path) -> str:
    """Each cell's attacks on linear and log axes (at most MAX_FIGURES cells drawn)."""
    parts = []
    groups = list(frame[frame["status"] == "ok"].groupby(CELL_KEYS, observed=True, sort=False))
    for _, rows in groups[:MAX_FIGURES]:
        fig = roc_figure(rows, out, cell_name(rows.iloc[0]))
        parts.append(f"<img alt=\"ROC curves of {escape(cell_name(rows.iloc[0]))}\" "
                     f"src=\"data:image/png;base64,{png(fig)}\">")  # fmt: skip
    if len(groups) > MAX_FIGURES:
        parts.append(f"<p class=note>{len(groups) - MAX_FIGURES} more cells not drawn; "
                     "`dlmia analyze --roc CELL` draws any of them.</p>")  # fmt: skip
    return "<h2>ROC curves</h2>" + "".join(parts)


def exposure_section(frame: pd.DataFrame, out: Path, summary: dict[str, Any] | None) -> str:
    """Who is most exposed: with labels, the members found at 1% FPR by history length and
    item popularity under each cell's strongest attack; without, who is ranked first."""
    if len(frame):
        parts = []
        finished = frame[(frame["status"] == "ok") & ~frame["attack"].isin(BASELINES)]
        for _, cell in list(finished.groupby(CELL_KEYS, observed=True, sort=False))[:MAX_FIGURES]:
            best = cell.sort_values(["tpr_at_1pct_fpr", "roc_auc"], ascending=False).iloc[0]
            scores = pd.read_parquet(scores_path(out, str(best["result_file"])))
            title = f"{escape(cell_name(best))}: {escape(label(str(best['attack'])))}"
            try:
                histories = target_histories(str(best["config"]))
            except DlmiaError as exc:  # the dataset is not readable where the report is made
                parts.append(f"<h3>{title}</h3><p class=note>not shown: {escape(exc)}</p>")
                continue
            table = exposure_table(dataset_users(scores), histories)
            parts.append(f"<h3>{title}</h3>{table_html(table)}")
        note = ("Users split into quartiles of history length and of the mean popularity of their "
                "items; per quartile, the share of its members the attack finds at 1% FPR.")
        return f"<h2>Who is most exposed</h2>{''.join(parts)}<p class=note>{note}</p>"
    if summary is None:
        return ""
    parts = []
    for path in sorted((out / SCORES_DIR).glob("*.parquet")):
        scores = dataset_users(pd.read_parquet(path))
        table = ranking_table(scores, target_histories(json.dumps({"target": {
            "dataset": (summary or {})["dataset_spec"]}})))
        parts.append(f"<h3>{escape(label(path.stem))}</h3>{table_html(table)}")
    note = ("Without labels: per quartile of history length and of item popularity, the share of "
            "its users each attack ranks in its top 5%, the users it would flag first.")
    return f"<h2>Who is ranked most exposed</h2>{''.join(parts)}<p class=note>{note}</p>"


def unlabelled_section(out: Path, summary: dict[str, Any] | None) -> str:
    """An audit without labels: said plainly, with each attack's top-ranked users."""
    warn = ("<p class=warn>No membership labels were given (<code>--members</code>): this audit "
            "has scores and rankings only, no measure of how well any attack separates members "
            "from non-members.</p>")  # fmt: skip
    tops = []
    for path in sorted((out / SCORES_DIR).glob("*.parquet")):
        scores = pd.read_parquet(path).sort_values("rank").head(10)
        tops.append(f"<h3>{escape(label(path.stem))}: the 10 users ranked first</h3>"
                    f"{table_html(scores[['rank', 'user', 'score']])}")  # fmt: skip
    return f"<h2>Attacks</h2>{warn}{''.join(tops)}"


def provenance_section(frame: pd.DataFrame, summary: dict[str, Any] | None) -> str:
    """What produced the numbers: versions, host, commit, settings."""
    facts: dict[str, Any] = {"report by": f"dlmia {dlmia.__version__}"}
    if len(frame):
        for column in ("dlmia_version", "git_commit", "torch_version", "numpy_version",
                       "python_version", "host", "machine"):  # fmt: skip
            values = sorted(frame[column].dropna().astype(str).unique())
            facts[column] = ", ".join(values)
        settings = frame.drop_duplicates("attack")[["attack", "attack_settings"]]
        facts.update({f"{label(str(a))} settings": s for a, s in settings.itertuples(index=False)})
    rows = "".join(f"<tr><th class=text>{escape(key)}</th><td class=text>{escape(value)}</td>"
                   "</tr>" for key, value in facts.items())  # fmt: skip
    return f"<h2>Provenance</h2><table>{rows}</table>"


def dataset_users(scores: pd.DataFrame) -> pd.DataFrame:
    """`scores` with `user` the dataset user index (an audit's scores name users by their raw
    id, and keep the index as `user_index`)."""
    return scores.assign(user=scores["user_index"]) if "user_index" in scores else scores


def scores_path(out: Path, result_file: str) -> Path:
    """The scores file beside result file `result_file` (relative to `out`)."""
    result = out / result_file
    return result.parent.parent / SCORES_DIR / result.name if result.parent.name == RESULTS_DIR \
        else result.with_name("scores.parquet")


def interval(row: pd.Series, metric: str) -> str:
    """`metric` with its interval, as `0.907 [0.890, 0.922]`."""
    low, high = row.get(f"{metric}_low"), row.get(f"{metric}_high")
    if low is None or pd.isna(low):
        return f"{row[metric]:.3f}"
    return f"{row[metric]:.3f} [{low:.3f}, {high:.3f}]"


def cell_name(row: pd.Series) -> str:
    """`dataset/recommender -> dataset/recommender` (policy, seed) of a result row."""
    shadow = f"{label(str(row['shadow_dataset']))}/{label(str(row['shadow_recommender']))}"
    target = f"{label(str(row['target_dataset']))}/{label(str(row['target_recommender']))}"
    return f"{shadow} -> {target} ({row['nonmember_lists']}, seed {row['seed']})"


def table_html(frame: pd.DataFrame) -> str:
    """`frame` as an HTML table: numbers right-aligned (floats to 3 decimals), text left."""
    def cell(value: Any) -> str:
        if isinstance(value, float):
            return "<td>-</td>" if math.isnan(value) else f"<td>{value:.3f}</td>"
        if isinstance(value, (int, np.integer)):
            return f"<td>{value}</td>"
        return f"<td class=text>{escape(value)}</td>"

    head = "".join(f"<th>{escape(column)}</th>" for column in frame.columns)
    body = "".join("<tr>" + "".join(cell(v) for v in row) + "</tr>"
                   for row in frame.itertuples(index=False))  # fmt: skip
    return f"<table><tr>{head}</tr>{body}</table>"


def png(fig: Any) -> str:
    """`fig` as base64 PNG (closed afterwards)."""
    buffer = io.BytesIO()
    fig.savefig(buffer, format="png", dpi=100)
    pyplot().close(fig)
    return base64.b64encode(buffer.getvalue()).decode("ascii")


def escape(value: Any) -> str:
    return html.escape(str(value))
