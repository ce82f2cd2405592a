"""One cell end to end: (shadow side) x (target side) x attack -> metrics.

`run_cell` is a pure function of a typed `CellConfig`: the CLI wraps it, and the Ray layer calls
its parts (`prepare_dataset`, `build_side`, `attack_cell`) on actors. Target membership labels
are read in exactly one place, `attack_cell`'s call to `attack_metrics`, after the attack has
made its predictions.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np
import numpy.typing as npt

from dlmia import config as cfg
from dlmia.attacks import make_attack
from dlmia.metrics import attack_metrics
from dlmia.sides import DatasetSpec, SideOutput, SideSpec, build_side, prepare_dataset


@dataclass(frozen=True)
class CellConfig:
    """A shadow side, a target side and the attack that crosses them."""

    shadow: SideSpec
    target: SideSpec
    attack: str = "biased"  # a name from dlmia.attacks.ATTACKS
    attack_settings: dict[str, Any] = field(default_factory=dict)  # the attack's settings overrides
    seed: int = 0  # the attack's seed
    device: str = "auto"


@dataclass(frozen=True, eq=False)
class CellResult:
    """Metrics of one cell, the per-user member scores behind them, and provenance."""

    metrics: dict[str, Any]  # attack_metrics() of the target users
    scores: npt.NDArray[np.float64]  # (n_target,) member probability of each target user
    labels: npt.NDArray[np.int64]  # (n_target,) true membership (for ROC plots)
    users: npt.NDArray[np.int64]  # (n_target,) dataset user index of each target row
    info: dict[str, Any]  # attack info, side info, timings


@lru_cache(maxsize=4)
def cached_dataset(spec: DatasetSpec):  # type: ignore[no-untyped-def]
    """`prepare_dataset`, memoised per process: a same-dataset cell prepares its data once."""
    return prepare_dataset(spec)


def run_cell(config: CellConfig) -> CellResult:
    """Build both sides of `config` and attack the target with a model trained on the shadow."""
    started = time.perf_counter()
    shadow = build_side(cached_dataset(config.shadow.dataset), config.shadow)
    target = build_side(cached_dataset(config.target.dataset), config.target)
    result = attack_cell(shadow, target, config.attack, config.attack_settings, config.seed, config.device)
    result.info["seconds"] = time.perf_counter() - started
    for role, side, spec in (("shadow", shadow, config.shadow), ("target", target, config.target)):
        result.info[f"{role}_side"] = side.info
        result.info[f"{role}_dataset"] = cached_dataset(spec.dataset).stats
    return result


def attack_cell(
    shadow: SideOutput,
    target: SideOutput,
    attack_name: str,
    attack_settings: dict[str, Any],
    seed: int,
    device: str = "auto",
) -> CellResult:
    """Fit the attack on the labelled shadow side and the unlabelled target vectors; score the target."""
    started = time.perf_counter()
    attack = make_attack(attack_name, attack_settings, device=device, seed=seed)
    attack.fit(shadow.vectors, shadow.labels, target.vectors)
    scores = attack.predict_proba(target.vectors)
    attack_seconds = time.perf_counter() - started
    metrics = attack_metrics(target.labels, scores)  # the only read of target labels
    info = {
        "attack": attack.info,
        "attack_settings": cfg.as_dict(attack.config),
        "attack_seconds": attack_seconds,
        "n_shadow": len(shadow.labels),
        "n_target": len(target.labels),
    }
    return CellResult(metrics, scores, target.labels, target.users, info)
