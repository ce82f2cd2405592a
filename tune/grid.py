"""Grid files: the YAML schema as frozen dataclasses, loaded and validated in full before a run.

A grid names datasets and recommenders by alias, crosses `dataset.recommender` sides into cells
(a product of shadow and target sides, or an explicit list), and lists the attacks and seeds
every cell runs with. `load_grid` checks every key, type, name and reference and raises one
`ConfigError` that names the file, the key path and what is allowed; `tune.plan.expand` then
turns a valid grid into sides and cells. Settings precedence: dataclass defaults < grid file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field, replace
from importlib import resources
from pathlib import Path
from typing import Any, Literal

import yaml

from dlmia import config as cfg
from dlmia import safe_yaml
from dlmia.attacks import ATTACKS
from dlmia.errors import ConfigError, brief
from dlmia.io import read_regular
from dlmia.nonmember import POLICIES, Policy
from dlmia.recommenders import recommender_class
from dlmia.sides import DatasetSpec
from dlmia.vectors import Center
from tune.search import SearchConfig

ALIAS = re.compile(r"[A-Za-z0-9_-]+")  # (whole names) aliases become parts of file names and ids
REQUIRED = ("name", "datasets", "recommenders", "cells", "attacks")
PRODUCT = "{product: {shadow: [dataset.recommender, ...], target: [...]}}"
MAX_GRID_BYTES = 1 << 20  # a grid file of more is refused unread (the paper grids: ~5 KB)


@dataclass(frozen=True)
class Resources:
    """What one side's or one attack's worker (actor), or one search trial, reserves on the
    cluster."""

    num_cpus: float = 1.0  # CPUs reserved; torch uses this many threads
    num_gpus: float = 0.0  # GPUs reserved (fractions allowed); ignored on a cluster without GPUs

    def __post_init__(self) -> None:
        if self.num_cpus <= 0 or self.num_gpus < 0:
            raise ConfigError(f"need num_cpus > 0 and num_gpus >= 0, got {self}")


@dataclass(frozen=True)
class RecommenderEntry:
    """One recommender of the grid: a registry name, its settings and its resources."""

    name: str  # a name from dlmia.recommenders.RECOMMENDERS, or module:Class (your own)
    settings: dict[str, Any] = field(default_factory=dict)  # keys of that recommender's Config
    resources: Resources = field(default_factory=Resources)  # per side worker


@dataclass(frozen=True)
class AttackEntry:
    """One attack every cell runs: fixed settings, and for a searchable attack (one that
    declares a search space: dlmia, reference) optionally a per-cell search."""

    settings: dict[str, Any] = field(default_factory=dict)  # keys of that attack's Config
    resources: Resources = field(default_factory=Resources)  # per attack (per search trial)
    search: SearchConfig | None = None  # search the settings `settings` leaves free


@dataclass(frozen=True)
class Runtime:
    """How the runner behaves; none of it changes a result."""

    max_retries: int = 1  # further attempts of a side or cell that raised, before it is failed
    device: Literal["auto", "cpu"] = "auto"  # of models: auto (CUDA if the worker has a GPU), cpu
    side_workers: int = 0  # most sides training at once; 0 = as many as the cluster fits
    max_concurrent_cells: int = 0  # most cells running at once; 0 = twice the cluster's CPUs

    def __post_init__(self) -> None:
        if min(self.max_retries, self.side_workers, self.max_concurrent_cells) < 0:
            raise ConfigError(f"runtime: counts must be >= 0, got {self}")


@dataclass(frozen=True)
class CellPair:
    """A shadow side and a target side, each written `dataset.recommender` (aliases)."""

    shadow: str  # e.g. ml-1m.lfm
    target: str  # e.g. ml-1m.itemcf


@dataclass(frozen=True)
class Grid:
    """A validated grid file."""

    name: str  # the grid's name; results go to out/<name> by default
    datasets: dict[str, DatasetSpec]  # alias -> dataset
    recommenders: dict[str, RecommenderEntry]  # alias -> recommender
    cells: tuple[CellPair, ...]  # the (shadow, target) pairs, product expanded
    attacks: dict[str, AttackEntry]  # attack name (biased, dlmia) -> fixed settings
    k: int = 100  # length of every top-k list
    nonmember_lists: tuple[Policy, ...] = ("popular",)  # each its own sides and cells
    center: Center = "uniform"  # centre of the recommended items' vectors
    exclude_seen: bool = False  # drop seen items from member lists (the paper keeps them)
    seeds: tuple[int, ...] = (0,)  # each seed re-trains the sides and the attacks
    runtime: Runtime = field(default_factory=Runtime)  # retries, device, concurrency
    source: str = ""  # the file the grid was read from


def packaged_grids() -> dict[str, Path]:
    """The grid files shipped inside the package (`tune/grids/*.yaml`), by bare name."""
    folder = Path(str(resources.files("tune") / "grids"))
    return {path.stem: path for path in sorted(folder.glob("*.yaml"), key=lambda p: p.stem)}


def locate_grid(file: str | Path) -> Path:
    """The grid file `file` names: an existing path as it is, else a bare name (`demo`) as the
    packaged grid of that name, so a pip-installed dlmia runs its grids from any folder."""
    path = Path(file)
    if path.exists():
        return path
    packaged = packaged_grids()
    if str(file) in packaged:
        return packaged[str(file)]
    if path.stem in packaged:
        hint = f"the packaged grid of that name is `{path.stem}`"
    else:
        hint = f"packaged grids: {', '.join(packaged)}"
    raise ConfigError(
        f"{file}: no such grid file ({hint}; `dlmia grid show NAME` prints one to copy and edit)"
    )


def load_grid(path: str | Path) -> Grid:
    """Read and validate grid file `path` (or the packaged grid a bare name names, see
    `locate_grid`); every error names the file and the key path."""
    path = locate_grid(path)
    text = read_regular(path, MAX_GRID_BYTES, "grid file")
    try:
        raw = safe_yaml.load(text)
    except yaml.YAMLError as exc:
        raise ConfigError(f"{path}: not valid YAML ({safe_yaml.problem(exc)})") from None
    try:
        return parse_grid(raw, source=str(path))
    except ConfigError as exc:
        raise ConfigError(f"{path}: {exc}") from None


def override(grid: Grid, vectors_fit_on: str | None = None, no_search: bool = False) -> Grid:
    """`grid` with every dataset's `vectors.fit_on` set and/or every search dropped (DL-MIA then
    runs once per cell with its fixed settings). The name says what changed (e.g.
    `paper-general-all-histories-fixed`), so the default output folder differs and no result of
    the grid as written is overwritten."""
    name = grid.name
    datasets = grid.datasets
    attacks = grid.attacks
    if vectors_fit_on is not None:
        datasets = {
            alias: replace(entry, vectors=cfg.replace(entry.vectors, {"fit_on": vectors_fit_on}))
            for alias, entry in datasets.items()
        }
        name += f"-{vectors_fit_on}"
    if no_search:
        attacks = {attack: replace(entry, search=None) for attack, entry in attacks.items()}
        name += "-fixed"
    return replace(grid, name=name, datasets=datasets, attacks=attacks)


def grid_dict(grid: Grid) -> dict[str, Any]:
    """`grid` as plain data in the grid-file schema (defaults filled in, cells listed)."""
    values = _plain(cfg.as_dict(grid))
    values.pop("source")
    return values


def _plain(value: Any) -> Any:
    """Tuples as lists, recursively (for YAML)."""
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def parse_grid(raw: Any, source: str = "") -> Grid:
    """Validate a grid given as plain data (what YAML gives) and build the typed `Grid`."""
    if not isinstance(raw, dict):
        keys = ", ".join(REQUIRED)
        raise ConfigError(f"expected a mapping with keys {keys}, got {type(raw).__name__}")
    allowed = [f for f in Grid.__dataclass_fields__ if f != "source"]
    unknown = sorted(set(raw) - set(allowed))
    if unknown:
        raise ConfigError(f"{unknown[0]}: unknown key; allowed keys are {', '.join(allowed)}")
    missing = [key for key in REQUIRED if key not in raw]
    if missing:
        needs = f"{', '.join(REQUIRED[:-1])} and {REQUIRED[-1]}"
        raise ConfigError(f"{missing[0]}: missing; a grid needs {needs}")
    _check_alias(raw["name"], "name")
    datasets = {a: _dataset(a, v) for a, v in _aliases(raw, "datasets").items()}
    recommenders = {a: _recommender(a, v) for a, v in _aliases(raw, "recommenders").items()}
    attacks = {a: _attack(a, v) for a, v in _mapping(raw["attacks"], "attacks").items()}
    if not attacks:
        raise ConfigError(f"attacks: empty; list at least one of {', '.join(ATTACKS)}")
    cells = _cells(raw["cells"], datasets, recommenders)
    sections: dict[str, Any] = {
        "datasets": datasets, "recommenders": recommenders, "attacks": attacks,
    }  # fmt: skip
    policy = raw.get("nonmember_lists")
    if isinstance(policy, str):  # one policy may be written without a list
        if policy not in POLICIES:
            choices = ", ".join(POLICIES)
            raise ConfigError(
                f"nonmember_lists: {brief(policy)} is not allowed; use one of {choices}"
            )
        sections["nonmember_lists"] = [policy]
    grid = cfg.build(Grid, {**raw, **sections, "cells": cells, "source": source})
    _check_values(grid)
    return grid


def _dataset(alias: str, value: Any) -> DatasetSpec:
    """Grid dataset `alias`: a `DatasetSpec`, which checks its own name, path and columns."""
    return _build(DatasetSpec, value, f"datasets.{alias}")


def _recommender(alias: str, value: Any) -> RecommenderEntry:
    where = f"recommenders.{alias}"
    entry = _build(RecommenderEntry, value, where)
    if not isinstance(entry.name, str):
        raise ConfigError(f"{where}.name: expected a recommender name, got {brief(entry.name)}")
    try:
        cls = recommender_class(entry.name)
    except ConfigError as exc:
        raise ConfigError(f"{where}.name: {exc}") from None
    _build(cls.Config, entry.settings, f"{where}.settings")
    return entry


def _attack(name: str, value: Any) -> AttackEntry:
    where = f"attacks.{name}"
    if name not in ATTACKS:
        known = ", ".join(sorted(ATTACKS))
        raise ConfigError(f"{where}: unknown attack; known attacks are {known}")
    entry = _build(AttackEntry, {} if value is None else value, where)
    _build(ATTACKS[name].Config, entry.settings, f"{where}.settings")
    if entry.search is None:
        return entry
    try:  # the attack's own space when the block names none, checked against its settings
        return replace(entry, search=entry.search.for_attack(name, entry.settings))
    except ConfigError as exc:
        raise ConfigError(f"{where}.search: {exc}") from None


def _cells(value: Any, datasets: dict[str, Any], recommenders: dict[str, Any]) -> list[CellPair]:
    """The (shadow, target) pairs of `cells`: a `product` mapping or an explicit list."""
    if isinstance(value, dict):
        if set(value) != {"product"}:
            raise ConfigError(f"cells: a mapping must be {PRODUCT}")
        product = _mapping(value["product"], "cells.product")
        if set(product) != {"shadow", "target"}:
            raise ConfigError(f"cells.product: needs exactly shadow and target: {PRODUCT}")
        shadows = _side_list(product["shadow"], "cells.product.shadow")
        targets = _side_list(product["target"], "cells.product.target")
        pairs = [(s, t, "cells.product") for s in shadows for t in targets]
    elif isinstance(value, list) and value:
        pairs = []
        for i, item in enumerate(value):
            pair = _build(CellPair, item, f"cells[{i}]")
            pairs.append((pair.shadow, pair.target, f"cells[{i}]"))
    else:
        raise ConfigError(f"cells: expected {PRODUCT} or a non-empty list of {{shadow, target}}")
    seen: set[tuple[str, str]] = set()
    for shadow, target, where in pairs:
        _check_side(shadow, f"{where}.shadow", datasets, recommenders)
        _check_side(target, f"{where}.target", datasets, recommenders)
        if (shadow, target) in seen:
            raise ConfigError(f"{where}: the cell {shadow} -> {target} is listed twice")
        seen.add((shadow, target))
    return [CellPair(s, t) for s, t, _ in pairs]


def _side_list(value: Any, where: str) -> list[str]:
    if not isinstance(value, list) or not value:
        raise ConfigError(f"{where}: expected a non-empty list of dataset.recommender")
    return value


def _check_side(
    ref: Any, where: str, datasets: dict[str, Any], recommenders: dict[str, Any]
) -> None:
    if not isinstance(ref, str) or ref.count(".") != 1:
        raise ConfigError(f"{where}: expected 'dataset.recommender' (aliases), got {brief(ref)}")
    dataset, recommender = ref.split(".")
    if dataset not in datasets:
        known = ", ".join(datasets)
        raise ConfigError(
            f"{where}: {brief(ref)} names dataset {brief(dataset)}; datasets are {known}"
        )
    if recommender not in recommenders:
        known = ", ".join(recommenders)
        raise ConfigError(
            f"{where}: {brief(ref)} names recommender {brief(recommender)}; recommenders are "
            f"{known}"
        )


def _check_values(grid: Grid) -> None:
    if grid.k < 1:
        raise ConfigError(f"k: must be a positive list length, got {grid.k}")
    policies = list(grid.nonmember_lists)
    if not policies or len(set(policies)) != len(policies):
        raise ConfigError(f"nonmember_lists: expected distinct policies, got {policies}")
    seeds = grid.seeds
    distinct = bool(seeds) and len(set(seeds)) == len(seeds)
    if not distinct or not 0 <= min(seeds) <= max(seeds) <= cfg.MAX_SEED:
        raise ConfigError(
            "seeds: expected a non-empty list of distinct integers in [0, 2**63), got "
            f"{brief(list(seeds))}"
        )
    for alias, entry in grid.datasets.items():
        n_items = entry.synthetic.n_items
        if entry.name == "synthetic" and grid.k > n_items:
            raise ConfigError(
                f"k: {grid.k} is larger than datasets.{alias}.synthetic.n_items ({n_items})"
            )


def _build(cls: type, value: Any, where: str) -> Any:
    """`cfg.build`, with errors raised by the dataclass itself also prefixed by `where`."""
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {brief(value)}")
    try:
        return cfg.build(cls, value, where)
    except ConfigError as exc:
        message = str(exc)
        prefixed = message if message.startswith(where) else f"{where}: {message}"
        raise ConfigError(prefixed) from None


def _mapping(value: Any, where: str) -> dict[str, Any]:
    if not isinstance(value, dict):
        raise ConfigError(f"{where}: expected a mapping, got {brief(value)}")
    return value


def _aliases(raw: dict[str, Any], where: str) -> dict[str, Any]:
    mapping = _mapping(raw[where], where)
    if not mapping:
        raise ConfigError(f"{where}: empty; define at least one")
    for alias in mapping:
        _check_alias(alias, f"{where}.{alias}")
    return mapping


def _check_alias(value: Any, where: str) -> None:
    if not isinstance(value, str) or not ALIAS.fullmatch(value):
        raise ConfigError(
            f"{where}: {brief(value)} is not a valid name; use letters, digits, '-' and '_'"
        )
