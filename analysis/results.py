"""Load a results folder into typed DataFrames: the results table (one row per cell x attack x
seed) and a search's trials table (one row per trial), both as `dlmia.schema` declares them.

Layouts read (all at once when several are present under `out_dir`):

- a grid run's `--out`: `results/<cell_id>.parquet`, `scores/<cell_id>.parquet` and, for
  searched cells, `trials/<cell_id>.parquet`;
- a `dlmia cell --out` folder: `DIR/result.parquet` and `DIR/scores.parquet`;
- a folder of such cell folders: `*/result.parquet` (the cell id is the sub-folder's name).

Every declared column exists with one dtype whatever the files hold (names categorical, metrics
float64, counts nullable Int64, text string), so a folder of failed cells only still has metric
columns (NA). A searched cell's result row is the trial the label-free objective selected;
`load_trials` gives every trial, with the picks shadow validation alone and the target labels
would have made flagged beside it.
"""

from __future__ import annotations

import re
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from dlmia.errors import DataError
from dlmia.layout import CELL_RESULT, CELL_SCORES, RESULTS_DIR, SCORES_DIR, TRIALS_DIR
from dlmia.schema import REQUIRED, RESULTS, SETTING_COLUMNS, SIDE_COLUMNS, TRIALS, typed

#: Known attacks first, in the paper's order; any other attack sorts after them.
ATTACK_ORDER: tuple[str, ...] = ("biased", "dlmia", "norm", "list-frequency")
_SORT = (*SETTING_COLUMNS, *SIDE_COLUMNS, "attack", "seed", "cell_id", "trial")


def result_files(out_dir: str | Path) -> list[Path]:
    """The result parquet files under `out_dir`, sorted (temporary files are not matched)."""
    out = Path(out_dir)
    if not out.is_dir():
        raise DataError(
            f"results folder {out} does not exist (pass the --out folder of a grid or cell run)"
        )
    patterns = (f"{RESULTS_DIR}/*.parquet", CELL_RESULT, f"*/{CELL_RESULT}")
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
    rows = {path: _read_rows(path, out) for path in files}
    return _sorted(_typed(rows, RESULTS, "result file"))


def load_trials(out_dir: str | Path) -> pd.DataFrame:
    """Every search trial under `out_dir` (`trials/*.parquet`) as one typed DataFrame, sorted by
    cell and trial; empty, with every declared column, when no cell was searched.

    Raises:
        DataError: the folder is missing or a trials file cannot be read as parquet.
    """
    out = Path(out_dir)
    if not out.is_dir():
        raise DataError(f"results folder {out} does not exist")
    rows = {
        path: [row | {"trials_file": path.relative_to(out).as_posix()}
               for row in _read_table(path, "trials file").to_pylist()]
        for path in sorted(out.glob(f"{TRIALS_DIR}/*.parquet"))
    }
    return _sorted(_typed(rows, TRIALS, "trials file"))


def scores_file(out_dir: str | Path, result_file: str) -> Path:
    """The per-user scores file beside a row's `result_file` (as held in the frame)."""
    path = Path(out_dir) / result_file
    if path.name == CELL_RESULT:
        return path.with_name(CELL_SCORES)
    return path.parent.parent / SCORES_DIR / path.name


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


def _typed(
    rows: dict[Path, list[dict[str, object]]], schema: dict[str, str], what: str
) -> pd.DataFrame:
    """The rows of every file as one frame typed by `schema`; DataError naming the first file
    whose values do not have the declared types (a seed that is a string, a metric that is a
    list), found file by file once the whole fails."""
    records = [row for file_rows in rows.values() for row in file_rows]
    try:
        return typed(pd.DataFrame.from_records(records), schema)
    except (ValueError, TypeError, pa.ArrowException) as whole:
        for path, file_rows in rows.items():
            try:
                typed(pd.DataFrame.from_records(file_rows), schema)
            except (ValueError, TypeError, pa.ArrowException) as exc:
                raise DataError(
                    f"{what} {path} holds a value of the wrong type ({exc}); delete it and "
                    "rerun the cell to rewrite it"
                ) from None
        raise DataError(f"the {what}s cannot be read together ({whole})") from None


def _read_rows(path: Path, out: Path) -> list[dict[str, object]]:
    """The rows of one result file, each with `result_file` set and a `cell_id` filled in."""
    table = _read_table(path, "result file")
    missing = [c for c in REQUIRED if c not in table.column_names]
    if missing:
        raise DataError(
            f"result file {path} lacks columns {missing}; every row needs {list(REQUIRED)}"
        )
    cell_id = path.parent.resolve().name if path.name == CELL_RESULT else path.stem
    rows = table.to_pylist()
    for row in rows:
        row["result_file"] = path.relative_to(out).as_posix()
        row["cell_id"] = row.get("cell_id") or cell_id
    return rows


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    """`frame` with known attacks in `ATTACK_ORDER`, sorted by setting, cell, seed and trial."""
    attacks = frame["attack"].cat.categories
    frame["attack"] = frame["attack"].cat.reorder_categories(ordered_attacks(attacks))
    return frame.sort_values([c for c in _SORT if c in frame], kind="stable", ignore_index=True)


def aggregate(
    frame: pd.DataFrame, metrics: tuple[str, ...] = ("balanced_accuracy", "roc_auc")
) -> pd.DataFrame:
    """One row per (grid, policy, vectors, cell sides, attack): `n_seeds`, `n_failed`,
    `<metric>_mean`, `<metric>_std`.

    Means and standard deviations (ddof 1; NA for a single seed) are over the finished seeds; a
    cell whose every seed failed keeps a row with NA metrics, so it can be shown as failed.
    """
    keys = [*SETTING_COLUMNS, *SIDE_COLUMNS, "attack"]
    finished = frame[frame["status"] == "ok"]
    stats = finished.groupby(keys, observed=True)[list(metrics)].agg(["mean", "std"])
    stats.columns = ["_".join(pair) for pair in stats.columns.to_flat_index()]
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
