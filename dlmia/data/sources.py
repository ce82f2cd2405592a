"""Dataset names: where each dataset's file lives under a data root, and its default filter.

A name is one of `DATASETS` (looked up under the data root) or the path of an existing file in
any format `load_file` reads. Nothing here downloads: `dlmia data fetch` (dlmia.data.fetch) does.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from dlmia.data.filtering import FilterConfig
from dlmia.data.interactions import Interactions
from dlmia.data.loaders import FileFormat, load_file
from dlmia.data.synthetic import SyntheticConfig, generate
from dlmia.errors import ConfigError, DataError

DATA_ROOT_ENV = "DLMIA_DATA_ROOT"


@dataclass(frozen=True)
class DatasetSource:
    """A named dataset: the files that may hold it and how to filter it by default."""

    files: tuple[tuple[str, FileFormat], ...]  # (path under the data root, its format); the
    # first that exists is read
    filter: FilterConfig  # default filter (method.md section 2)
    description: str  # one line for listings and error messages


DATASETS: dict[str, DatasetSource] = {
    "ml-1m": DatasetSource(
        (("ml-1m/ratings.dat", "ml1m"), ("ml-1m/ml-1m.zip", "ml1m"), ("ml-1m.zip", "ml1m")),
        FilterConfig(min_user=5, min_item=5),
        "MovieLens-1M ratings (ratings.dat or the official ml-1m.zip)",
    ),
    "amazon-beauty": DatasetSource(
        (("amazon-beauty/ratings_Beauty.csv", "amazon"),),
        FilterConfig(min_user=5, min_item=5),
        "Amazon 2014 Beauty, ratings-only CSV",
    ),
    # About 1.3 interactions per item: an item threshold above 1 removes most of the data. On the
    # paper's file (5,270 users, 206,381 items, 277,011 interactions; every user has >= 7), this
    # default keeps everything; min_item=2 would keep 4,687 users, 37,732 items and 106,892
    # interactions, and min_item=5 1,478 users, 1,886 items and 15,150 interactions.
    "amazon-digital-music": DatasetSource(
        (
            ("amazon-digital-music/ratings_Digital_Music.csv", "amazon"),
            ("amazon-digital-music/interactions.tsv", "table"),
        ),
        FilterConfig(min_user=5, min_item=1),
        "Amazon 2014 Digital Music, ratings-only CSV or a user/item TSV",
    ),
    "synthetic": DatasetSource((), FilterConfig(min_user=5, min_item=5), "generated (no file)"),
}


def default_data_root() -> Path:
    """The folder that dataset names are looked up in: $DLMIA_DATA_ROOT, else `./data`."""
    return Path(os.environ.get(DATA_ROOT_ENV) or "data")


def default_filter(name: str) -> FilterConfig:
    """The default filter of dataset `name` (the plain 5/5 k-core for files given by path)."""
    source = DATASETS.get(name.lower())
    return source.filter if source is not None else FilterConfig()


def load_dataset(
    name: str,
    data_root: str | Path,
    synthetic: SyntheticConfig | None = None,
) -> Interactions:
    """Load dataset `name` (a known name or a file path), unfiltered.

    Args:
        name: a key of `DATASETS` (case-insensitive) or the path of a data file (as given, or
            relative to `data_root`).
        data_root: the folder holding the datasets' folders (see `DATASETS`).
        synthetic: settings (and seed) for `synthetic` (default `SyntheticConfig()`); ignored
            otherwise.

    Raises:
        ConfigError: `name` is neither a known dataset nor an existing file.
        DataError: the dataset's file is missing or malformed.
    """
    key = name.lower()
    if key == "synthetic":
        synthetic = synthetic or SyntheticConfig()
        return generate(synthetic, synthetic.seed)
    root = Path(data_root)
    if key in DATASETS:
        return dataclasses.replace(load_file(*_find(key, root)), name=key)
    for path in (Path(name), root / name):
        if path.is_file():
            return load_file(path)
    raise ConfigError(
        f"unknown dataset {name!r}: use one of {', '.join(DATASETS)}, or the path of a data file "
        "(ratings.dat, ml-1m.zip, an Amazon ratings CSV, or a CSV/TSV/parquet table with user "
        f"and item columns); no file {name!r} exists here or under {root}"
    )


def _find(name: str, root: Path) -> tuple[Path, FileFormat]:
    """The first existing file of dataset `name` under `root`, and its format."""
    candidates = [root / file for file, _ in DATASETS[name].files]
    for path, (_, file_format) in zip(candidates, DATASETS[name].files):
        if path.is_file():
            return path, file_format
    raise DataError(
        f"dataset {name!r} not found: looked for {', '.join(map(str, candidates))}. Download it "
        f"with `dlmia data fetch {name} --to {root}`, or pass --data-root (or set "
        f"{DATA_ROOT_ENV}) to the folder that holds {name}/"
    )
