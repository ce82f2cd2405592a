"""A grid expanded into work: sides (trained once each) and cells (one per pair, attack and seed).

Every side and cell carries a content key (sha256) over everything that decides its output:
the dataset's settings and a hash of its file, the role, recommender, settings,
seed, k, non-member policy and the version of the code that builds sides. The side cache is
addressed by that key, so a rerun, or another grid with the same side, reuses it; a finished
cell is skipped only when its stored key matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import itertools
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from stat import S_ISREG
from typing import Any

import dlmia
from dlmia.attacks.base import PoolRequest
from dlmia.cell import CellConfig, ListOptions, SideChoice, cell_config
from dlmia.errors import ConfigError, DlmiaError
from dlmia.sides import DatasetSpec, SideSpec
from tune.cache import file_digest
from tune.grid import AttackEntry, Grid, Resources
from tune.search import SearchConfig
from tune.space import largest_pool

ROLES = ("shadow", "target")

# The modules whose code decides a side's output: a change to any of them changes every side key.
SIDE_CODE = (
    "sides.py", "config.py", "seeding.py", "vectors.py", "nonmember.py", "optim.py",
    "factorization.py", "statistics.py", "data",
    "recommenders",
)  # fmt: skip


@dataclass(frozen=True)
class SideJob:
    """One side to train: its spec, content key and the resources of its worker."""

    id: str  # readable and unique in the grid, e.g. ml-1m.lfm.shadow.s0
    spec: SideSpec
    key: str  # sha256 content address in the side cache
    dataset_key: str  # identity of the prepared dataset it trains on
    resources: Resources
    lists_key: str = ""  # identity of its lists: the key without the item-vector settings


@dataclass(frozen=True)
class CellJob:
    """One attack of a target side with a model trained on a shadow side."""

    id: str  # readable and unique, e.g. ml-1m.lfm__ml-1m.itemcf__biased__s0
    config: CellConfig
    shadow: str  # side id
    target: str  # side id
    key: str  # sha256 of both side keys, the attack, its settings, search and seed
    resources: Resources  # of the attack task, or of each search trial
    search: SearchConfig | None = None  # search the attack's free settings (else run it once)
    references: tuple[str, ...] = ()  # side ids of the attack's reference pool, if any

    @property
    def side_ids(self) -> tuple[str, ...]:
        """Every side the cell needs: shadow, target, then its reference pool."""
        return (self.shadow, self.target, *self.references)

    @property
    def search_name(self) -> str:
        """The search's Tune experiment and Optuna study name: a new key starts a new search."""
        return f"{self.id}-{self.key[:12]}"


@dataclass(frozen=True)
class Plan:
    """All sides and cells of a grid, with the prepared datasets they need."""

    grid: Grid
    sides: dict[str, SideJob]  # side id -> job
    cells: tuple[CellJob, ...]
    datasets: dict[str, DatasetSpec]  # dataset key -> spec
    data_root: str = ""  # where dataset names and relative paths resolved ("" = the default)


def expand(grid: Grid, data_root: str | Path | None = None) -> Plan:
    """Expand `grid` into sides and cells.

    Dataset names and relative paths resolve under a dataset's own `data_root`, else
    `data_root` (default: $DLMIA_DATA_ROOT, else ./data), as in `dlmia cell`
    (`dlmia.data.sources.dataset_file`). Every cell's specs come from `dlmia.cell.cell_config`,
    as in `dlmia cell`, so a grid's seed means what the CLI's `--seed` means and a file path
    becomes the same absolute path. Each non-member policy of the grid is its
    own set of sides and cells; with several, ids name the policy.
    """
    root = str(data_root) if data_root else ""
    specs = {
        alias: dataclasses.replace(spec, data_root=spec.data_root or root)
        for alias, spec in grid.datasets.items()
    }
    sides: dict[str, SideJob] = {}
    cells = []
    for seed, policy, pair in itertools.product(grid.seeds, grid.nonmember_lists, grid.cells):
        tag = f".{policy}" if len(grid.nonmember_lists) > 1 else ""
        options = ListOptions(grid.k, policy, grid.center, grid.exclude_seen)
        for attack, entry in grid.attacks.items():
            try:
                config = cell_config(
                    side_choice(grid, pair.shadow, specs),
                    side_choice(grid, pair.target, specs),
                    attack,
                    entry.settings,
                    options,
                    seed,
                    grid.runtime.device,
                    search_pool(attack, entry),
                )
            except ConfigError as exc:
                where = f"{grid.source + ': ' if grid.source else ''}cell {pair.shadow} -> "
                raise ConfigError(f"{where}{pair.target}: {exc}") from None
            ids = {}
            for role, ref, spec in (
                ("shadow", pair.shadow, config.shadow),
                ("target", pair.target, config.target),
            ):
                job = side_job(grid, ref, f"{ref}.{role}{tag}.s{seed}", spec)
                sides.setdefault(job.id, job)
                ids[role] = job.id
            for spec in config.references:
                assert spec.reference is not None
                mode = "online" if spec.reference.online else "offline"
                name = f"{pair.shadow}.reference-{mode}-{spec.reference.index}{tag}.s{seed}"
                job = side_job(grid, pair.shadow, name, spec)
                sides.setdefault(job.id, job)
                ids[name] = job.id
            cell_id = f"{pair.shadow}__{pair.target}__{attack}{tag.replace('.', '__')}__s{seed}"
            cells.append(cell_job(cell_id, config, entry, sides, ids))
    datasets = {job.dataset_key: job.spec.dataset for job in sides.values()}
    return Plan(grid, sides, tuple(cells), datasets, root)


def search_pool(attack: str, entry: AttackEntry) -> PoolRequest | None:
    """The reference pool a searched cell of `attack` builds (the largest its trials need);
    None for an unsearched one (the pool its settings need)."""
    if entry.search is None:
        return None
    return largest_pool(attack, entry.search.searched_space(entry.settings), entry.settings)


def cell_count(grid: Grid) -> int:
    """How many cells `expand` makes of `grid`, without making them: a huge grid is refused
    before it is expanded."""
    return len(grid.cells) * len(grid.attacks) * len(grid.nonmember_lists) * len(grid.seeds)


def side_choice(grid: Grid, ref: str, specs: dict[str, DatasetSpec]) -> SideChoice:
    """The dataset and recommender that side reference `ref` (`dataset.recommender`) names."""
    dataset, recommender = ref.split(".")
    entry = grid.recommenders[recommender]
    return SideChoice(specs[dataset], entry.name, dict(entry.settings))


def side_key(spec: SideSpec) -> str:
    """The content key of side `spec`: its cache address."""
    return digest({"side": spec_identity(spec), "data": digest(spec_identity(spec.dataset))})


def side_job(grid: Grid, ref: str, side_id: str, spec: SideSpec) -> SideJob:
    """The job that trains side `spec` (named `side_id`), keyed by its content."""
    dataset_key = digest(spec_identity(spec.dataset))
    lists_identity: dict[str, Any] = {  # the lists never depend on the item vectors
        "side": spec_identity(spec), "data": data_fingerprint(spec.dataset), "code": code_version()
    }
    lists_identity["side"]["dataset"].pop("vectors")
    resources = grid.recommenders[ref.split(".")[1]].resources
    return SideJob(
        side_id, spec, side_key(spec), dataset_key, resources, digest(lists_identity)
    )


def cell_job(
    cell_id: str,
    config: CellConfig,
    entry: AttackEntry,
    sides: dict[str, SideJob],
    ids: dict[str, str],
) -> CellJob:
    """The job of cell `config` (its sides already among `sides`; `ids` maps shadow, target
    and each reference side's name to its side id), keyed by its content."""
    references = tuple(side_id for role, side_id in ids.items() if role not in ROLES)
    identity: dict[str, Any] = {
        "shadow": sides[ids["shadow"]].key,
        "target": sides[ids["target"]].key,
        "attack": config.attack,
        "settings": entry.settings,
        "seed": config.seed,
    }
    if entry.search is not None:  # (absent otherwise: fixed-settings cells keep their keys)
        identity["search"] = dataclasses.asdict(entry.search)
    if references:  # (likewise)
        identity["references"] = [sides[side_id].key for side_id in references]
    return CellJob(
        cell_id, config, ids["shadow"], ids["target"], digest(identity), entry.resources,
        entry.search, references,
    )


def spec_identity(spec: DatasetSpec | SideSpec) -> dict[str, Any]:
    """The fields of a spec that decide its output (not where data lives nor the device: a
    file stands for itself through `data_fingerprint`)."""
    values = dataclasses.asdict(spec)
    values.pop("device", None)
    dataset = values.get("dataset", values)
    dataset.pop("data_root", None)
    dataset.pop("path", None)
    if isinstance(spec, DatasetSpec):
        values["data"] = data_fingerprint(spec)
        values["code"] = code_version()
    return values


def data_fingerprint(spec: DatasetSpec) -> str:
    """The fingerprint of the dataset's file (`DatasetSpec.file`, the loader's lookup): its name,
    zip member and a hash of its bytes.

    The bytes, not the modification time: data copied again (a new checkout, a cluster's file
    sync) keeps its sides and finished cells. Synthetic data is fully described by its settings.
    A file that cannot be found, is not a regular file or cannot be read fingerprints as such:
    `tune.runner.check_data` then reports it before any work.
    """
    try:
        file = spec.file()
    except DlmiaError:
        return "missing"
    if file is None:
        return "synthetic"
    stat = file.path.stat()
    if not S_ISREG(stat.st_mode):  # a FIFO or device is never read here: the loader refuses it
        return "not a regular file"
    version = (stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns)
    try:
        content = data_file_digest(file.path.resolve(), version)
    except OSError:
        return "unreadable"
    member = f":{file.member}" if file.member else ""
    return f"{file.path.name}{member}:{content}"


@lru_cache(maxsize=64)
def data_file_digest(path: Path, version: tuple[int, ...]) -> str:
    """`tune.cache.file_digest` of a data file, read once per process for each version (its size
    and times: a write changes its change time even where its modification time is set back)."""
    return file_digest(path)


@lru_cache(maxsize=1)
def code_version() -> str:
    """sha256 over dlmia's version and the source of every module that decides a side's output."""
    package = Path(dlmia.__file__).parent
    files = []
    for name in SIDE_CODE:
        path = package / name
        files += sorted(path.rglob("*.py")) if path.is_dir() else [path] if path.exists() else []
    hasher = hashlib.sha256(dlmia.__version__.encode())
    for path in files:
        hasher.update(str(path.relative_to(package)).encode())
        hasher.update(path.read_bytes())
    return hasher.hexdigest()


def digest(value: Any) -> str:
    """sha256 of `value` as canonical JSON."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()
