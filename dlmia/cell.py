"""One cell end to end: (shadow side) x (target side) x attack -> metrics.

`run_cell` is a pure function of a typed `CellConfig`: the CLI wraps it, and the Ray layer calls
its parts (`prepare_dataset`, `build_side`, `attack_cell`) on actors. Target membership labels
are read in exactly one place, `attack_cell`'s call to `attack_metrics`, after the attack has
made its predictions.
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from typing import Any

import numpy as np

from dlmia import config as cfg
from dlmia.allocator import keep_freed_memory
from dlmia.attacks import ATTACKS, attack_config, make_attack
from dlmia.attacks.base import PoolRequest, References, TargetView
from dlmia.data.histories import IntArray
from dlmia.device import check_device
from dlmia.errors import ConfigError, DataError
from dlmia.metrics import attack_metrics
from dlmia.nonmember import Policy
from dlmia.pools import build_pool
from dlmia.recommenders import recommender_config
from dlmia.records import CellResult
from dlmia.sides import (
    DatasetSpec,
    PreparedDataset,
    ReferenceSpec,
    Role,
    SideOutput,
    SideSpec,
    build_side,
    located,
    prepare_dataset,
    seeded,
)
from dlmia.vectors import Center


@dataclass(frozen=True)
class CellConfig:
    """A shadow side, a target side and the attack that crosses them."""

    shadow: SideSpec
    target: SideSpec
    attack: str = "biased"  # a name from dlmia.attacks.ATTACKS
    attack_settings: dict[str, Any] = field(default_factory=dict)  # overrides of its settings
    seed: int = 0  # the attack's seed
    device: str = "auto"
    references: tuple[SideSpec, ...] = ()  # the attack's reference pool, if it needs one


@dataclass(frozen=True)
class SideChoice:
    """What a user picks for one side of a cell: a dataset and a recommender with settings."""

    dataset: DatasetSpec
    recommender: str  # a name from dlmia.recommenders.RECOMMENDERS
    settings: dict[str, Any] = field(default_factory=dict)  # the recommender's settings overrides


@dataclass(frozen=True)
class ListOptions:
    """How both sides of a cell serve top-k lists and summarise them (the grid-wide choices)."""

    k: int = 100  # length of every top-k list
    nonmember_lists: Policy = "popular"  # how non-members get their lists
    center: Center = "uniform"  # recommendation centre of d_u
    exclude_seen: bool = False  # drop seen items from member lists (the paper keeps them)


def cell_config(
    shadow: SideChoice,
    target: SideChoice,
    attack: str,
    attack_settings: dict[str, Any],
    options: ListOptions,
    seed: int,
    device: str = "auto",
    pool: PoolRequest | None = None,
) -> CellConfig:
    """The one way a run seed becomes a cell: the CLI, the grid planner and the benches call it.

    `seed` re-samples everything random: the user split and the item vectors (unless the
    dataset pins their seeds), the member halves, the recommenders, the lists and the attack.
    A dataset's file path becomes the absolute path it resolves to (`located`), so the CLI and a
    grid read the same file wherever their processes run. `pool` is the reference pool to
    build; by default the one the attack's settings need (a searched cell builds the largest
    its trials need).

    Raises:
        ConfigError: an unknown name or a bad setting of the attack, a recommender or the
            device, before any work.
    """
    check_device(device)
    if not 0 <= seed <= cfg.MAX_SEED:
        raise ConfigError(f"seed: must be in [0, 2**63), got {seed}")
    settings = attack_config(attack, attack_settings)
    pool = ATTACKS[attack].pool(settings) if pool is None else pool
    for choice in (shadow, target):
        recommender_config(choice.recommender, choice.settings)
    roles: tuple[tuple[Role, SideChoice], ...] = (("shadow", shadow), ("target", target))
    sides = {role: side_spec(choice, role, options, seed, device) for role, choice in roles}
    references = tuple(
        side_spec(shadow, "reference", options, seed, device, ReferenceSpec(index, pool.online))
        for index in range(pool.size)
    )
    if references and sides["shadow"].dataset != sides["target"].dataset:
        raise ConfigError(
            f"attack {attack}: its reference recommenders serve the target's users, so the "
            "shadow and target must be one dataset with one split; the shadow's dataset "
            f"({shadow.dataset.label}) differs from the target's ({target.dataset.label})"
        )
    return CellConfig(
        sides["shadow"], sides["target"], attack, dict(attack_settings), seed, device,
        references,
    )  # fmt: skip


def side_spec(
    choice: SideChoice,
    role: Role,
    options: ListOptions,
    seed: int,
    device: str,
    reference: ReferenceSpec | None = None,
) -> SideSpec:
    """The side `choice` plays in `role` under the cell's list options and run seed."""
    return SideSpec(
        dataset=seeded(located(choice.dataset), seed),
        role=role,
        recommender=choice.recommender,
        settings=dict(choice.settings),
        k=options.k,
        nonmember_lists=options.nonmember_lists,
        center=options.center,
        exclude_seen=options.exclude_seen,
        seed=seed,
        device=device,
        reference=reference,
    )


@lru_cache(maxsize=4)
def cached_dataset(spec: DatasetSpec) -> PreparedDataset:
    """`prepare_dataset`, memoised per process: a same-dataset cell prepares its data once."""
    return prepare_dataset(spec)


def run_cell(config: CellConfig) -> CellResult:
    """Build both sides of `config` (and its reference pool) and attack the target with a
    model trained on the shadow."""
    started = time.perf_counter()
    shadow = build_side(cached_dataset(config.shadow.dataset), config.shadow)
    target = build_side(cached_dataset(config.target.dataset), config.target)
    references = (
        build_pool(cached_dataset(config.references[0].dataset), config.references)
        if config.references
        else []
    )
    result = attack_cell(
        shadow, target, config.attack, config.attack_settings, config.seed, config.device,
        references,
    )  # fmt: skip
    return dataclasses.replace(result, seconds=time.perf_counter() - started)


def attack_cell(
    shadow: SideOutput,
    target: SideOutput,
    attack_name: str,
    attack_settings: dict[str, Any],
    seed: int,
    device: str = "auto",
    references: Sequence[SideOutput] = (),
) -> CellResult:
    """Fit the attack on the labelled shadow side and the unlabelled target vectors; score the
    target (with its reference pool's lists, for an attack that has one); measure."""
    result = score_target(shadow, target, attack_name, attack_settings, seed, device, references)
    metrics = attack_metrics(target.labels, result.scores, seed=seed)  # the one read of labels
    return dataclasses.replace(result, metrics=metrics)


def score_target(
    shadow: SideOutput,
    target: SideOutput,
    attack_name: str,
    attack_settings: dict[str, Any],
    seed: int,
    device: str = "auto",
    references: Sequence[SideOutput] = (),
) -> CellResult:
    """The target users' member probabilities and what the attack reported, without metrics:
    no target label is read here (an audit without labels stops here)."""
    started = time.perf_counter()
    keep_freed_memory()
    attack = make_attack(attack_name, attack_settings, device=device, seed=seed)
    attack.fit(shadow.vectors, shadow.labels, target.vectors)
    scores = attack.predict_proba(target.vectors, side_view(target, references))
    return CellResult(
        {}, scores, target.labels, target.users,
        n_shadow=len(shadow.labels), n_target=len(target.users),
        attack_settings=cfg.as_dict(attack.config),
        attack_seconds=time.perf_counter() - started,
        attack=attack.info, shadow_side=shadow.info, target_side=target.info,
    )  # fmt: skip


def side_view(side: SideOutput, references: Sequence[SideOutput] = ()) -> TargetView:
    """What the adversary holds of `side`'s users beyond their vectors, row for row: their lists,
    their statistics and, with a reference pool, the same statistics under each reference."""
    return TargetView(side.lists, side.statistics, reference_view(references, side.users))


def reference_view(references: Sequence[SideOutput], users: IntArray) -> References | None:
    """The reference sides' statistics and training masks (R, n), their columns in the order of
    `users` (the reference sides serve the same users, in their own order); None without any."""
    if not references:
        return None
    columns = []
    for side in references:
        order = np.argsort(side.users, kind="stable")
        at = order[np.searchsorted(side.users, users, sorter=order).clip(max=len(order) - 1)]
        if not np.array_equal(side.users[at], users):
            raise DataError("a reference side does not serve the users under test")
        columns.append(at)
    statistics = {
        name: np.stack([side.statistics[name][at] for side, at in zip(references, columns)])
        for name in references[0].statistics
    }
    inside = np.stack([side.labels[at] == 1 for side, at in zip(references, columns)])
    return References(statistics, inside)
