"""Downloading the paper's public datasets (`dlmia data fetch NAME --to DIR`), only on request.

A download goes to a temporary file in the destination folder, is checked (size, and MD5 where
the publisher gives one) and only then renamed into place, so a failed or corrupt download leaves
nothing behind. The file lands where `load_dataset` looks for it: `DIR/NAME/<file name>`.
"""

from __future__ import annotations

import hashlib
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO

from dlmia.errors import ConfigError, DataError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_AMAZON_2014 = "http://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
_CHUNK = 1 << 20


@dataclass(frozen=True)
class RemoteFile:
    """A downloadable data file and what it must look like."""

    url: str  # where the publisher serves it
    md5: str | None  # published MD5 hex digest; None when the publisher gives none
    size: int | None  # size in bytes; None when unknown

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


REMOTE_FILES: dict[str, RemoteFile] = {
    "ml-1m": RemoteFile(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        "c4d9eecfca2ab87c1945afe126590906",
        5917549,
    ),
    # The McAuley lab's 2014 "ratings only" files (jmcauley.ucsd.edu/data/amazon/links.html).
    "amazon-beauty": RemoteFile(f"{_AMAZON_2014}/ratings_Beauty.csv", None, None),
    "amazon-digital-music": RemoteFile(f"{_AMAZON_2014}/ratings_Digital_Music.csv", None, None),
}


def destination(name: str, to_dir: str | Path) -> Path:
    """Where `fetch(name, to_dir)` puts the file: `to_dir/name/<file name>`."""
    return Path(to_dir) / name / _remote(name).filename


def fetch(
    name: str, to_dir: str | Path, *, base_url: str | None = None, progress: bool = True
) -> Path:
    """Download dataset `name` into the data root `to_dir` and return the file's path.

    A file already there that passes the checks is kept and not downloaded again.

    Args:
        name: a key of `REMOTE_FILES`.
        to_dir: the data root; the file goes to `to_dir/name/`.
        base_url: a folder URL serving the file under its usual name, in place of the
            publisher's (a mirror; tests use a local server).
        progress: show a progress bar on stderr (rich on a terminal, plain lines otherwise).

    Raises:
        ConfigError: `name` cannot be fetched.
        DataError: the download failed or the file failed a check (nothing is left behind).
    """
    remote = _remote(name)
    dest = destination(name, to_dir)
    if dest.is_file() and _problem(dest, remote) is None:
        _say(progress, f"{dest} is already there and passes the checks")
        return dest
    url = remote.url if base_url is None else f"{base_url.rstrip('/')}/{remote.filename}"
    created = [p for p in (dest.parent.parent, dest.parent) if not p.exists()]
    dest.parent.mkdir(parents=True, exist_ok=True)
    handle, tmp = tempfile.mkstemp(dir=dest.parent, prefix=f".{remote.filename}.", suffix=".part")
    try:
        with os.fdopen(handle, "wb") as out:
            _download(url, out, remote.filename if progress else None)
        problem = _problem(Path(tmp), remote)
        if problem is not None:
            raise DataError(
                f"{url}: {problem}; nothing was saved. Try again, or download it by hand to {dest}"
            )
        os.chmod(tmp, 0o644)  # mkstemp makes it private; a data file is not
        os.replace(tmp, dest)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        for folder in reversed(created):
            if not any(folder.iterdir()):
                folder.rmdir()
        raise
    _say(progress, f"saved {dest}")
    return dest


def _remote(name: str) -> RemoteFile:
    if name not in REMOTE_FILES:
        known = ", ".join(REMOTE_FILES)
        raise ConfigError(f"cannot fetch {name!r}: fetchable datasets are {known}")
    return REMOTE_FILES[name]


def _download(url: str, out: BinaryIO, label: str | None) -> None:
    """Stream `url` into `out`; DataError when it cannot be fetched or arrives truncated."""
    try:
        with urllib.request.urlopen(url, timeout=60) as response:
            total = int(response.headers.get("Content-Length") or 0) or None
            bar = _Progress(label, total) if label is not None else None
            received = 0
            try:
                while chunk := response.read(_CHUNK):
                    out.write(chunk)
                    received += len(chunk)
                    if bar is not None:
                        bar.update(received)
            finally:
                if bar is not None:
                    bar.close()
    except (urllib.error.URLError, OSError, ValueError) as exc:
        raise DataError(f"could not download {url}: {exc}") from exc
    if total is not None and received != total:
        raise DataError(f"could not download {url}: got {received} of {total} bytes")


def _problem(path: Path, remote: RemoteFile) -> str | None:
    """Why `path` is not the expected file, or None when it passes the known checks."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"size is {size} bytes, expected {remote.size}"
    if remote.md5 is not None:
        digest = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as handle:
            while chunk := handle.read(_CHUNK):
                digest.update(chunk)
        if digest.hexdigest() != remote.md5:
            return f"MD5 is {digest.hexdigest()}, expected {remote.md5}"
    return None


def _say(enabled: bool, message: str) -> None:
    if enabled:
        print(message, file=sys.stderr)


class _Progress:
    """A download progress bar: rich's on a terminal, a line per 10% (or per 10 MB) otherwise."""

    def __init__(self, label: str, total: int | None) -> None:
        self.label, self.total, self.shown = label, total, 0
        self.rich: Progress | None = None
        self.task: TaskID | None = None
        if sys.stderr.isatty():
            from rich.console import Console  # imported here: only a terminal needs rich
            from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

            columns = (*Progress.get_default_columns(), DownloadColumn(), TransferSpeedColumn())
            self.rich = Progress(*columns, console=Console(stderr=True))
            self.rich.start()
            self.task = self.rich.add_task(f"downloading {label}", total=total)

    def update(self, received: int) -> None:
        if self.rich is not None and self.task is not None:
            self.rich.update(self.task, completed=received)
            return
        step = received * 10 // self.total if self.total else received // (10 * _CHUNK)
        if step > self.shown:
            self.shown = step
            of = f" of {self.total / 1e6:.1f}" if self.total else ""
            percent = f"{100 * received // self.total}% " if self.total else ""
            print(f"{self.label}: {percent}({received / 1e6:.1f}{of} MB)", file=sys.stderr)

    def close(self) -> None:
        if self.rich is not None:
            self.rich.stop()
