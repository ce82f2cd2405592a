"""The two tables dlmia writes, declared once: what a row is, every column and its dtype.

- **Results** (`RESULTS`): one row per cell x attack x seed; `results/<cell_id>.parquet` in a
  grid run's folder, `result.parquet` in a `dlmia cell --out` folder. A searched cell's row is
  the trial its label-free objective selected: `search`, `trial` (which one), `n_trials` and
  that trial's criteria sit beside its metrics; unsearched cells leave them NA.
- **Trials** (`TRIALS`): one row per trial of a searched cell; `trials/<cell_id>.parquet`. Each
  row has the cell's identity, the trial's settings (`attack_settings`, and `param.*` columns,
  which depend on the search space and are kept as written), its label-free criteria, the target
  metrics recorded after the search (`used_for_selection` is False: no target metric ranked
  anything) and three flags: `selected` (the cell's result), `shadow_pick` (what shadow
  validation alone would pick) and `oracle_pick` (the best target ROC AUC: chosen on test
  labels, for the record only), beside `defaults`, `predicted_share` and `degenerate` (the
  label-free checks of tune.search.PickRule).

The writers (`dlmia.results`, `tune.outputs`) produce only declared columns, `typed` gives a
loaded table every declared column with its dtype (NA where a file lacks it), and the tests
check the writers against this module.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any, cast

import pandas as pd

from dlmia.metrics import LOW_FPR_POINTS

NAME, TEXT, INT, FLOAT, BOOL = "category", "string", "Int64", "float64", "boolean"

#: The metrics of `dlmia.metrics.attack_metrics` that are fractions in [0, 1].
METRICS: tuple[str, ...] = (
    "roc_auc", "balanced_accuracy", "accuracy", "precision", "recall", "f1",
    *(f"tpr_at_{suffix}_fpr" for suffix, _ in LOW_FPR_POINTS),
)  # fmt: skip
#: The counts behind them.
COUNTS: tuple[str, ...] = (
    "n_members", "n_nonmembers", "tp", "fp", "tn", "fn",
    *(f"{kind}_at_{suffix}_fpr" for suffix, _ in LOW_FPR_POINTS for kind in ("fp_allowed", "tp")),
)  # fmt: skip
#: The intervals of the metrics: bootstrap for the ROC AUC, exact for the low-FPR TPRs.
INTERVALS: tuple[str, ...] = (
    "roc_auc_low", "roc_auc_high",
    *(f"tpr_at_{suffix}_fpr_{end}" for suffix, _ in LOW_FPR_POINTS for end in ("low", "high")),
)  # fmt: skip
#: Every key `attack_metrics` returns: the metrics, their intervals and the counts.
ATTACK_METRICS: tuple[str, ...] = (*METRICS, *INTERVALS, *COUNTS)
#: What `dlmia.selection.criteria` returns for a fitted attack, the combined `objective` last.
CRITERIA: tuple[str, ...] = (
    "shadow_val_auc", "shadow_val_loss", "reverse_auc", "reverse_loss", "residual_mmd",
    "objective",
)  # fmt: skip
#: What identifies a cell's two sides (a cell is these plus an attack).
SIDE_COLUMNS: tuple[str, ...] = (
    "shadow_dataset", "shadow_recommender", "target_dataset", "target_recommender",
)  # fmt: skip
#: What, beside its two sides and the attack, tells one cell's result apart from another's.
SETTING_COLUMNS: tuple[str, ...] = ("grid", "nonmember_lists", "vectors_fit_on")
#: Columns every result file must hold.
REQUIRED: tuple[str, ...] = (*SIDE_COLUMNS, "attack", "seed", "status")

#: Who a row belongs to: the same columns, in the same order, open both tables.
IDENTITY: dict[str, str] = {
    "grid": NAME,
    **dict.fromkeys(SIDE_COLUMNS, NAME),
    "attack": NAME,
    "seed": INT,
    "nonmember_lists": NAME,
    "vectors_fit_on": NAME,
    "cell_id": TEXT,
}
#: A searched cell's search and the trial it selected (NA for unsearched cells).
_SEARCH: dict[str, str] = {"search": TEXT, "trial": INT, "n_trials": INT, "epochs": INT}
_SIDE_FACTS: dict[str, str] = {
    f"{role}_{fact}": dtype
    for fact, dtype in (
        ("zero_vectors", INT), ("history_coverage", FLOAT), ("list_coverage", FLOAT),
        ("hr_at_10", FLOAT), ("popularity_hr_at_10", FLOAT),
    )
    for role in ("shadow", "target")
}  # fmt: skip
_PROVENANCE: dict[str, str] = dict.fromkeys(
    ("host", "machine", "dlmia_version", "git_commit", "torch_version", "numpy_version",
     "python_version"),
    NAME,
)

#: Every column of the results table and its dtype, in the loaded frame's column order.
RESULTS: dict[str, str] = {
    **IDENTITY,
    "cell_key": TEXT,
    "status": NAME,
    "attempts": INT,
    "error": TEXT,  # one line; "" in an ok row
    "traceback": TEXT,  # a failed cell's whole error text
    **dict.fromkeys(METRICS, FLOAT),
    # 95% intervals: bootstrap over target users for roc_auc, exact for the low-FPR TPRs
    **dict.fromkeys(INTERVALS, FLOAT),
    **_SEARCH,
    **dict.fromkeys(CRITERIA, FLOAT),
    "n_shadow": INT,
    "n_target": INT,
    **dict.fromkeys(COUNTS, INT),
    **_SIDE_FACTS,
    "seconds": FLOAT,  # the whole cell (a searched cell: the whole search)
    "attack_seconds": FLOAT,  # fitting and scoring the attack (the selected trial's)
    "finished_at": FLOAT,  # Unix time
    "shadow_side_id": NAME,
    "target_side_id": NAME,
    "config": TEXT,  # the CellConfig as JSON
    "attack_settings": TEXT,  # the attack's resolved settings as JSON
    "details": TEXT,  # everything else the cell reported, as JSON
    **_PROVENANCE,
    "result_file": TEXT,  # set by the loader: where the row was read, relative to the folder
}
#: Every column of the trials table and its dtype (`param.*` columns come after these).
TRIALS: dict[str, str] = {
    **IDENTITY,
    "search": TEXT,
    "trial": INT,  # 1, 2, ... in study order
    "study_trial": INT,  # Optuna's trial number
    "state": NAME,  # complete, pruned (stopped by ASHA) or failed
    "finished": BOOL,
    "epochs": INT,
    **dict.fromkeys(CRITERIA, FLOAT),
    "defaults": BOOL,  # the attack's default settings (the search's first point)
    "predicted_share": FLOAT,  # target users predicted members at 0.5 (no label read)
    "degenerate": BOOL,  # that share too far from the shadow's: never the pick
    "selected": BOOL,
    "shadow_pick": BOOL,
    "oracle_pick": BOOL,
    "used_for_selection": BOOL,
    **dict.fromkeys(METRICS, FLOAT),  # on the target, recorded after the search
    "attack_settings": TEXT,
    "attack_seconds": FLOAT,
    "trials_file": TEXT,  # set by the loader
}
#: Values that stand in for an absent or null entry (every other one stays NA).
DEFAULTS: dict[str, object] = {
    "grid": "", "nonmember_lists": "popular", "vectors_fit_on": "vectorization",
}  # fmt: skip


def undeclared(columns: Iterable[object], schema: dict[str, str]) -> list[str]:
    """The names among `columns` that `schema` does not declare (`param.*` are always allowed)."""
    return [c for c in map(str, columns) if c not in schema and not c.startswith("param.")]


def typed(frame: pd.DataFrame, schema: dict[str, str]) -> pd.DataFrame:
    """`frame` with every column of `schema` in its dtype and order (absent ones NA, `DEFAULTS`
    filled in), undeclared columns after them as they are."""
    for column, dtype in schema.items():
        values = frame[column] if column in frame else pd.Series(None, frame.index, "object")
        values = values.astype(cast(Any, "string" if dtype == NAME else dtype))
        if column in DEFAULTS:
            values = values.fillna(cast(Any, DEFAULTS[column]))
        frame[column] = values.astype(cast(Any, dtype))
    return frame[[*schema, *(c for c in frame.columns if c not in schema)]]
