"""A grid expanded into work: sides (trained once each) and cells (one per pair, attack and seed).

Every side and cell carries a content key (sha256) over everything that decides its output:
the dataset's settings and a cheap fingerprint of its file, the role, recommender, settings,
seed, k, non-member policy and the version of the code that builds sides. The side cache is
addressed by that key, so a rerun, or another grid with the same side, reuses it; a finished
cell is skipped only when its stored key matches.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Any

import dlmia
from dlmia.cell import CellConfig
from dlmia.data.sources import DATASETS, default_data_root
from dlmia.sides import DatasetSpec, SideSpec
from tune.grid import DatasetEntry, Grid, Resources
from tune.search import SearchConfig

# The modules whose code decides a side's output: a change to any of them changes every side key.
SIDE_CODE = (
    "sides.py", "config.py", "seeding.py", "vectors.py", "nonmember.py", "data", "recommenders"
)  # fmt: skip


@dataclass(frozen=True)
class SideJob:
    """One side to train: its spec, content key and the resources of its worker."""

    id: str  # readable and unique in the grid, e.g. ml-1m.lfm.shadow.s0
    spec: SideSpec
    key: str  # sha256 content address in the side cache
    dataset_key: str  # identity of the prepared dataset it trains on
    resources: Resources


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


def expand(grid: Grid, data_root: str | Path | None = None) -> Plan:
    """Expand `grid` into sides and cells.

    Dataset names and relative paths resolve under `data_root` (default: $DLMIA_DATA_ROOT, else
    ./data).
    """
    root = str(Path(data_root).resolve()) if data_root else ""
    specs = {alias: dataset_spec(entry, root) for alias, entry in grid.datasets.items()}
    dataset_keys = {alias: digest(spec_identity(spec)) for alias, spec in specs.items()}
    sides: dict[str, SideJob] = {}
    cells = []
    for seed in grid.seeds:
        for pair in grid.cells:
            ids = {}
            for role, ref in (("shadow", pair.shadow), ("target", pair.target)):
                job = side_job(grid, ref, role, seed, specs, dataset_keys)
                sides.setdefault(job.id, job)
                ids[role] = job.id
            for attack in grid.attacks:
                cells.append(cell_job(grid, pair.shadow, pair.target, attack, seed, sides, ids))
    datasets = {dataset_keys[a]: spec for a, spec in specs.items()}
    return Plan(grid, sides, tuple(cells), datasets)


def dataset_spec(entry: DatasetEntry, root: str) -> DatasetSpec:
    """The `DatasetSpec` of a grid dataset; a relative `path` resolves under `root` (if given)."""
    name = entry.name
    if entry.path:
        path = Path(entry.path).expanduser()
        name = str(path if path.is_absolute() or not root else Path(root) / path)
    return DatasetSpec(
        name=name,
        data_root=root,
        filter=entry.filter,
        split=entry.split,
        synthetic=entry.synthetic,
        vectors=entry.vectors,
    )


def side_job(
    grid: Grid,
    ref: str,
    role: str,
    seed: int,
    specs: dict[str, DatasetSpec],
    dataset_keys: dict[str, str],
) -> SideJob:
    """The side `ref` (`dataset.recommender`) plays in `role` for `seed`."""
    dataset, recommender = ref.split(".")
    entry = grid.recommenders[recommender]
    spec = SideSpec(
        dataset=specs[dataset],
        role=role,  # type: ignore[arg-type]
        recommender=entry.name,
        settings=dict(entry.settings),
        k=grid.k,
        nonmember_lists=grid.nonmember_lists,
        center=grid.center,
        exclude_seen=grid.exclude_seen,
        seed=seed,
        device=grid.runtime.device,
    )
    identity = {"side": spec_identity(spec), "data": dataset_keys[dataset]}
    side_id = f"{ref}.{role}.s{seed}"
    return SideJob(side_id, spec, digest(identity), dataset_keys[dataset], entry.resources)


def cell_job(
    grid: Grid,
    shadow: str,
    target: str,
    attack: str,
    seed: int,
    sides: dict[str, SideJob],
    ids: dict[str, str],
) -> CellJob:
    """The cell attacking side `target` with `attack` trained on side `shadow`, for `seed`."""
    entry = grid.attacks[attack]
    config = CellConfig(
        shadow=sides[ids["shadow"]].spec,
        target=sides[ids["target"]].spec,
        attack=attack,
        attack_settings=dict(entry.settings),
        seed=seed,
        device=grid.runtime.device,
    )
    identity = {
        "shadow": sides[ids["shadow"]].key,
        "target": sides[ids["target"]].key,
        "attack": attack,
        "settings": entry.settings,
        "seed": seed,
    }
    if entry.search is not None:  # (absent otherwise: keys of fixed-settings cells stay as they were)
        identity["search"] = dataclasses.asdict(entry.search)
    cell_id = f"{shadow}__{target}__{attack}__s{seed}"
    key = digest(identity)
    return CellJob(
        cell_id, config, ids["shadow"], ids["target"], key, entry.resources, entry.search
    )


def spec_identity(spec: DatasetSpec | SideSpec) -> dict[str, Any]:
    """The fields of a spec that decide its output (not where data lives nor the device)."""
    values = dataclasses.asdict(spec)
    values.pop("device", None)
    dataset = values.get("dataset", values)
    dataset.pop("data_root", None)
    if isinstance(spec, DatasetSpec):
        values["data"] = data_fingerprint(spec)
        values["code"] = code_version()
    return values


def data_fingerprint(spec: DatasetSpec) -> str:
    """A cheap fingerprint of the dataset's file: its name, size and modification time.

    Synthetic data is fully described by its settings. A missing file fingerprints as missing;
    the run then fails with the loader's message.
    """
    key = spec.name.lower()
    if key == "synthetic":
        return "synthetic"
    root = Path(spec.data_root) if spec.data_root else default_data_root()
    candidates = [root / f for f in DATASETS[key].files] if key in DATASETS else [Path(spec.name)]
    for path in candidates:
        if path.is_file():
            stat = path.stat()
            return f"{path.name}:{stat.st_size}:{stat.st_mtime_ns}"
    return "missing"


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
