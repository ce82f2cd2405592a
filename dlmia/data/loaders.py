"""Readers for the paper's interaction files and for any delimited or parquet ratings file.

Every reader returns `Interactions` with one row per interaction in the file. Feedback is
implicit: each rating counts as an interaction and its value is ignored. Raw ids map to contiguous
ints in order of first appearance, and the maps are kept. Ids and times must be numbers, strings
or dates of at most `MAX_FIELD` characters (integers of at most 18 digits in the MovieLens and
Amazon formats), numeric times below 2**62: a list, a struct or a 5-million-digit number is
refused by line, not parsed for minutes. A file may be compressed (`.gz`, `.bz2`, `.xz`, `.zst`)
or sit in a zip archive (read in memory, never extracted). Input that cannot be read raises
`DataError`, which names the file and, for a malformed line, its number and the expected
format.
"""

from __future__ import annotations

import bz2
import contextlib
import gzip
import io
import itertools
import lzma
import re
import zipfile
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, NoReturn, TypeVar

import numpy as np
import numpy.typing as npt
import pandas as pd

from dlmia.data.interactions import Interactions
from dlmia.errors import ConfigError, DataError, brief

ML1M_FORMAT = "UserID::MovieID::Rating::Timestamp"
AMAZON_FORMAT = "user,item,rating,timestamp (no header)"
_ML1M_LINE = re.compile(rb"\s*\d{1,18}::\d{1,18}::\d{1,18}(\.\d{0,18})?::\d{1,18}\s*")
_AMAZON_LINE = re.compile(rb"\s*[^,\s]{1,256},[^,\s]{1,256},\d{1,18}(\.\d{0,18})?,\d{1,18}\s*")
_NUMBER = re.compile(r"[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?")
_USER_NAMES = (
    "user", "userid", "uid", "users", "reviewerid", "customerid", "sessionid", "visitorid",
)  # fmt: skip
_ITEM_NAMES = (
    "item", "itemid", "iid", "items", "movieid", "movie", "asin", "productid", "product",
    "trackid", "songid", "artistid", "bookid", "isbn",
)  # fmt: skip
_TIME_NAMES = ("timestamp", "time", "ts", "datetime", "date", "unixreviewtime", "eventtime")
_COMPRESSION = (".gz", ".bz2", ".xz", ".zst", ".zip")
RATINGS_MEMBERS = ("ratings.dat", "ratings.csv", "u.data")  # the ratings file of a MovieLens zip
TIME_LIKE = 100_000  # a headerless third column with a larger value holds times, not ratings
MAX_FIELD = 256  # characters of an id or time field (real ids are tens of characters)
MAX_TIME = 2.0**62  # magnitude of a numeric time (seconds, or milli/micro/nanoseconds)
_NESTED = (list, tuple, dict, set, np.ndarray)  # what a parquet list or struct column holds
COLUMNS_HINT = "--columns (a grid dataset: columns:)"
FileFormat = Literal["ml1m", "amazon", "table"]
T = TypeVar("T")


@dataclass(frozen=True)
class Columns:
    """The columns holding the user, the item and (optionally) the time of each interaction.

    All 0-based positions (read the file as having no header row) or all header names. Without a
    timestamp, file order is time order.
    """

    user: int | str | None = None  # e.g. 0, or a header name such as reviewerID
    item: int | str | None = None  # e.g. 1, or asin
    timestamp: int | str | None = None  # e.g. 3, or unixReviewTime; None = no time column

    def __post_init__(self) -> None:
        if self.user is None or self.item is None:
            raise ConfigError("give both user and item (timestamp is optional)")
        given = self.given()
        if len({type(value) for value in given.values()}) > 1:
            raise ConfigError("give all positions (a file without header) or all header names")
        for role, value in given.items():
            if isinstance(value, int) and value < 0:
                raise ConfigError(f"{role}: positions count from 0, got {value}")
        if len(set(given.values())) < len(given):
            raise ConfigError(f"two roles name the same column: {given}")

    def given(self) -> dict[str, int | str]:
        """The roles that are set: role -> position or header name."""
        roles = {"user": self.user, "item": self.item, "timestamp": self.timestamp}
        return {role: value for role, value in roles.items() if value is not None}

    @property
    def by_position(self) -> bool:
        """Whether the columns are positions (the file has no header row)."""
        return isinstance(self.user, int)


def load_ml1m(
    path: str | Path, member: str | None = None, nrows: int | None = None
) -> Interactions:
    """Read MovieLens-1M `ratings.dat`, or the official `ml-1m.zip` (`member`, default its
    ratings file); only its first `nrows` lines when given.

    Lines are `UserID::MovieID::Rating::Timestamp`; user and item ids are integers.
    """
    data, where = _read_bytes(existing_file(path), member, nrows)
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
    return _interactions(where, frame)


def load_amazon_ratings(
    path: str | Path, member: str | None = None, nrows: int | None = None
) -> Interactions:
    """Read an Amazon 2014 "ratings only" CSV: `user,item,rating,timestamp`, no header (only
    its first `nrows` lines when given)."""
    data, where = _read_bytes(existing_file(path), member, nrows)
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
    return _interactions(where, frame)


def load_table(
    path: str | Path,
    columns: Columns | None = None,
    member: str | None = None,
    nrows: int | None = None,
) -> Interactions:
    """Read a delimited text (CSV, TSV, ...) or parquet table, one interaction per row (only the
    first `nrows` rows when given).

    With `columns`, they say which columns to read (positions: the file has no header row).
    Without, a text file has a header unless its first line is all numbers or names no known
    user, item or time column; header columns are found among common spellings (`user`,
    `user_id`, `userId`, ...; `item`, `movieId`, `asin`, ...; `timestamp`, `time`, `ts`, ...).
    A file without header is read by position: 2 columns are user, item; 3 are user, item and a
    time if the third holds dates or a number above `TIME_LIKE` (else a rating, ignored); 4 or
    more are user, item, rating, timestamp (MovieLens `u.data`, the Amazon CSVs). Without a time
    column, file order is time order; dates are converted to Unix seconds.
    """
    path = existing_file(path)
    frame, where, header = _read_table(path, columns, member, nrows)
    user, item, time = _roles(frame, columns, header, where)
    frame = frame.dropna(how="all")  # blank lines
    for column in (user, item) if time is None else (user, item, time):
        missing = np.flatnonzero(frame[column].isna().to_numpy())
        if len(missing):
            at = _row_name(path, frame.index[missing[0]], header)
            raise DataError(f"{where} {at}: {_column_name(column)} is empty")
        bad = _bad_field(frame[column])
        if bad is not None:
            at = _row_name(path, frame.index[bad[0]], header)
            raise DataError(f"{where} {at}: {_column_name(column)} {bad[1]}")
    times = None if time is None else _unix_seconds(frame[time], where, column=time)
    return Interactions.from_raw(where, frame[user].to_numpy(), frame[item].to_numpy(), times)


def _bad_field(values: pd.Series) -> tuple[int, str] | None:
    """The position of the first id or time in `values` that is no scalar (a list, a struct) or
    is longer than `MAX_FIELD` characters, and what is wrong with it; None when all are fine."""
    kind = pd.api.types.infer_dtype(values, skipna=True)
    if kind == "mixed":  # objects of several types: lists and structs among them?
        found = next((i for i, value in enumerate(values) if isinstance(value, _NESTED)), None)
        if found is not None:
            value = values.iloc[found]
            return found, f"holds a {type(value).__name__} ({brief(value)}), not an id or a time"
    if kind == "string":
        lengths = values.str.len().to_numpy()
        if lengths.max(initial=0) > MAX_FIELD:
            found = int(np.argmax(lengths > MAX_FIELD))
            return found, f"holds {lengths[found]:,} characters; a field holds at most {MAX_FIELD}"
    return None


def load_file(
    path: str | Path,
    file_format: FileFormat | None = None,
    member: str | None = None,
    columns: Columns | None = None,
    nrows: int | None = None,
) -> Interactions:
    """Read a file (a zip archive's `member`) in `file_format`, or (None) in whichever supported
    format it holds; `columns` always read it as a table (`load_table`). With `nrows`, only
    its first rows: what a cheap check before a run reads.

    Detected by suffix and first line: a first line with `::` is MovieLens-1M; a headerless
    `a,b,number,integer` first line is Amazon 2014 ratings; anything else is a table, with or
    without a header (`load_table`). A named dataset gives its format, so a malformed first line
    is reported as such rather than read as a header.
    """
    path = existing_file(path)
    if columns is not None:
        return load_table(path, columns, member, nrows)
    file_format = file_format or detect_format(path, member)
    if file_format == "table":
        return load_table(path, None, member, nrows)
    return (load_ml1m if file_format == "ml1m" else load_amazon_ratings)(path, member, nrows)


def read_columns(path: str | Path, names: tuple[str, ...], what: str) -> pd.DataFrame:
    """The columns `names` of a small table (`what` names it in messages): parquet, or a
    delimited file with a header that holds them (any case), or without a header, holding them
    in that order. Every value is read as text, so ids match the dataset's raw ids exactly.

    Raises:
        DataError: a file that is missing, unreadable, lacks a column, or has an empty field.
    """
    path = existing_file(path)
    if _base_suffix(path) in (".parquet", ".pq"):
        frame = _reading(str(path), lambda: pd.read_parquet(path)).astype(str)
        frame.columns = [str(column).lower() for column in frame.columns]
    else:
        first = _first_line(path)
        sep = {".tsv": "\t", ".csv": ","}.get(_base_suffix(path)) or _sniff_delimiter(first)
        fields = first.decode(errors="replace").split(sep)
        header = set(names) <= {field.strip().strip("\"'").lower() for field in fields}
        with _opened(path) as (handle, where):
            frame = _reading(where, lambda: pd.read_csv(
                handle, sep=sep, header=0 if header else None, dtype=str, keep_default_na=False,
            ))
        if header:
            frame.columns = [str(column).strip().lower() for column in frame.columns]
        elif frame.shape[1] >= len(names):
            frame = frame.set_axis([*names, *frame.columns[len(names):]], axis=1)
    missing = [name for name in names if name not in frame.columns]
    if missing:
        raise DataError(
            f"{path}: {what} needs the columns {', '.join(names)} (a header naming them, or "
            f"them in that order without one); {', '.join(missing)} not found"
        )
    frame = frame[list(names)].apply(lambda column: column.str.strip())
    empty = frame.eq("").to_numpy()
    if empty.any():
        row = int(empty.any(axis=1).argmax())
        raise DataError(f"{path}: {what}: row {row + 1} has an empty field")
    return frame


def detect_format(path: Path, member: str | None = None) -> FileFormat:
    """`ml1m`, `amazon` or `table`: the reader that `load_file` uses for `path` (or its member)."""
    if _base_suffix(path) in (".parquet", ".pq"):
        return "table"
    first = _first_line(path, member)
    if b"::" in first:
        return "ml1m"
    return "amazon" if _AMAZON_LINE.fullmatch(first) else "table"


def _read_table(
    path: Path, columns: Columns | None, member: str | None, nrows: int | None = None
) -> tuple[pd.DataFrame, str, bool]:
    """The table's columns (header names, or positions 0, 1, ... without a header), the name to
    use in messages, and whether it has a header row."""
    if _base_suffix(path) in (".parquet", ".pq"):
        frame = _reading(str(path), lambda: pd.read_parquet(path))
        return frame if nrows is None else frame.head(nrows), str(path), True
    first = _first_line(path, member)
    kind = _base_suffix(Path(member) if member else path)
    sep = {".tsv": "\t", ".tab": "\t", ".csv": ","}.get(kind) or _sniff_delimiter(first)
    header = _has_header(first.decode("utf-8", errors="replace").split(sep), columns)
    with _opened(path, member) as (handle, where):
        frame = _reading(where, lambda: pd.read_csv(
            handle, sep=sep, header=0 if header else None, skip_blank_lines=False, nrows=nrows
        ))
    return frame, where, header


def _has_header(fields: list[str], columns: Columns | None) -> bool:
    """Whether a first line of `fields` is a header: as `columns` say, else unless its fields are
    all numbers or none is a known user, item or time column name."""
    if columns is not None:
        return not columns.by_position
    fields = [field.strip().strip("\"'") for field in fields]
    if all(_NUMBER.fullmatch(field) for field in fields):
        return False
    return any(_normal(field) in (*_USER_NAMES, *_ITEM_NAMES, *_TIME_NAMES) for field in fields)


def _roles(
    frame: pd.DataFrame, columns: Columns | None, header: bool, where: str
) -> tuple[Any, Any, Any]:
    """The labels of the user, item and time (None: no time) columns of `frame`."""
    labels = list(frame.columns)
    if columns is not None:
        given = columns.given()
        chosen = {role: _given(labels, role, value, where) for role, value in given.items()}
        return chosen["user"], chosen["item"], chosen.get("timestamp")
    if not header:
        return _by_position(frame, where)
    names = [str(label) for label in labels]
    return (
        _spelled(names, _USER_NAMES, "user", where),
        _spelled(names, _ITEM_NAMES, "item", where),
        _spelled(names, _TIME_NAMES, "timestamp", where, required=False),
    )


def _given(labels: list[Any], role: str, value: int | str, where: str) -> Any:
    """The label of the column `columns` names for `role`; DataError when the file has none."""
    if isinstance(value, int):
        if value >= len(labels):
            raise DataError(
                f"{where}: columns {role}={value} is beyond the file's {len(labels)} columns "
                f"(positions count from 0); fix {COLUMNS_HINT}"
            )
        return labels[value]
    names = [str(label) for label in labels]
    if value not in names:
        raise DataError(
            f"{where}: columns {role}={value!r} is not in the header ({', '.join(names)}); "
            f"fix {COLUMNS_HINT}"
        )
    return value


def _by_position(frame: pd.DataFrame, where: str) -> tuple[int, int, int | None]:
    """User, item and time positions of a file without header, by its number of columns."""
    width = frame.shape[1]
    if width < 2:
        raise DataError(
            f"{where}: one column per line; need a user and an item column (name them with "
            f"{COLUMNS_HINT} if the file has a header)"
        )
    if width == 2:
        return 0, 1, None
    if width == 3:
        third = frame[2]
        is_time = not pd.api.types.is_numeric_dtype(third) or third.max() > TIME_LIKE
        return 0, 1, 2 if is_time else None
    return 0, 1, 3


def _spelled(
    names: list[str], spellings: tuple[str, ...], role: str, where: str, required: bool = True
) -> str | None:
    """The first header name that is a known spelling of `role` (DataError if required)."""
    normal = {_normal(name): name for name in reversed(names)}
    found = next((normal[s] for s in spellings if s in normal), None)
    if found is None and required:
        raise DataError(
            f"{where}: no {role} column among {', '.join(names)}; name it with --columns "
            f"{role}=NAME (a grid dataset: columns: {{{role}: NAME}}); known spellings: "
            f"{', '.join(spellings)}"
        )
    return found


def _normal(name: str) -> str:
    """A column name lower-cased without separators (`user_id`, `userId` -> `userid`)."""
    return re.sub(r"[^a-z0-9]", "", name.lower())


def _column_name(label: Any) -> str:
    """How messages name a column: its header name, or its position in a file without header."""
    return f"column {label}" if isinstance(label, int) else repr(label)


def _unix_seconds(values: pd.Series, where: str, column: Any) -> npt.NDArray[np.int64]:
    """(nnz,) timestamps as int64: numbers are kept (rounded), dates become Unix seconds."""
    if pd.api.types.is_numeric_dtype(values):
        numbers = values.to_numpy(dtype=np.float64)
        outside = ~(np.abs(numbers) < MAX_TIME)  # also NaN and infinities
        if outside.any():
            value = numbers[np.argmax(outside)]
            raise DataError(
                f"{where}: {_column_name(column)} holds {value!r}, not a time (a number of "
                f"magnitude below 2**62)"
            )
        return np.rint(numbers).astype(np.int64)
    try:
        dates = pd.to_datetime(values, utc=True)
    except (ValueError, TypeError) as exc:
        raise DataError(
            f"{where}: {_column_name(column)} holds neither numbers nor dates ({exc}); if the "
            f"file's columns are not what they seem, name them with {COLUMNS_HINT}"
        ) from exc
    seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return np.asarray(seconds, dtype=np.int64)


def _row_name(path: Path, index: int, header: bool) -> str:
    """How to point at data row `index` (0-based): a line number for text (header = line 1)."""
    if _base_suffix(path) in (".parquet", ".pq"):
        return f"row {index + 1}"
    return f"line {index + 2 if header else index + 1}"


def _base_suffix(path: Path) -> str:
    """The format suffix, ignoring a compression suffix (`a.tsv.gz` -> `.tsv`)."""
    suffixes = [s.lower() for s in path.suffixes]
    while suffixes and suffixes[-1] in _COMPRESSION:
        suffixes.pop()
    return suffixes[-1] if suffixes else ""


def _sniff_delimiter(first: bytes) -> str:
    """The first of tab, comma, semicolon, pipe that the first line contains (tab if none)."""
    return next((d for d in ("\t", ",", ";", "|") if d.encode() in first), "\t")


def existing_file(path: str | Path) -> Path:
    """`path` as a Path; DataError naming it when it is not an existing regular file (a FIFO or
    a device would block or never end)."""
    path = Path(path)
    if not path.is_file():
        what = (
            "is a folder, not a file" if path.is_dir()
            else "is not a regular file (a FIFO, socket or device)" if path.exists()
            else "does not exist"
        )  # fmt: skip
        raise DataError(f"{path}: {what}")
    return path


_READ_ERRORS = (
    OSError, EOFError, ValueError, ImportError, zlib.error, lzma.LZMAError, zipfile.BadZipFile,
)  # what a corrupt or unparsable file raises while it is read (pandas' errors are ValueErrors)


@contextlib.contextmanager
def _opened(path: Path, member: str | None = None) -> Iterator[tuple[IO[bytes], str]]:
    """`path`'s bytes, decompressed, and the name to use in messages. A zip archive yields its
    `member` (`archive.zip:member`), by default its only file or its ratings file."""
    with contextlib.ExitStack() as stack:
        try:
            if path.suffix.lower() == ".zip":
                archive = stack.enter_context(zipfile.ZipFile(path))
                name = _zip_member(archive, path, member)
                handle, where = stack.enter_context(archive.open(name)), f"{path}:{name}"
            else:
                handle, where = stack.enter_context(_decompressed(path)), str(path)
        except (OSError, ImportError, zipfile.BadZipFile) as exc:
            kind = "zip" if path.suffix.lower() == ".zip" else "data"
            raise DataError(f"{path}: not a readable {kind} file ({exc})") from exc
        yield handle, where


def _decompressed(path: Path) -> IO[bytes]:
    """`path` opened for reading bytes, decompressed by its suffix (.gz, .bz2, .xz, .zst)."""
    suffix = path.suffix.lower()
    if suffix == ".zst":
        import zstandard  # type: ignore[import-not-found]  # optional: only .zst files need it

        return zstandard.open(path, "rb")
    openers: dict[str, Callable[..., Any]] = {
        ".gz": gzip.open, ".bz2": bz2.open, ".xz": lzma.open,
    }  # fmt: skip
    return openers.get(suffix, open)(path, "rb")


def _zip_member(archive: zipfile.ZipFile, path: Path, member: str | None) -> str:
    """The member of `archive` to read: `member`, else its only file, else its ratings file."""
    names = [name for name in archive.namelist() if not name.endswith("/")]
    if member is not None:
        if member not in names:
            held = ", ".join(names[:8]) or "no files"
            raise DataError(f"{path}: the zip has no {member} (it holds {held})")
        return member
    if len(names) == 1:
        return names[0]
    found = [name for name in names if name.rsplit("/", 1)[-1] in RATINGS_MEMBERS]
    if not found:
        raise DataError(
            f"{path}: the zip has no ratings file (expected one of {', '.join(RATINGS_MEMBERS)})"
        )
    return found[0]


def _first_line(path: Path, member: str | None = None) -> bytes:
    """The first non-blank line of `path` (or its zip `member`), without its line break."""
    with _opened(path, member) as (handle, where):
        lines = (line for line in handle if line.strip())
        return _reading(where, lambda: next(lines, b"").rstrip(b"\r\n"))


def _read_bytes(
    path: Path, member: str | None = None, nrows: int | None = None
) -> tuple[bytes, str]:
    """The raw bytes of `path` (or its zip `member`), its first `nrows` lines when given, and the
    name to use in messages."""
    with _opened(path, member) as (handle, where):
        if nrows is None:
            return _reading(where, handle.read), where
        return _reading(where, lambda: b"".join(itertools.islice(handle, nrows))), where


def _reading(where: str, read: Callable[[], T]) -> T:
    """`read()`, with a file that cannot be decompressed or parsed raised as a DataError."""
    try:
        return read()
    except _READ_ERRORS as exc:
        raise DataError(f"{where}: cannot be read ({exc})") from exc


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
    except (ValueError, OverflowError, pd.errors.ParserError, UnicodeDecodeError):
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
