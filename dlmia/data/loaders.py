"""Readers for the paper's interaction files and for any user/item table.

Every reader returns `Interactions` with one row per interaction in the file. Feedback is
implicit: each rating counts as an interaction and its value is ignored. Raw ids map to contiguous
ints in order of first appearance, and the maps are kept. Input that cannot be read raises
`DataError`, which names the file and, for a malformed line, its number and the expected format.
"""

from __future__ import annotations

import io
import re
import zipfile
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Literal, NoReturn

import numpy as np
import numpy.typing as npt
import pandas as pd

from dlmia.data.interactions import Interactions
from dlmia.errors import DataError

ML1M_FORMAT = "UserID::MovieID::Rating::Timestamp"
AMAZON_FORMAT = "user,item,rating,timestamp (no header)"
_ML1M_LINE = re.compile(rb"\s*\d+::\d+::\d+(\.\d*)?::\d+\s*")
_AMAZON_LINE = re.compile(rb"\s*[^,\s]+,[^,\s]+,\d+(\.\d*)?,\d+\s*")
_USER_NAMES = (
    "user", "userid", "uid", "users", "reviewerid", "customerid", "sessionid", "visitorid",
)  # fmt: skip
_ITEM_NAMES = (
    "item", "itemid", "iid", "items", "movieid", "movie", "asin", "productid", "product",
    "trackid", "songid", "artistid", "bookid", "isbn",
)  # fmt: skip
_TIME_NAMES = ("timestamp", "time", "ts", "datetime", "date", "unixreviewtime", "eventtime")
_COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")
FileFormat = Literal["ml1m", "amazon", "table"]


def load_ml1m(path: str | Path) -> Interactions:
    """Read MovieLens-1M `ratings.dat`, or the official `ml-1m.zip` (in memory, not extracted).

    Lines are `UserID::MovieID::Rating::Timestamp`; user and item ids are integers.
    """
    path = existing_file(path)
    data, where = _read_bytes(path)
    if b"\t" in data:  # tabs would be read as separators once `::` becomes a tab
        _explain(data, where, ML1M_FORMAT, _ML1M_LINE)
    frame = _parse(
        lambda: pd.read_csv(
            io.BytesIO(data.replace(b"::", b"\t")),
            sep="\t",
            header=None,
            names=["user", "item", "rating", "time"],
            dtype={"user": np.int64, "item": np.int64, "rating": np.float64, "time": np.int64},
        ),
        data,
        where,
        ML1M_FORMAT,
        _ML1M_LINE,
    )
    return _interactions(str(path), frame)


def load_amazon_ratings(path: str | Path) -> Interactions:
    """Read an Amazon 2014 "ratings only" CSV: `user,item,rating,timestamp`, no header."""
    path = existing_file(path)
    data, where = _read_bytes(path)
    frame = _parse(
        lambda: pd.read_csv(
            io.BytesIO(data),
            header=None,
            names=["user", "item", "rating", "time"],
            dtype={"user": str, "item": str, "rating": np.float64, "time": np.int64},
        ),
        data,
        where,
        AMAZON_FORMAT,
        _AMAZON_LINE,
    )
    return _interactions(str(path), frame)


def load_table(
    path: str | Path,
    user_col: str | None = None,
    item_col: str | None = None,
    time_col: str | None = None,
) -> Interactions:
    """Read a CSV, TSV or parquet table with a header row, one interaction per row.

    Columns left as None are found among common spellings (`user`, `user_id`, `userId`, ...;
    `item`, `item_id`, `movieId`, `asin`, ...; `timestamp`, `time`, `ts`, ...). The time column is
    optional: without one, file order is time order. Dates are converted to Unix seconds.
    """
    path = existing_file(path)
    frame = _read_any_table(path)
    user = _column(frame, user_col, _USER_NAMES, "user", path)
    item = _column(frame, item_col, _ITEM_NAMES, "item", path)
    time = _column(frame, time_col, _TIME_NAMES, "time", path, required=False)
    frame = frame.dropna(how="all")  # blank lines
    for column in (user, item) if time is None else (user, item, time):
        missing = np.flatnonzero(frame[column].isna().to_numpy())
        if len(missing):
            where = _row_name(path, frame.index[missing[0]])
            raise DataError(f"{path} {where}: {column!r} is empty")
    times = None if time is None else _unix_seconds(frame[time], path, time)
    return Interactions.from_raw(str(path), frame[user].to_numpy(), frame[item].to_numpy(), times)


def load_file(path: str | Path, file_format: FileFormat | None = None) -> Interactions:
    """Read a file in `file_format`, or (None) in whichever supported format it holds.

    Detected by suffix and first line: `.zip` or a first line with `::` is MovieLens-1M; a
    headerless `a,b,number,integer` first line is Amazon 2014 ratings; anything else is a table
    with a header (`load_table`). A named dataset gives its format, so a malformed first line
    is reported as such rather than read as a header.
    """
    path = existing_file(path)
    readers = {"ml1m": load_ml1m, "amazon": load_amazon_ratings, "table": load_table}
    return readers[file_format or detect_format(path)](path)


def detect_format(path: Path) -> FileFormat:
    """`ml1m`, `amazon` or `table`: the reader that `load_file` uses for `path`."""
    if path.suffix.lower() == ".zip" and _base_suffix(path) == "":
        return "ml1m"
    if path.suffix.lower() in (".parquet", ".pq", *_COMPRESSION):
        return "table"
    with path.open("rb") as handle:
        first = next((line for line in handle if line.strip()), b"")
    if b"::" in first:
        return "ml1m"
    return "amazon" if _AMAZON_LINE.fullmatch(first.rstrip(b"\r\n")) else "table"


def _read_any_table(path: Path) -> pd.DataFrame:
    """All columns of a parquet file or a delimited text file (delimiter by suffix or header)."""
    kind = _base_suffix(path)
    try:
        if kind in (".parquet", ".pq"):
            return pd.read_parquet(path)
        sep = {".tsv": "\t", ".tab": "\t", ".csv": ","}.get(kind) or _sniff_delimiter(path)
        return pd.read_csv(path, sep=sep, skip_blank_lines=False)
    except (ValueError, OSError, EOFError, zlib.error, pd.errors.ParserError, ImportError) as exc:
        raise DataError(f"{path}: cannot be read as a table with a header row ({exc})") from exc


def _base_suffix(path: Path) -> str:
    """The format suffix, ignoring a compression suffix (`a.tsv.gz` -> `.tsv`)."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSION:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _sniff_delimiter(path: Path) -> str:
    """The first of tab, comma, semicolon, pipe that the header line contains (tab if none)."""
    with path.open("rb") as handle:
        header = handle.readline()
    return next((d for d in ("\t", ",", ";", "|") if d.encode() in header), "\t")


def _column(
    frame: pd.DataFrame,
    given: str | None,
    spellings: tuple[str, ...],
    role: str,
    path: Path,
    required: bool = True,
) -> str | None:
    """The column playing `role`: `given` if set (it must exist), else the first known spelling."""
    columns = [str(c) for c in frame.columns]
    if given is not None:
        if given not in columns:
            raise DataError(f"{path}: no column {given!r}; the columns are {', '.join(columns)}")
        return given
    normal = {re.sub(r"[^a-z0-9]", "", c.lower()): c for c in reversed(columns)}
    found = next((normal[s] for s in spellings if s in normal), None)
    if found is None and required:
        raise DataError(
            f"{path}: no {role} column among {', '.join(columns)}; name it {role}_col= "
            f"(known spellings: {', '.join(spellings)}), and check that the file has a header row"
        )
    return found


def _unix_seconds(values: pd.Series, path: Path, column: str) -> npt.NDArray[np.int64]:
    """(nnz,) timestamps as int64: numbers are kept (rounded), dates become Unix seconds."""
    if pd.api.types.is_numeric_dtype(values):
        return np.rint(values.to_numpy(dtype=np.float64)).astype(np.int64)
    try:
        dates = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{path}: column {column!r} holds neither numbers nor dates ({exc})"
        ) from exc
    seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.to_numpy(dtype=np.int64)


def _row_name(path: Path, index: int) -> str:
    """How to point at data row `index` (0-based): a line number for text (header = line 1)."""
    return f"row {index + 1}" if _base_suffix(path) in (".parquet", ".pq") else f"line {index + 2}"


def existing_file(path: str | Path) -> Path:
    """`path` as a Path; DataError naming it when it is not an existing file."""
    path = Path(path)
    if not path.is_file():
        what = "is a folder, not a file" if path.is_dir() else "does not exist"
        raise DataError(f"{path}: {what}")
    return path


def _read_bytes(path: Path) -> tuple[bytes, str]:
    """The raw ratings bytes and the name to use in messages (`archive.zip:member` for a zip)."""
    if path.suffix.lower() != ".zip":
        return path.read_bytes(), str(path)
    try:
        with zipfile.ZipFile(path) as archive:
            members = [n for n in archive.namelist() if n.endswith("ratings.dat")]
            if not members:
                raise DataError(f"{path}: the zip has no ratings.dat (expected ml-1m/ratings.dat)")
            member = "ml-1m/ratings.dat" if "ml-1m/ratings.dat" in members else members[0]
            return archive.read(member), f"{path}:{member}"
    except (zipfile.BadZipFile, OSError) as exc:
        raise DataError(f"{path}: not a readable zip file ({exc})") from exc


def _parse(
    read: Callable[[], pd.DataFrame],
    data: bytes,
    where: str,
    expected: str,
    line: re.Pattern[bytes],
) -> pd.DataFrame:
    """Run the fast reader; on failure, find the first bad line and raise a DataError naming it."""
    try:
        frame = read()
    except (ValueError, pd.errors.ParserError, UnicodeDecodeError):
        _explain(data, where, expected, line)
    if frame.empty or frame.isna().to_numpy().any():
        _explain(data, where, expected, line)
    return frame


def _explain(data: bytes, where: str, expected: str, line: re.Pattern[bytes]) -> NoReturn:
    """Raise a DataError for the first line of `data` not matching `line` (error path only)."""
    n_good = 0
    for number, text in enumerate(data.split(b"\n"), start=1):
        text = text.rstrip(b"\r")
        if not text.strip():
            continue
        if not line.fullmatch(text):
            shown = text.decode("utf-8", errors="replace")
            shown = shown if len(shown) <= 80 else shown[:77] + "..."
            raise DataError(f"{where} line {number}: expected {expected}, got {shown!r}")
        n_good += 1
    if n_good == 0:
        raise DataError(f"{where}: holds no interactions (expected lines of {expected})")
    raise DataError(f"{where}: could not be read as {expected}")


def _interactions(name: str, frame: pd.DataFrame) -> Interactions:
    return Interactions.from_raw(
        name, frame["user"].to_numpy(), frame["item"].to_numpy(), frame["time"].to_numpy()
    )
