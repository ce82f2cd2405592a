"""Result rows: one flat record per (cell, attack, seed), plus the per-user scores.

The row carries everything needed to read it later without the run: which datasets,
recommenders, settings and seeds produced it, every metric, timings, versions and host.
Nested settings are stored as JSON strings so every row of every grid shares one schema, the
results table of `dlmia.schema`.
"""

from __future__ import annotations

import dataclasses
import json
import platform
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

import dlmia
from dlmia.cell import CellConfig
from dlmia.io import write_parquet
from dlmia.layout import CELL_RESULT, CELL_SCORES
from dlmia.machine import machine
from dlmia.records import CellResult, SearchSummary, SideInfo
from dlmia.schema import ATTACK_METRICS, CRITERIA


@lru_cache(maxsize=1)
def versions() -> dict[str, str]:
    """The versions that produced a result: dlmia, its git commit (if any), torch, numpy,
    python."""
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=Path(dlmia.__file__).parent,
            capture_output=True,
            text=True,
            timeout=5,
        ).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        commit = ""
    return {
        "dlmia_version": dlmia.__version__,
        "git_commit": commit or "unknown",
        "torch_version": torch.__version__,
        "numpy_version": np.__version__,
        "python_version": platform.python_version(),
    }


def result_row(config: CellConfig, result: CellResult, status: str = "ok") -> dict[str, Any]:
    """One flat record of a finished cell: identity, metrics, settings (JSON), timings,
    provenance."""
    row: dict[str, Any] = {
        "shadow_dataset": config.shadow.dataset.label,
        "shadow_recommender": config.shadow.recommender,
        "target_dataset": config.target.dataset.label,
        "target_recommender": config.target.recommender,
        "attack": config.attack,
        "seed": config.seed,
        "nonmember_lists": config.target.nonmember_lists,
        "vectors_fit_on": vectors_fit_on(config),
        "status": status,
        **{key: result.metrics[key] for key in ATTACK_METRICS},  # in the declared order
        "n_shadow": result.n_shadow,
        "n_target": result.n_target,
        "seconds": result.attack_seconds if result.seconds is None else result.seconds,
        "attack_seconds": result.attack_seconds,
        **search_columns(result.search),
        **side_columns(result.shadow_side, result.target_side),
        "config": json.dumps(dataclasses.asdict(config), default=str, sort_keys=True),
        "attack_settings": json.dumps(result.attack_settings, default=str, sort_keys=True),
        "details": json.dumps(details(result), default=str),
        "host": platform.node(),
        "machine": machine(),  # the CPU kind decides a result's last digits (dlmia.machine)
        **versions(),
    }
    return row


def search_columns(search: SearchSummary | None) -> dict[str, Any]:
    """A searched cell's search, the trial it selected and that trial's criteria ({} when the
    cell was not searched)."""
    if search is None:
        return {}
    picked = {"search": search.search, "trial": search.trial, "n_trials": search.n_trials,
              "epochs": search.epochs}  # fmt: skip
    return picked | {name: search.criteria.get(name, float("nan")) for name in CRITERIA}


def vectors_fit_on(config: CellConfig) -> str:
    """The cell's item-vector setting: one name, or `shadow|target` when the sides differ."""
    shadow, target = config.shadow.dataset.vectors.fit_on, config.target.dataset.vectors.fit_on
    return shadow if shadow == target else f"{shadow}|{target}"


def side_columns(shadow: SideInfo | None, target: SideInfo | None) -> dict[str, Any]:
    """Each side's zero vectors, item-vector coverage and recommender quality beside popularity's
    (None where a side has no info)."""
    columns: dict[str, Any] = {}
    for role, side in (("shadow", shadow), ("target", target)):
        columns |= {
            f"{role}_zero_vectors": side.n_zero_vectors if side else None,
            f"{role}_history_coverage": side.history_coverage if side else None,
            f"{role}_list_coverage": side.list_coverage if side else None,
            f"{role}_hr_at_10": side.served.recommender_hr_at_10 if side else None,
            f"{role}_popularity_hr_at_10": side.served.popularity_hr_at_10 if side else None,
        }
    return columns


def details(result: CellResult) -> dict[str, Any]:
    """What else the cell reported, for the `details` JSON column: the attack's own details,
    both sides' info and where the cell ran (the rest has columns of its own)."""
    records = {"shadow_side": result.shadow_side, "target_side": result.target_side,
               "task": result.task}  # fmt: skip
    plain = {k: dataclasses.asdict(v) if v is not None else None for k, v in records.items()}
    return {"attack": result.attack, **plain}


def scores_frame(result: CellResult) -> pd.DataFrame:
    """Per-target-user member scores and true labels (for ROC curves)."""
    return pd.DataFrame({"user": result.users, "label": result.labels, "score": result.scores})


def write_cell(out_dir: str | Path, row: dict[str, Any], result: CellResult) -> list[Path]:
    """Write `result.parquet` (the row) and `scores.parquet` under `out_dir`, each atomically."""
    out = Path(out_dir)
    return [
        write_parquet(scores_frame(result), out / CELL_SCORES),
        write_parquet(pd.DataFrame([row]), out / CELL_RESULT),
    ]
