"""What a run reports, as typed records: a side's facts (`SideInfo`), where and when a task ran
(`TaskRecord`), a search's pick (`SearchSummary`) and a cell's result (`CellResult`).

Each record is frozen and declares every field a result row relies on (counts, timings,
settings, coverage, the search's summary), so mypy checks who writes what; a later stage adds
what it knows with `dataclasses.replace` (the grid runner the task record and the whole cell's
seconds, a search its summary). Only an attack's own details stay free-form
(`CellResult.attack`, the attack's `info`).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import numpy.typing as npt


@dataclass(frozen=True)
class TaskRecord:
    """Where and when a remote task ran (for utilisation)."""

    task_start: float  # wall clock
    task_end: float
    node_id: str
    pid: int


@dataclass(frozen=True)
class ServedInfo:
    """A side's recommender and the lists it served: what a side that differs only in its
    item-vector settings reuses with the lists (`dlmia.sides.ServedLists`)."""

    n_members: int
    n_nonmembers: int
    recommender_hr_at_10: float  # HR@10 of its non-members' next item (NaN: no one has two)
    fit_seconds: float
    recommend_seconds: float
    recommender_settings: dict[str, Any]  # the recommender's resolved settings
    recommender_items: int  # the items it trained on and ranks
    validation_seconds: float = 0.0  # neural models: early stopping's evaluations
    epochs_run: int = 0  # neural models: epochs early stopping ran
    best_epoch: int = 0  # ... and the epoch whose weights serve
    # HR@10 of popularity (counted over the same members' training items) on the same
    # non-members: the floor the recommender must beat (NaN: not measured, e.g. an audit's lists)
    popularity_hr_at_10: float = math.nan


@dataclass(frozen=True)
class SideInfo:
    """What a side reports beside its arrays: counts, coverage, timings, provenance."""

    served: ServedInfo
    n_zero_vectors: int  # users whose difference vector is zero (no item with a vector)
    history_coverage: float  # share of history items that have a vector
    list_coverage: float  # share of list entries that have a vector
    vector_seconds: float
    lists_reused: bool = False  # the lists came from a side that differs only in its vectors
    dataset: dict[str, Any] = field(default_factory=dict)  # the prepared dataset's stats
    fingerprint: str = ""  # content hash of the dataset's filtered interactions
    task: TaskRecord | None = None  # where a grid trained the side

    @property
    def n_users(self) -> int:
        return self.served.n_members + self.served.n_nonmembers

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> SideInfo:
        """The record as `dataclasses.asdict` wrote it (the side cache's JSON).

        Raises:
            TypeError, KeyError: `values` lacks a field or has one this record does not.
        """
        task = values.get("task")
        return cls(**{
            **values,
            "served": ServedInfo(**values["served"]),
            "task": TaskRecord(**task) if task is not None else None,
        })  # fmt: skip


@dataclass(frozen=True)
class SearchSummary:
    """Which trial of a cell's search its result is, and how the label-free objective saw it."""

    search: str  # the search's name: its Optuna study and trial records
    trial: int  # the selected trial: 1, 2, ... in study order
    n_trials: int
    epochs: int | None  # the selected trial's last reported epoch (None: the attack has none)
    criteria: dict[str, float]  # its label-free criteria (dlmia.schema.CRITERIA; NaN: unused)


@dataclass(frozen=True, eq=False)
class CellResult:
    """Metrics of one cell, the per-user member scores behind them, and provenance."""

    metrics: dict[str, Any]  # attack_metrics() of the target users
    scores: npt.NDArray[np.float64]  # (n_target,) member probability of each target user
    labels: npt.NDArray[np.int64]  # (n_target,) true membership (for ROC plots)
    users: npt.NDArray[np.int64]  # (n_target,) dataset user index of each target row
    n_shadow: int | None  # users of the shadow side (None: a failed cell's side that never was)
    n_target: int | None  # users scored (likewise)
    attack_settings: dict[str, Any]  # the attack's resolved settings
    attack_seconds: float  # fitting and scoring the attack (searched: the selected trial's fit)
    attack: dict[str, Any] = field(default_factory=dict)  # the attack's own details (its info)
    seconds: float | None = None  # the whole cell (searched: the whole search), once known
    shadow_side: SideInfo | None = None
    target_side: SideInfo | None = None
    search: SearchSummary | None = None  # a searched cell's pick
    task: TaskRecord | None = None  # where a grid ran the cell's task
