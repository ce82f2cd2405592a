"""Datasets and sides: everything one role (shadow or target) of a cell needs, as pure functions.

A *side* is (dataset, role, recommender, settings, seed): its recommender is trained on the
members of that role's user part, serves top-k lists to members (the model) and non-members
(the non-member policy), and the adversary turns each user's visible history and list into a
difference vector and per-user list statistics (`dlmia.statistics`). Sides are independent of
the attack, so the grid runner trains each once and shares it between every cell that uses it.

A *reference* side (method.md section 7) is one model of the adversary's reference pool: the
same recommender trained on a seeded random half of a population the adversary holds (the
shadow part; online, the target part too), serving the users of both the shadow and the target
part through the same code: users in its half get its lists, the others the non-member
policy's. The target part's users are the ones under test; the shadow part's are the ones the
adversary knows the membership of, on which a search validates the attack's settings.
"""

from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import numpy.typing as npt

from dlmia.allocator import keep_freed_memory
from dlmia.data.filtering import FilterConfig, kcore
from dlmia.data.histories import Histories
from dlmia.data.loaders import Columns
from dlmia.data.sources import (
    DataFile,
    dataset_file,
    default_filter,
    find_path,
    known_name,
    load_dataset,
)
from dlmia.data.splits import SplitConfig, member_halves, reference_half, split_users
from dlmia.data.synthetic import SyntheticConfig
from dlmia.errors import ConfigError, DataError
from dlmia.nonmember import Policy, nonmember_lists
from dlmia.recommenders import make_recommender, recommender_class
from dlmia.recommenders.known import KnownItems
from dlmia.recommenders.popularity import Popularity
from dlmia.records import ServedInfo, SideInfo
from dlmia.seeding import derive_seed
from dlmia.statistics import ListView, list_statistics
from dlmia.vectors import (
    Center,
    ItemVectorConfig,
    ItemVectors,
    difference_vectors,
    fit_item_vectors,
)

log = logging.getLogger(__name__)

Role = Literal["shadow", "target", "reference"]


@dataclass(frozen=True)
class DatasetSpec:
    """Which dataset (a known name or a file path, exactly one), and how it is loaded, filtered,
    split and vectorised: a grid file's `datasets:` entry, and `dlmia cell`'s dataset.

    `split.seed` and `vectors.seed` left as None follow the run's seed (`seeded`), so a seed
    re-samples the user split and the item vectors with everything else; a value pins them.
    """

    name: str = ""  # a known dataset (ml-1m, ml-100k, ml-20m, amazon-beauty, ..., synthetic)
    path: str = ""  # or a data file: as given if it exists, else relative to the data root
    data_root: str = ""  # where names and paths resolve; "" = $DLMIA_DATA_ROOT or ./data
    columns: Columns | None = None  # the `path` file's user, item, timestamp; None = detected
    filter: FilterConfig | None = None  # None = the dataset's default thresholds
    split: SplitConfig = field(default_factory=SplitConfig)  # three-way user split and its seed
    synthetic: SyntheticConfig = field(default_factory=SyntheticConfig)  # for name: synthetic
    vectors: ItemVectorConfig = field(default_factory=ItemVectorConfig)  # the item-vector LFM
    keep_duplicates: bool = False  # keep exact repeats of an interaction (default: drop them)

    def __post_init__(self) -> None:
        if bool(self.name) == bool(self.path):
            raise ConfigError("give exactly one of name (a known dataset) or path (a file)")
        if self.name:
            known_name(self.name)
        if self.columns is not None and not self.path:
            raise ConfigError(
                "columns: only for a file given by path (named datasets have their own format)"
            )

    @property
    def label(self) -> str:
        """The dataset's name, or its file's path: how messages and result rows name it."""
        return self.name or self.path

    def file(self) -> DataFile | None:
        """The file this dataset is read from (`dataset_file`); None for synthetic data."""
        return dataset_file(self.name, self.path, self.data_root, self.columns)


@dataclass(frozen=True)
class ReferenceSpec:
    """Which model of a reference pool a `reference` side is."""

    index: int  # 0, 1, ...: which seeded random half of the population it trains on
    online: bool = False  # the population: the shadow part, and (online) the target part too

    def __post_init__(self) -> None:
        if not isinstance(self.index, int) or self.index < 0:
            raise ConfigError(f"reference.index: {self.index!r} must be an integer >= 0")


@dataclass(frozen=True)
class SideSpec:
    """One trained recommender side: the unit of work the grid runner caches and shares."""

    dataset: DatasetSpec
    role: Role
    recommender: str  # a name from dlmia.recommenders.RECOMMENDERS, or module:Class
    settings: dict[str, Any] = field(default_factory=dict)  # the recommender's settings overrides
    k: int = 100  # length of every top-k list
    nonmember_lists: Policy = "popular"  # how non-members get their lists (method.md 1)
    center: Center = "uniform"  # recommendation centre of the difference vector
    exclude_seen: bool = False  # drop seen items from member lists (the paper keeps them)
    seed: int = 0  # recommender training, member halves and list randomness
    device: str = "auto"
    reference: ReferenceSpec | None = None  # which pool model (role `reference` only)

    def __post_init__(self) -> None:
        if (self.role == "reference") != (self.reference is not None):
            raise ConfigError("a side has a `reference` spec exactly when its role is reference")


@dataclass(frozen=True, eq=False)
class PreparedDataset:
    """A loaded, filtered and split dataset with its item vectors."""

    spec: DatasetSpec
    histories: Histories  # all users, rows = dataset user index
    parts: dict[str, npt.NDArray[np.int64]]  # vectorization / shadow / target user indices
    item_vectors: ItemVectors
    fingerprint: str  # content hash of the filtered interactions
    stats: dict[str, Any]  # sizes and timings, for result rows
    user_ids: npt.NDArray[np.str_] = field(default_factory=lambda: np.empty(0, str))  # raw id of
    item_ids: npt.NDArray[np.str_] = field(default_factory=lambda: np.empty(0, str))  # each index


@dataclass(frozen=True, eq=False)
class SideOutput:
    """What a cell needs from a side: labelled difference vectors and list statistics, plus
    provenance. A reference side's labels say who was in its training half."""

    vectors: npt.NDArray[np.float32]  # (n_users, d) difference vectors, members first
    labels: npt.NDArray[np.int64]  # (n_users,) 1 = member, 0 = non-member
    users: npt.NDArray[np.int64]  # (n_users,) dataset user index of each row
    lists: npt.NDArray[np.int32]  # (n_users, k) each user's top-k list (dataset item ids)
    info: SideInfo  # counts, coverage, timings, recommender utility
    statistics: dict[str, npt.NDArray[np.float64]] = field(default_factory=dict)  # name -> (n,)


def seeded(spec: DatasetSpec, seed: int) -> DatasetSpec:
    """`spec` with the seeds it leaves open (None) set to the run's `seed`.

    The one place a run seed reaches a dataset: the CLI, the grid planner and the benches all
    build specs through `dlmia.cell.cell_config`, which calls this.
    """
    split = spec.split if spec.split.seed is not None else replace(spec.split, seed=seed)
    vectors = spec.vectors if spec.vectors.seed is not None else replace(spec.vectors, seed=seed)
    return replace(spec, split=split, vectors=vectors)


def located(spec: DatasetSpec) -> DatasetSpec:
    """`spec` with an absolute data root and, where its `path` resolves (`find_path`), that
    file's absolute path, so that a process with another working directory (a Ray worker) reads
    the same file; a path that resolves to nothing is left for the loader to report."""
    root = str(Path(spec.data_root).resolve()) if spec.data_root else ""
    found = find_path(spec.path, root) if spec.path else None
    return replace(spec, data_root=root, path=str(found.resolve()) if found else spec.path)


def prepare_dataset(spec: DatasetSpec) -> PreparedDataset:
    """Load, filter and split `spec`'s dataset, and fit item vectors on the users `fit_on` names.

    `spec` must have its seeds resolved (`seeded`).
    """
    started = time.perf_counter()
    raw = load_dataset(
        spec.name, spec.data_root, spec.synthetic, path=spec.path, columns=spec.columns
    )
    duplicates = 0
    if not spec.keep_duplicates:
        raw, duplicates = raw.without_duplicates()
        if duplicates:
            log.warning("removed %d exact duplicate interactions from %s (keep_duplicates: true "
                        "keeps them)", duplicates, spec.label)
    loaded = time.perf_counter()
    filtered = kcore(raw, spec.filter or default_filter(spec.name), source=spec.label)
    histories = filtered.histories()
    parts = split_users(filtered.n_users, spec.split)
    check_part_sizes(spec.label, parts)
    split_done = time.perf_counter()
    item_vectors = fit_item_vectors(vector_histories(histories, parts, spec.vectors), spec.vectors)
    done = time.perf_counter()
    stats = {
        "n_users": filtered.n_users,
        "n_items": filtered.n_items,
        "n_interactions": filtered.n_interactions,
        "n_duplicates_removed": duplicates,
        "vectors_fit_on": spec.vectors.fit_on,
        "n_items_with_vector": int(item_vectors.has_vector.sum()),
        "load_seconds": loaded - started,
        "filter_split_seconds": split_done - loaded,
        "item_vector_seconds": done - split_done,
    }
    log.info("dataset %s: %s", spec.label, stats)
    return PreparedDataset(
        spec, histories, parts, item_vectors, filtered.fingerprint(), stats,
        filtered.user_ids.astype(str), filtered.item_ids.astype(str),
    )  # fmt: skip


def vector_histories(
    histories: Histories, parts: dict[str, npt.NDArray[np.int64]], config: ItemVectorConfig
) -> Histories:
    """The histories the item vectors train on: the vectorization part, or every user."""
    if config.fit_on == "all-histories":
        return histories  # vectorization + shadow + target users; no labels are involved
    return histories.rows(parts["vectorization"])


MIN_PART_USERS = 8  # each part needs members and non-members enough to train and measure


def check_part_sizes(name: str, parts: dict[str, npt.NDArray[np.int64]]) -> None:
    """Refuse a dataset whose filtered users are too few for the three-way split to mean
    anything."""
    sizes = {part: len(users) for part, users in parts.items()}
    if min(sizes.values()) < MIN_PART_USERS:
        raise DataError(
            f"{name}: too small to split after filtering: parts of {sizes} users; every part "
            f"needs at least {MIN_PART_USERS}. Use more data, lower data.filter thresholds, or "
            "change data.split.fractions"
        )


@dataclass(frozen=True, eq=False)
class ServedLists:
    """A side's users, their labels and top-k lists: everything that does not depend on the
    item vectors, so two sides that differ only in `vectors` settings can share it."""

    users: npt.NDArray[np.int64]  # (n_users,) dataset user index, members first
    labels: npt.NDArray[np.int64]  # (n_users,) 1 = member, 0 = non-member
    lists: npt.NDArray[np.int32]  # (n_users, k)
    info: ServedInfo  # the recommender's settings, utility and timings

    @classmethod
    def of(cls, side: SideOutput) -> ServedLists:
        """The lists part of a built side (e.g. one loaded from the side cache)."""
        return cls(side.users, side.labels, side.lists, side.info.served)


def build_side(
    data: PreparedDataset, spec: SideSpec, served: ServedLists | None = None
) -> SideOutput:
    """Train `spec`'s recommender on its members, serve lists, and build difference vectors.

    `served`: the lists of a side identical to `spec` but for its item-vector settings (from
    the side cache); the recommender is then not trained again, only the vectors are new.
    """
    check_k(data, spec)
    keep_freed_memory()
    if served is not None:
        return vectorise(data, spec, served, reused=True)
    return vectorise(data, spec, serve_lists(data, spec), reused=False)


def check_k(data: PreparedDataset, spec: SideSpec) -> None:
    """Refuse a list length longer than the filtered catalogue."""
    if spec.k > data.histories.n_items:
        raise ConfigError(
            f"k={spec.k} is larger than the catalogue of {spec.dataset.label} "
            f"({data.histories.n_items} items after filtering); use a smaller k"
        )


def vectorise(
    data: PreparedDataset, spec: SideSpec, served: ServedLists, *, reused: bool
) -> SideOutput:
    """The side of `served` lists: difference vectors and list statistics of its users.

    `reused`: the lists come from a side that differs only in its item-vector settings.
    """
    started = time.perf_counter()
    histories = data.histories.rows(served.users)
    holds_out_last = recommender_class(spec.recommender).holds_out_last
    visible = histories.drop_last(1) if holds_out_last else histories
    vectors, n_zero = difference_vectors(data.item_vectors, visible, served.lists, spec.center)
    held_out = histories.without_first(visible.lengths)
    statistics = list_statistics(ListView(served.lists, visible, held_out, vectors))
    has_vector = data.item_vectors.has_vector
    info = SideInfo(
        served=served.info,
        n_zero_vectors=int(n_zero),
        history_coverage=float(has_vector[visible.items].mean()),
        list_coverage=float(has_vector[served.lists].mean()),
        vector_seconds=time.perf_counter() - started,
        lists_reused=reused,
        dataset=data.stats,
        fingerprint=data.fingerprint,
    )
    log.info("side %s/%s/%s: %s", spec.dataset.label, spec.role, spec.recommender, info)
    return SideOutput(vectors, served.labels, served.users, served.lists, info, statistics)


@dataclass(frozen=True, eq=False)
class FittedSide:
    """A side's recommender, trained on its members, and the seconds its training took (a
    share of a batched pool's training, `dlmia.pools`)."""

    recommender: KnownItems
    fit_seconds: float


def side_model(spec: SideSpec) -> KnownItems:
    """The side's untrained recommender, restricted to the items its members hold."""
    model = make_recommender(
        spec.recommender, spec.settings, device=spec.device, seed=model_seed(spec)
    )
    return KnownItems(model)


def fit_side(data: PreparedDataset, spec: SideSpec) -> FittedSide:
    """Train the side's recommender on its members."""
    started = time.perf_counter()
    members = side_users(data.parts, spec)[0]
    recommender = side_model(spec).fit(data.histories.rows(members))  # ranks what it trained on
    return FittedSide(recommender, time.perf_counter() - started)


def serve_lists(
    data: PreparedDataset, spec: SideSpec, fitted: FittedSide | None = None
) -> ServedLists:
    """Serve the side's users their lists: members the model's, the others the non-member
    policy's. The model is `fitted` (trained on the side's members), else trained here."""
    fitted = fitted or fit_side(data, spec)
    recommender, model = fitted.recommender, fitted.recommender.model
    started = time.perf_counter()
    members, users, labels = side_users(data.parts, spec)
    visible = recommender.training_prefix(data.histories.rows(users))  # what the adversary sees
    inside = labels == 1
    lists = np.empty((len(users), spec.k), dtype=np.int32)  # (n_users, k)
    if inside.any():
        lists[inside] = recommender.recommend(
            visible.rows(inside), spec.k, exclude_seen=spec.exclude_seen
        ).numpy()
    if not inside.all():
        lists[~inside] = nonmember_lists(
            spec.nonmember_lists,
            visible.rows(~inside),
            spec.k,
            seed=spec.seed,
            recommender=recommender,
            exclude_seen=spec.exclude_seen,
        ).numpy()
    listed = time.perf_counter()
    nonmembers = data.histories.rows(users[~inside])
    popularity = KnownItems(Popularity(device="cpu")).fit(  # the floor, on what the model saw
        recommender.training_prefix(data.histories.rows(members))
    )
    info = ServedInfo(
        n_members=int(inside.sum()),
        n_nonmembers=int((~inside).sum()),
        recommender_hr_at_10=holdout_hit_rate(recommender, nonmembers),
        fit_seconds=fitted.fit_seconds,
        recommend_seconds=listed - started,
        recommender_settings=dataclasses.asdict(recommender.config),
        recommender_items=len(recommender.catalogue),
        validation_seconds=sum(epoch.eval_s for epoch in getattr(model, "log", [])),
        epochs_run=len(getattr(model, "log", [])),
        best_epoch=getattr(model, "best_epoch", 0),
        popularity_hr_at_10=holdout_hit_rate(popularity, nonmembers),
    )
    return ServedLists(users, labels, lists, info)


def model_seed(spec: SideSpec) -> int:
    """The seed of the side's recommender: the run's, or, for each model of a reference pool,
    one of its own (LiRA's references differ in their initialisation as well as their data)."""
    if spec.reference is None:
        return spec.seed
    return derive_seed(spec.seed, "reference", spec.reference.index)


def side_users(
    parts: dict[str, npt.NDArray[np.int64]], spec: SideSpec
) -> tuple[npt.NDArray[np.int64], npt.NDArray[np.int64], npt.NDArray[np.int64]]:
    """(the users the side's model trains on, the users it serves, their 0/1 labels).

    A shadow or target side serves its part, members first; a reference side trains on its
    seeded half of the population (the shadow part; online, the target part too) and serves the
    shadow and target parts, sorted, labelled by whether each user was in that half.
    """
    if spec.reference is None:
        members, nonmembers = member_halves(parts[spec.role], spec.seed, spec.role)
        users = np.concatenate([members, nonmembers])
        return members, users, (np.arange(len(users)) < len(members)).astype(np.int64)
    users = np.sort(np.concatenate([parts["shadow"], parts["target"]]))
    population = users if spec.reference.online else parts["shadow"]
    members = reference_half(population, spec.seed, spec.reference.index)
    return members, users, np.isin(users, members).astype(np.int64)


def holdout_hit_rate(recommender: Any, histories: Histories, k: int = 10) -> float:
    """HR@k of the next item after each user's history minus its last item (a utility check).

    Measured on non-members, whom the recommender never trained on, so it reads as the model's
    quality for new users; seen items are excluded from the ranking.
    """
    has_two = histories.lengths >= 2
    if not has_two.any():
        return float("nan")
    held = histories.rows(has_two)
    lists = recommender.recommend(held.drop_last(1), k, exclude_seen=True).numpy()
    return float((lists == held.last_items()[:, None]).any(axis=1).mean())
