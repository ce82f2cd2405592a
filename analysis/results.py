"""Load a results folder into one typed DataFrame: one row per cell x attack x seed.

Layouts read (all at once when several are present under `out_dir`):

- a grid run's `--out`: `results/<cell_id>.parquet` (one row each) and `scores/<cell_id>.parquet`;
- a `dlmia cell --out DIR` folder: `DIR/result.parquet` and `DIR/scores.parquet`;
- a folder of such cell folders: `*/result.parquet` (the cell id is the sub-folder's name).

Columns are those of `dlmia.results.result_row` plus the runner's `grid`, `cell_id`, `cell_key`,
`shadow_side_id`, `target_side_id`, `attempts`, `error` (one line), `traceback` (a failed
cell's whole error text), `finished_at` (Unix time), and
`result_file` (where the row was read, relative to `out_dir`). Every known column (`SCHEMA`)
exists with one dtype whatever the files hold (names categorical, metrics float64, counts
nullable Int64, text string), so a folder of failed cells only still has metric columns (NA).

A searched cell has one row per trial: `trial` numbers it (NA: not a search trial), `selected`
marks the row that is the cell's result (True where a file lacks it, as for unsearched cells),
`shadow_pick` and `oracle_pick` the trials shadow validation alone and the target labels would
have picked, and the label-free criteria sit beside the recorded target metrics
(`used_for_selection` is False: no target metric ranked anything). `aggregate`, the heatmaps and
the paper comparison use selected rows only. Columns the loader does not know (a search's
`param.*` settings) are kept as read.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dlmia.errors import DataError

#: The metrics `dlmia.metrics.attack_metrics` returns as fractions in [0, 1].
METRICS: tuple[str, ...] = (
    "roc_auc",
    "balanced_accuracy",
    "accuracy",
    "precision",
    "recall",
    "f1",
    "tpr_at_1pct_fpr",
    "tpr_at_0.1pct_fpr",
)
#: What identifies a cell's two sides (a cell is these plus an attack).
SIDE_COLUMNS: tuple[str, ...] = (
    "shadow_dataset",
    "shadow_recommender",
    "target_dataset",
    "target_recommender",
)
#: Columns every result file must hold.
REQUIRED: tuple[str, ...] = (*SIDE_COLUMNS, "attack", "seed", "status")
#: Known attacks first, in the paper's order; any other attack sorts after them.
ATTACK_ORDER: tuple[str, ...] = ("biased", "dlmia", "norm", "list-frequency")

_NAME, _TEXT, _INT, _FLOAT = "category", "string", "Int64", "float64"
#: Every known column and its dtype, in the frame's column order.
SCHEMA: dict[str, str] = {
    "grid": _NAME,
    "shadow_dataset": _NAME,
    "shadow_recommender": _NAME,
    "target_dataset": _NAME,
    "target_recommender": _NAME,
    "attack": _NAME,
    "seed": _INT,
    "nonmember_lists": _NAME,
    "vectors_fit_on": _NAME,
    "cell_id": _TEXT,
    "cell_key": _TEXT,
    "status": _NAME,
    "attempts": _INT,
    "error": _TEXT,
    "traceback": _TEXT,
    "trial": _INT,
    "study_trial": _INT,
    "state": _NAME,
    "selected": "boolean",
    "search": _TEXT,
    "finished": "boolean",
    "epochs": _INT,
    "objective": _FLOAT,
    "shadow_val_auc": _FLOAT,
    "shadow_val_loss": _FLOAT,
    "reverse_auc": _FLOAT,
    "reverse_loss": _FLOAT,
    "residual_mmd": _FLOAT,
    "shadow_pick": "boolean",
    "oracle_pick": "boolean",
    "used_for_selection": "boolean",
    **dict.fromkeys(METRICS, _FLOAT),
    "roc_auc_low": _FLOAT,
    "roc_auc_high": _FLOAT,
    "n_shadow": _INT,
    "n_target": _INT,
    "n_members": _INT,
    "n_nonmembers": _INT,
    "tp": _INT,
    "fp": _INT,
    "tn": _INT,
    "fn": _INT,
    "fp_allowed_at_1pct_fpr": _INT,
    "tp_at_1pct_fpr": _INT,
    "fp_allowed_at_0.1pct_fpr": _INT,
    "tp_at_0.1pct_fpr": _INT,
    "shadow_zero_vectors": _INT,
    "target_zero_vectors": _INT,
    "shadow_history_coverage": _FLOAT,
    "target_history_coverage": _FLOAT,
    "shadow_list_coverage": _FLOAT,
    "target_list_coverage": _FLOAT,
    "seconds": _FLOAT,
    "attack_seconds": _FLOAT,
    "finished_at": _FLOAT,
    "shadow_side_id": _NAME,
    "target_side_id": _NAME,
    "config": _TEXT,
    "attack_settings": _TEXT,
    "details": _TEXT,
    "host": _NAME,
    "dlmia_version": _NAME,
    "git_commit": _NAME,
    "torch_version": _NAME,
    "numpy_version": _NAME,
    "python_version": _NAME,
    "result_file": _TEXT,
}
#: Values that stand in for an absent or null entry (every other one stays NA).
_DEFAULTS: dict[str, object] = {
    "grid": "",
    "selected": True,
    "nonmember_lists": "popular",  # rows written before the policy had its own column
    "vectors_fit_on": "vectorization",
}
#: What, beside its two sides and the attack, tells one cell's result apart from another's.
SETTING_COLUMNS: tuple[str, ...] = ("grid", "nonmember_lists", "vectors_fit_on")
_SORT = (*SETTING_COLUMNS, *SIDE_COLUMNS, "attack", "seed", "trial", "cell_id")


def result_files(out_dir: str | Path) -> list[Path]:
    """The result parquet files under `out_dir`, sorted (temporary files are not matched)."""
    out = Path(out_dir)
    if not out.is_dir():
        raise DataError(
            f"results folder {out} does not exist (pass the --out folder of a grid or cell run)"
        )
    patterns = ("results/*.parquet", "result.parquet", "*/result.parquet")
    return sorted({path for pattern in patterns for path in out.glob(pattern)})


def load_results(out_dir: str | Path) -> pd.DataFrame:
    """Every result row under `out_dir` as one typed, sorted DataFrame (index 0..n-1).

    Raises:
        DataError: the folder is missing or holds no result file, a file cannot be read as
            parquet, or a file lacks one of the `REQUIRED` columns.
    """
    out = Path(out_dir)
    files = result_files(out)
    if not files:
        raise DataError(
            f"no results in {out}: expected results/*.parquet (a grid run's --out folder) or "
            "result.parquet (a `dlmia cell --out` folder)"
        )
    records = [record for path in files for record in _read_rows(path, out)]
    return _typed(pd.DataFrame.from_records(records))


def scores_file(out_dir: str | Path, result_file: str) -> Path:
    """The per-user scores file beside a row's `result_file` (as held in the frame)."""
    path = Path(out_dir) / result_file
    if path.name == "result.parquet":
        return path.with_name("scores.parquet")
    return path.parent.parent / "scores" / path.name


def load_scores(out_dir: str | Path, result_file: str) -> pd.DataFrame:
    """The (user, label, score) rows of one result; DataError naming the file when unreadable."""
    path = scores_file(out_dir, result_file)
    if not path.exists():
        raise DataError(f"scores file {path} is missing (the ROC curve of {result_file} needs it)")
    frame = _read_table(path, "scores file").to_pandas()
    missing = {"label", "score"} - set(frame.columns)
    if missing:
        raise DataError(
            f"scores file {path} lacks columns {sorted(missing)}; expected user, label, score"
        )
    return frame


def ordered_attacks(attacks: object) -> list[str]:
    """Attack names present, known ones in `ATTACK_ORDER`, the rest alphabetically after them."""
    names = {str(a) for a in pd.unique(pd.Series(attacks, dtype="object").dropna())}
    known = [a for a in ATTACK_ORDER if a in names]
    return known + sorted(names - set(known))


def _read_table(path: Path, what: str) -> pa.Table:
    try:
        with pq.ParquetFile(path) as file:  # for one small file, 2x faster than pq.read_table
            return file.read(use_threads=False)
    except (OSError, pa.ArrowException) as exc:
        raise DataError(
            f"cannot read {what} {path}: {exc} (delete it and rerun the cell to rewrite it)"
        ) from exc


def _read_rows(path: Path, out: Path) -> list[dict[str, object]]:
    """The rows of one result file, each with `result_file` set and a `cell_id` filled in."""
    table = _read_table(path, "result file")
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise DataError(
            f"result file {path} lacks columns {missing}; every row needs {list(REQUIRED)}"
        )
    cell_id = path.parent.resolve().name if path.name == "result.parquet" else path.stem
    rows = table.to_pylist()
    for row in rows:
        row["result_file"] = path.relative_to(out).as_posix()
        row["cell_id"] = row.get("cell_id") or cell_id
    return rows


def _typed(frame: pd.DataFrame) -> pd.DataFrame:
    """Give every known column its dtype (adding absent ones as NA) and sort the rows."""
    for column, dtype in SCHEMA.items():
        values = frame[column] if column in frame else pd.Series(None, frame.index, "object")
        values = values.astype("string" if dtype == _NAME else dtype)
        if column in _DEFAULTS:
            values = values.fillna(_DEFAULTS[column])
        frame[column] = values.astype(dtype)
    attacks = frame["attack"].cat.categories
    frame["attack"] = frame["attack"].cat.reorder_categories(ordered_attacks(attacks))
    columns = [*SCHEMA, *(c for c in frame.columns if c not in SCHEMA)]
    keys = [c for c in _SORT if c in frame]
    return frame[columns].sort_values(keys, kind="stable", ignore_index=True)


def aggregate(
    frame: pd.DataFrame, metrics: tuple[str, ...] = ("balanced_accuracy", "roc_auc")
) -> pd.DataFrame:
    """One row per (grid, policy, vectors, cell sides, attack): `n_seeds`, `n_failed`,
    `<metric>_mean`, `<metric>_std`.

    Only `selected` rows count (a cell's result, not the other trials of a search). Means and
    standard deviations (ddof 1; NA for a single seed) are over the finished seeds; a cell whose
    every seed failed keeps a row with NA metrics, so it can be shown as failed.
    """
    keys = [*SETTING_COLUMNS, *SIDE_COLUMNS, "attack"]
    frame = frame[frame["selected"]]
    finished = frame[frame["status"] == "ok"]
    stats = finished.groupby(keys, observed=True)[list(metrics)].agg(["mean", "std"])
    stats.columns = [f"{metric}_{stat}" for metric, stat in stats.columns]
    counts = pd.DataFrame(
        {
            "n_seeds": finished.groupby(keys, observed=True).size(),
            "n_failed": frame[frame["status"] == "failed"].groupby(keys, observed=True).size(),
        }
    )
    table = counts.join(stats, how="left").fillna({"n_seeds": 0, "n_failed": 0})
    table = table.astype({"n_seeds": "int64", "n_failed": "int64"}).reset_index()
    return table.sort_values(keys, kind="stable", ignore_index=True)


def file_slug(text: str) -> str:
    """`text` made safe as part of a file name (runs of other characters become '-')."""
    return re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-") or "cells"
