"""Dataset names and files: where each named dataset lives under a data root, its default filter,
and `dataset_file`, the one lookup that loading, fingerprinting and `grid validate` share.

A dataset is one of `DATASETS` (looked up under the data root) or a file given by path, in any
format `load_file` reads. Nothing here downloads: `dlmia data fetch` (dlmia.data.fetch) does.
"""

from __future__ import annotations

import dataclasses
import os
from dataclasses import dataclass
from pathlib import Path

from dlmia.data.filtering import FilterConfig
from dlmia.data.interactions import Interactions
from dlmia.data.loaders import Columns, FileFormat, load_file
from dlmia.data.synthetic import SyntheticConfig, generate
from dlmia.errors import ConfigError, DataError

DATA_ROOT_ENV = "DLMIA_DATA_ROOT"
CHECKED_ROWS = 1000  # rows of a data file read before a run to check it


@dataclass(frozen=True)
class DataFile:
    """A file that holds a dataset's interactions, and how to read it."""

    path: Path  # under the data root (in `DATASETS`), or the file found (`dataset_file`)
    format: FileFormat | None = None  # None: detected from the file
    member: str | None = None  # the file to read inside a zip archive; None: its ratings file
    columns: Columns | None = None  # None: found from the header (or by position without one)


@dataclass(frozen=True)
class DatasetSource:
    """A named dataset: the files that may hold it (the first that exists is read) and how to
    filter it by default."""

    files: tuple[DataFile, ...]
    filter: FilterConfig  # default filter (method.md section 2)
    description: str  # one line for listings and error messages


def _movielens(
    release: str, ratings: str, file_format: FileFormat, columns: Columns | None = None
) -> tuple[DataFile, ...]:
    """The files of MovieLens `release` (e.g. ml-1m): `release/ratings`, or the official
    `release.zip` (in `release/`, where `dlmia data fetch` puts it, or at the data root)."""
    member = f"{release}/{ratings}"
    return tuple(
        DataFile(Path(path), file_format, None if path == member else member, columns)
        for path in (member, f"{release}/{release}.zip", f"{release}.zip")
    )


DATASETS: dict[str, DatasetSource] = {
    "ml-1m": DatasetSource(
        _movielens("ml-1m", "ratings.dat", "ml1m"),
        FilterConfig(min_user=5, min_item=5),
        "MovieLens-1M ratings (ratings.dat or the official ml-1m.zip)",
    ),
    "ml-100k": DatasetSource(
        _movielens("ml-100k", "u.data", "table", Columns(user=0, item=1, timestamp=3)),
        FilterConfig(min_user=5, min_item=5),
        "MovieLens-100K ratings (u.data or the official ml-100k.zip)",
    ),
    "ml-20m": DatasetSource(
        _movielens("ml-20m", "ratings.csv", "table", Columns("userId", "movieId", "timestamp")),
        FilterConfig(min_user=5, min_item=5),
        "MovieLens-20M ratings (ratings.csv or the official ml-20m.zip)",
    ),
    "amazon-beauty": DatasetSource(
        (DataFile(Path("amazon-beauty/ratings_Beauty.csv"), "amazon"),),
        FilterConfig(min_user=5, min_item=5),
        "Amazon 2014 Beauty, ratings-only CSV",
    ),
    # About 1.3 interactions per item: an item threshold above 1 removes most of the data. On the
    # paper's file (5,270 users, 206,381 items, 277,011 interactions; every user has >= 7), this
    # default keeps everything; min_item=2 would keep 4,687 users, 37,732 items and 106,892
    # interactions, and min_item=5 1,478 users, 1,886 items and 15,150 interactions.
    "amazon-digital-music": DatasetSource(
        (
            DataFile(Path("amazon-digital-music/ratings_Digital_Music.csv"), "amazon"),
            DataFile(Path("amazon-digital-music/interactions.tsv"), "table"),
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


def known_name(name: str) -> str:
    """`name` as a key of `DATASETS` (lower case); ConfigError listing them when it is none."""
    if name.lower() not in DATASETS:
        raise ConfigError(
            f"unknown dataset {name!r}; known: {', '.join(DATASETS)} (or give the path of a data "
            "file: any CSV/TSV/parquet table, with or without a header)"
        )
    return name.lower()


def name_or_path(text: str) -> dict[str, str]:
    """A dataset written as one word (`dlmia cell`'s DATASET): `{"name": text}` when it is a
    known name, else `{"path": text}`."""
    return {"name": text} if text.lower() in DATASETS else {"path": text}


def find_path(path: str, data_root: str | Path = "") -> Path | None:
    """The file a dataset `path` names: as given if it exists, else relative to the data root
    (`data_root`, or the default one); None when neither exists as something else than a
    folder."""
    given = Path(path).expanduser()
    root = Path(data_root) if data_root else default_data_root()
    found = (p for p in (given, root / given) if p.exists() and not p.is_dir())
    return next(found, None)  # a FIFO or device too: the loader refuses it by name


def dataset_file(
    name: str, path: str = "", data_root: str | Path = "", columns: Columns | None = None
) -> DataFile | None:
    """The file that dataset `name` (a key of `DATASETS`), else `path`, is read from.

    A name is looked up under `data_root` (default: $DLMIA_DATA_ROOT, else ./data): its first
    existing file. A path is used as given if it exists, else relative to the data root; it is
    read with `columns`. None for `synthetic` (generated, no file).

    Raises:
        ConfigError: an unknown name, or a path that is no file.
        DataError: a named dataset none of whose files exists.
    """
    key = name.lower()
    if key == "synthetic":
        return None
    root = Path(data_root) if data_root else default_data_root()
    if key:
        for file in DATASETS[known_name(key)].files:
            if (root / file.path).is_file():
                return dataclasses.replace(file, path=root / file.path)
        looked = ", ".join(str(root / file.path) for file in DATASETS[key].files)
        raise DataError(
            f"dataset {key!r} not found: looked for {looked}. Download it with `dlmia data "
            f"fetch {key} --to {root}`, or pass --data-root (or set {DATA_ROOT_ENV}) to the "
            f"folder that holds {key}/"
        )
    found = find_path(path, root)
    if found is None:
        places = " and ".join(dict.fromkeys(str(p) for p in (Path(path), root / path)))
        raise ConfigError(
            f"unknown dataset {path!r}: neither a known name ({', '.join(DATASETS)}) nor an "
            f"existing file (looked for {places}); a data file may be ratings.dat, a MovieLens "
            "zip, u.data, an Amazon ratings CSV, or a CSV/TSV/parquet table with or without a "
            "header"
        )
    return DataFile(found, None, None, columns)


def load_dataset(
    name: str,
    data_root: str | Path = "",
    synthetic: SyntheticConfig | None = None,
    *,
    path: str = "",
    columns: Columns | None = None,
) -> Interactions:
    """Load dataset `name` (a key of `DATASETS`, case-insensitive), else the file `path`,
    unfiltered; the file is found by `dataset_file`.

    Args:
        name: a known dataset, or "" for a file given by `path`.
        data_root: the folder holding the datasets' folders (see `DATASETS`); "" = the default.
        synthetic: settings (and seed) for `synthetic` (default `SyntheticConfig()`); ignored
            otherwise.
        path: a data file, as given or relative to the data root.
        columns: the columns of the `path` file (None: found from its header or positions).

    Raises:
        ConfigError: an unknown name, or a path that is no file.
        DataError: the dataset's file is missing or malformed.
    """
    file = dataset_file(name, path, data_root, columns)
    if file is None:
        synthetic = synthetic or SyntheticConfig()
        return generate(synthetic, synthetic.seed)
    data = load_file(file.path, file.format, file.member, file.columns)
    return dataclasses.replace(data, name=name.lower()) if name else data


def check_file(file: DataFile) -> None:
    """Raise the DataError loading would raise on the first `CHECKED_ROWS` rows of `file` (its
    format, columns, ids and times): cheap, so `grid validate` and `grid run` run it on every
    dataset before any work, and refuse a garbage, UTF-16 or list-typed file there."""
    load_file(file.path, file.format, file.member, file.columns, nrows=CHECKED_ROWS)
