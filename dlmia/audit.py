"""Audit your own recommender: the top-k lists it served, attacked by dlmia's attacks.

The target is what the auditor brings: the interactions the system knows (any ratings file the
loaders read, or a known dataset), the lists it served (user, item, rank) and, optionally, which
of the listed users trained it (user, member 0/1). dlmia supplies the adversary, exactly as in a
cell: the interactions are filtered and split by seed, item vectors are fit on the
vectorization part, and a shadow side and a reference pool of a recommender of the auditor's
choice (a built-in name, or `module:Class`, the system's own architecture) are trained on the
shadow part; the audited users take the place of the target part. The audited users are never
in the shadow side's data, and online references train on halves of the shadow part and of the
audited users, as in a cell.

Each audited user is scored by every attack. With membership labels, each attack is measured
as a cell is (ROC AUC, TPR at low FPR with intervals, balanced accuracy); without them, the
audit gives scores and rankings only.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import pandas as pd

from dlmia import config as cfg
from dlmia.cell import (
    CellConfig,
    ListOptions,
    SideChoice,
    attack_cell,
    cached_dataset,
    cell_config,
    score_target,
)
from dlmia.data.histories import Histories
from dlmia.data.loaders import read_columns
from dlmia.errors import ConfigError, DataError
from dlmia.io import json_safe, write_json, write_parquet
from dlmia.layout import AUDIT_FILE, RESULTS_DIR, SCORES_DIR
from dlmia.nonmember import Policy
from dlmia.pools import build_pool
from dlmia.records import CellResult, ServedInfo, SideInfo
from dlmia.results import result_row
from dlmia.sides import (
    DatasetSpec,
    PreparedDataset,
    SideOutput,
    build_side,
    located,
    seeded,
)
from dlmia.statistics import ListView, list_statistics
from dlmia.vectors import Center, difference_vectors

#: The attacks an audit runs unless told otherwise: the three training-free baselines beside the
#: trained ones, and the reference attack.
ATTACKS = ("norm", "list-frequency", "own-hits", "biased", "dlmia", "reference")
AUDITED = "audited"  # the target recommender's name in result rows: the lists came from a file


@dataclass(frozen=True)
class AuditConfig:
    """What an audit reads and how its adversary is built."""

    interactions: DatasetSpec  # what the system knows: a file by path (or a known dataset)
    lists: str  # the served lists: user, item, rank (1 = first); parquet or delimited
    members: str = ""  # optional: user, member (1 = trained the system, 0 = did not)
    shadow: str = "lfm"  # the adversary's recommender: a name, or module:Class (yours)
    shadow_settings: dict[str, Any] = field(default_factory=dict)
    attacks: tuple[str, ...] = ATTACKS
    attack_settings: dict[str, dict[str, Any]] = field(default_factory=dict)  # attack -> settings
    nonmember_lists: Policy = "model"  # how the shadow and references serve users they did not
    # train on: a real system serves them its own lists
    center: Center = "uniform"  # centre of the listed items' vectors
    seed: int = 0  # the split, the item vectors, the shadow side, the references, the attacks
    device: str = "auto"

    def __post_init__(self) -> None:
        unknown = sorted(set(self.attack_settings) - set(self.attacks))
        if unknown:
            raise ConfigError(f"audit: settings for {unknown[0]!r}, which the audit does not run")
        if not self.attacks or len(set(self.attacks)) != len(self.attacks):
            raise ConfigError(f"audit: attacks must be distinct, at least one: {self.attacks}")


@dataclass(frozen=True, eq=False)
class ServedLists:
    """The audited users and what the system served them, in dataset indices."""

    users: npt.NDArray[np.int64]  # (n,) dataset user index, in the lists file's order
    lists: npt.NDArray[np.int32]  # (n, k) ranked dataset item ids
    labels: npt.NDArray[np.int64] | None  # (n,) 1 = member, 0 = non-member; None when unknown


@dataclass(frozen=True, eq=False)
class AuditResult:
    """Every audited user's score under every attack, and the metrics where labels are given."""

    scores: pd.DataFrame  # user (raw id), user_index, attack, score, rank (1 = most likely)
    cells: dict[str, CellResult]  # attack -> its scores (and metrics with labels; {} without)
    configs: dict[str, CellConfig]  # attack -> the cell it was run as
    summary: dict[str, Any]  # data summary and settings, for the report
    labelled: bool  # whether membership labels were given (metrics exist)


def run_audit(config: AuditConfig, done: Sequence[str] = ()) -> AuditResult:
    """Audit the lists `config` names with every attack but those in `done`.

    Raises:
        ConfigError, DataError: a bad setting or input file, named, before any training.
    """
    started = time.perf_counter()
    data = cached_dataset(seeded(located(config.interactions), config.seed))
    served = read_served(config, data)
    audited = audited_data(data, served.users)
    k = served.lists.shape[1]
    configs = cell_configs(config, k)
    target = audited_side(audited, served, config.center)
    shadow = build_side(audited, configs[config.attacks[0]].shadow)
    pools: dict[tuple[Any, ...], list[SideOutput]] = {}
    cells = {}
    for attack in (a for a in config.attacks if a not in done):
        cell = configs[attack]
        key = tuple(spec.reference for spec in cell.references)  # the shadow's kind, same data
        if key not in pools:
            pools[key] = build_pool(audited, cell.references)
        # labelled (the target side's labels are the members file's): measured as a cell is
        scored = attack_cell if served.labels is not None else score_target
        cells[attack] = scored(shadow, target, attack, cell.attack_settings, config.seed,
                               config.device, pools[key])  # fmt: skip
    return AuditResult(
        scores_frame(cells, data.user_ids),
        cells,
        configs,
        summary(config, audited, served, shadow, time.perf_counter() - started),
        served.labels is not None,
    )


def cell_configs(config: AuditConfig, k: int) -> dict[str, CellConfig]:
    """Each attack as the cell it runs as: shadow and target of the interactions' dataset, the
    shadow the auditor's recommender (its target side stands for the audited system; its
    recommender is only a name here, the lists come from a file)."""
    choice = SideChoice(config.interactions, config.shadow, dict(config.shadow_settings))
    options = ListOptions(k=k, nonmember_lists=config.nonmember_lists, center=config.center)
    return {
        attack: cell_config(choice, choice, attack, config.attack_settings.get(attack, {}),
                            options, config.seed, config.device)  # fmt: skip
        for attack in config.attacks
    }


def read_served(config: AuditConfig, data: PreparedDataset) -> ServedLists:
    """The lists file (and the members file) in dataset indices, checked: every user and item
    known to the filtered data, ranks 1..k for every user, a label for every listed user."""
    frame = read_columns(config.lists, ("user", "item", "rank"), "a lists file")
    ranks = pd.to_numeric(frame["rank"], errors="coerce")
    if ranks.isna().any() or (ranks % 1 != 0).any() or (ranks < 1).any():
        row = int((ranks.isna() | (ranks % 1 != 0) | (ranks < 1)).to_numpy().argmax())
        raise DataError(
            f"{config.lists}: row {row + 1}: rank {frame['rank'][row]!r} is not 1, 2, ..."
        )
    users = known_ids(frame["user"], data.user_ids, config.lists, "user")
    items = known_ids(frame["item"], data.item_ids, config.lists, "item")
    order = np.lexsort((ranks.to_numpy(), users))
    rows, first = np.unique(users[order], return_index=True)
    counts = np.diff(np.append(first, len(order)))
    k = int(ranks.max())
    sorted_ranks = ranks.to_numpy()[order]
    if (counts != k).any() or not np.array_equal(sorted_ranks, np.tile(np.arange(1, k + 1),
                                                                       len(rows))):  # fmt: skip
        wrong = (counts != k) | np.array([
            not np.array_equal(sorted_ranks[start:start + k], np.arange(1, k + 1))
            for start in first
        ])  # fmt: skip
        bad = data.user_ids[rows[int(np.argmax(wrong))]]
        raise DataError(
            f"{config.lists}: every user needs ranks 1..{k} exactly once (the longest list); "
            f"user {bad} does not have them"
        )
    in_file_order = pd.unique(users)  # the audited users, as the file first names them
    position = np.searchsorted(rows, in_file_order)
    lists = items[order].reshape(len(rows), k)[position].astype(np.int32)
    labels = read_members(config, data, in_file_order) if config.members else None
    return ServedLists(in_file_order.astype(np.int64), lists, labels)


def known_ids(
    raw: pd.Series, ids: npt.NDArray[np.str_], path: str, what: str
) -> npt.NDArray[np.int64]:
    """The dataset indices of raw ids `raw`; DataError naming the first unknown one."""
    index = pd.Index(ids).get_indexer(pd.Index(raw.astype(str)))
    if (index < 0).any():
        bad = int((index < 0).sum())
        first = raw.iloc[int(np.argmax(index < 0))]
        raise DataError(
            f"{path}: {bad} {what} ids are not in the filtered interactions (first: {first!r}); "
            f"list only {what}s the interactions hold, or lower the dataset's filter "
            "(--dataset-set filter={min_user: 1, min_item: 1})"
        )
    return index.astype(np.int64)


def read_members(
    config: AuditConfig, data: PreparedDataset, users: npt.NDArray[np.int64]
) -> npt.NDArray[np.int64]:
    """(n,) 0/1 labels of `users` from the members file; DataError for a listed user without
    one, a value other than 0 or 1, or a single class."""
    frame = read_columns(config.members, ("user", "member"), "a members file")
    known = known_ids(frame["user"], data.user_ids, config.members, "user")
    values = frame["member"].to_numpy()
    if not np.isin(values, ("0", "1")).all():
        bad = values[~np.isin(values, ("0", "1"))][0]
        raise DataError(f"{config.members}: member must be 0 or 1, got {bad!r}")
    label = dict(zip(known.tolist(), values.astype(np.int64).tolist()))
    missing = [u for u in users.tolist() if u not in label]
    if missing:
        raise DataError(
            f"{config.members}: {len(missing)} listed users have no label (first: "
            f"{data.user_ids[missing[0]]!r}); give every user of the lists file one"
        )
    labels = np.array([label[u] for u in users.tolist()], dtype=np.int64)
    if labels.min() == labels.max():
        raise DataError(f"{config.members}: every listed user is {labels[0]}; metrics need both")
    return labels


def audited_data(data: PreparedDataset, users: npt.NDArray[np.int64]) -> PreparedDataset:
    """`data` with the audited users as its target part and out of its shadow part, so that the
    shadow side never trains on them and the references serve them (the vectorization part is
    kept: its item vectors read histories without labels)."""
    parts = {
        **data.parts,
        "shadow": np.setdiff1d(data.parts["shadow"], users),
        "target": np.sort(users),
    }
    if len(parts["shadow"]) < 8:
        raise DataError(
            f"{data.spec.label}: {len(parts['shadow'])} users are left to train the adversary's "
            "shadow side once the audited users are set apart; give more interactions"
        )
    return dataclasses.replace(data, parts=parts)


def audited_side(data: PreparedDataset, served: ServedLists, center: Center) -> SideOutput:
    """The audited system as a target side: its lists, the users' full histories (what the
    system knows of them), their difference vectors and list statistics. Its labels are the
    members file's when given (read only by the metrics), else zeros."""
    visible = data.histories.rows(served.users)
    vectors, n_zero = difference_vectors(data.item_vectors, visible, served.lists, center)
    nothing = Histories(np.zeros(len(served.users) + 1, np.int64), np.empty(0, np.int64),
                        visible.n_items, visible.users)  # fmt: skip
    statistics = list_statistics(ListView(served.lists, visible, nothing, vectors))
    labels = served.labels if served.labels is not None else np.zeros(len(served.users), np.int64)
    has_vector = data.item_vectors.has_vector
    members = int(labels.sum())
    system = ServedInfo(  # served elsewhere: nothing of its training or timing is known here
        n_members=members, n_nonmembers=len(labels) - members, recommender_hr_at_10=math.nan,
        fit_seconds=0.0, recommend_seconds=0.0, recommender_settings={},
        recommender_items=len(np.unique(served.lists)),
    )  # fmt: skip
    info = SideInfo(
        system, n_zero_vectors=int(n_zero),
        history_coverage=float(has_vector[visible.items].mean()),
        list_coverage=float(has_vector[served.lists].mean()), vector_seconds=0.0,
    )  # fmt: skip
    return SideOutput(vectors, labels, served.users, served.lists, info, statistics)


def scores_frame(cells: dict[str, CellResult], user_ids: npt.NDArray[np.str_]) -> pd.DataFrame:
    """user (raw id), user_index (in the dataset), attack, score and rank (1 = most likely
    member) of every audited user."""
    frames = []
    for attack, cell in cells.items():
        rank = pd.Series(cell.scores).rank(ascending=False, method="min").astype(np.int64)
        frames.append(pd.DataFrame({
            "user": user_ids[cell.users], "user_index": cell.users, "attack": attack,
            "score": cell.scores, "rank": rank.to_numpy(),
        }))  # fmt: skip
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(
        columns=["user", "user_index", "attack", "score", "rank"]
    )


def summary(
    config: AuditConfig, data: PreparedDataset, served: ServedLists, shadow: SideOutput,
    seconds: float,
) -> dict[str, Any]:  # fmt: skip
    """What the report says about the data and the run."""
    lengths = data.histories.lengths[served.users]
    return {
        "interactions": config.interactions.label, "lists": config.lists,
        "members": config.members or None, "shadow": config.shadow,
        "audited_users": len(served.users), "k": int(served.lists.shape[1]),
        "members_given": int(served.labels.sum()) if served.labels is not None else None,
        "history_length_median": float(np.median(lengths)),
        "dataset": {key: data.stats[key] for key in ("n_users", "n_items", "n_interactions")},
        "shadow_part_users": len(data.parts["shadow"]),
        "nonmember_lists": config.nonmember_lists, "seed": config.seed,
        "dataset_spec": cfg.as_dict(data.spec),
        "attacks": list(config.attacks), "seconds": seconds,
        "shadow_hr_at_10": shadow.info.served.recommender_hr_at_10,
        "shadow_popularity_hr_at_10": shadow.info.served.popularity_hr_at_10,
    }  # fmt: skip


def write_audit(out: str | Path, result: AuditResult) -> list[Path]:
    """Write the audit under `out` as a grid writes cells: `scores/<attack>.parquet` (user,
    score, rank, and label when known), `results/<attack>.parquet` (the result row, only with
    labels) and `audit.json` (the data summary and settings). Each file atomically, the result
    rows last, so an attack is done exactly when its files are."""
    folder = Path(out)
    paths = [write_json(json_safe(result.summary), folder / AUDIT_FILE)]
    for attack, cell in result.cells.items():
        scores = result.scores[result.scores["attack"] == attack].drop(columns="attack")
        if result.labelled:
            scores = scores.assign(label=cell.labels)
        scores_file = folder / SCORES_DIR / f"{attack}.parquet"
        paths.append(write_parquet(scores.reset_index(drop=True), scores_file))
        if result.labelled:
            config = result.configs[attack]
            target = dataclasses.replace(config.target, recommender=AUDITED)
            row = result_row(dataclasses.replace(config, target=target), cell)
            row["cell_id"] = attack
            result_file = folder / RESULTS_DIR / f"{attack}.parquet"
            paths.append(write_parquet(pd.DataFrame([row]), result_file))
    return paths


def done_attacks(out: str | Path, config: AuditConfig) -> list[str]:
    """The attacks of `config` whose files a previous run of the audit left complete."""
    folder = Path(out)
    return [
        attack for attack in config.attacks
        if (folder / SCORES_DIR / f"{attack}.parquet").is_file()
        and (not config.members or (folder / RESULTS_DIR / f"{attack}.parquet").is_file())
    ]  # fmt: skip

