"""Downloading the paper's public datasets (`dlmia data fetch NAME --to DIR`), only on request.

A download goes to a temporary file in the destination folder and is checked before it is
renamed into place: its size, its SHA-256 (and MD5 where the publisher gives one). Redirects are
followed only to the same host, never from https down to http, at most `MAX_REDIRECTS` times; a
server that sends more bytes than the file should have is cut off. A failed, truncated or
corrupt download leaves nothing behind. The file lands where `load_dataset` looks for it:
`DIR/NAME/<file name>`.

Digests: the MovieLens MD5s are the publisher's (files.grouplens.org), and so is ML-1M's size;
the sizes of ML-100K and ML-20M are not pinned (a download is then checked against its
Content-Length). No SHA-256 is pinned for them, nor any digest for the Amazon 2014 files (the
publishers give none, and this project was built offline, where they could not be measured): for
those, `fetch` prints the SHA-256 it received, and `--sha256` (the `sha256` argument) pins the
one a user trusts.
"""

from __future__ import annotations

import hashlib
import http.client
import os
import sys
import tempfile
import urllib.error
import urllib.request
from dataclasses import dataclass, replace
from http.client import HTTPMessage
from pathlib import Path
from typing import IO, TYPE_CHECKING, BinaryIO
from urllib.parse import urlsplit

from dlmia.errors import ConfigError, DataError

if TYPE_CHECKING:
    from rich.progress import Progress, TaskID

_AMAZON_2014 = "https://snap.stanford.edu/data/amazon/productGraph/categoryFiles"
_CHUNK = 1 << 20
MAX_REDIRECTS = 5
MAX_UNKNOWN_SIZE = 4 << 30  # a file of unknown size is cut off above 4 GiB


@dataclass(frozen=True)
class RemoteFile:
    """A downloadable data file and what it must look like (None: not known)."""

    url: str  # where the publisher serves it (https)
    size: int | None  # size in bytes
    sha256: str | None  # SHA-256 hex digest
    md5: str | None = None  # the publisher's MD5 hex digest, where it gives one

    @property
    def filename(self) -> str:
        return self.url.rsplit("/", 1)[-1]


REMOTE_FILES: dict[str, RemoteFile] = {
    "ml-1m": RemoteFile(
        "https://files.grouplens.org/datasets/movielens/ml-1m.zip",
        size=5917549,
        sha256=None,
        md5="c4d9eecfca2ab87c1945afe126590906",
    ),
    "ml-100k": RemoteFile(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        size=None,
        sha256=None,
        md5="0e33842e24a9c977be4e0107933c0723",
    ),
    "ml-20m": RemoteFile(
        "https://files.grouplens.org/datasets/movielens/ml-20m.zip",
        size=None,
        sha256=None,
        md5="cd245b17a1ae2cc31bb14903e1204af3",
    ),
    # The McAuley lab's 2014 "ratings only" files (jmcauley.ucsd.edu/data/amazon/links.html).
    "amazon-beauty": RemoteFile(f"{_AMAZON_2014}/ratings_Beauty.csv", None, None),
    "amazon-digital-music": RemoteFile(f"{_AMAZON_2014}/ratings_Digital_Music.csv", None, None),
}


def destination(name: str, to_dir: str | Path) -> Path:
    """Where `fetch(name, to_dir)` puts the file: `to_dir/name/<file name>`."""
    return Path(to_dir) / name / _remote(name).filename


def fetch(
    name: str, to_dir: str | Path, *, base_url: str | None = None, progress: bool = True,
    sha256: str | None = None,
) -> Path:
    """Download dataset `name` into the data root `to_dir` and return the file's path.

    A file already there that passes the checks is kept and not downloaded again.

    Args:
        name: a key of `REMOTE_FILES`.
        to_dir: the data root; the file goes to `to_dir/name/`.
        base_url: a folder URL serving the file under its usual name, in place of the
            publisher's (a mirror; tests use a local server).
        progress: show a progress bar on stderr (rich on a terminal, plain lines otherwise).
        sha256: the SHA-256 the file must have (over the registry's, where it has one).

    Raises:
        ConfigError: `name` cannot be fetched, or `sha256` is not a hex digest.
        DataError: the download failed or the file failed a check (nothing is left behind).
    """
    remote = _remote(name)
    if sha256 is not None:
        remote = replace(remote, sha256=_hex_digest(sha256))
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
            _download(url, out, remote.size, remote.filename if progress else None)
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
    if remote.sha256 is None:
        _say(True, f"{dest}: no SHA-256 is pinned for {name}; received {_digest(dest, 'sha256')}"
                   f" (compare it with a trusted copy; --sha256 pins it)")
    _say(progress, f"saved {dest}")
    return dest


def _remote(name: str) -> RemoteFile:
    if name not in REMOTE_FILES:
        known = ", ".join(REMOTE_FILES)
        raise ConfigError(f"cannot fetch {name!r}: fetchable datasets are {known}")
    return REMOTE_FILES[name]


def _hex_digest(text: str) -> str:
    digest = text.strip().lower()
    if len(digest) != 64 or any(c not in "0123456789abcdef" for c in digest):
        raise ConfigError(f"--sha256 {text!r}: expected 64 hexadecimal digits")
    return digest


class SameHostRedirects(urllib.request.HTTPRedirectHandler):
    """Follows a redirect only to the same host, never from https to http, and at most
    `MAX_REDIRECTS` times; anything else ends the download with a DataError."""

    max_redirections = MAX_REDIRECTS

    def redirect_request(
        self, req: urllib.request.Request, fp: IO[bytes], code: int, msg: str,
        headers: HTTPMessage, newurl: str,
    ) -> urllib.request.Request | None:
        check_redirect(req.full_url, newurl)
        return super().redirect_request(req, fp, code, msg, headers, newurl)


def check_redirect(old: str, new: str) -> None:
    """Raise DataError unless a redirect from `old` to `new` stays on the host, unweakened."""
    before, after = urlsplit(old), urlsplit(new)
    if after.hostname != before.hostname:
        raise DataError(f"{old} redirects to another host ({after.hostname}); not followed")
    if before.scheme == "https" and after.scheme != "https":
        raise DataError(f"{old} redirects from https to {after.scheme}; not followed")


def _download(url: str, out: BinaryIO, size: int | None, label: str | None) -> None:
    """Stream `url` into `out`; DataError when it cannot be fetched, arrives truncated, or
    outgrows the expected `size` (or its Content-Length)."""
    opener = urllib.request.build_opener(SameHostRedirects)
    try:
        with opener.open(url, timeout=60) as response:
            announced = int(response.headers.get("Content-Length") or 0) or None
            limit = size or announced or MAX_UNKNOWN_SIZE
            bar = _Progress(label, size or announced) if label is not None else None
            received = 0
            try:
                while chunk := response.read(_CHUNK):
                    received += len(chunk)
                    if received > limit:
                        raise DataError(f"could not download {url}: more than the {limit} "
                                        "bytes expected; cut off")
                    out.write(chunk)
                    if bar is not None:
                        bar.update(received)
            finally:
                if bar is not None:
                    bar.close()
    except (urllib.error.URLError, http.client.HTTPException, OSError, ValueError) as exc:
        raise DataError(f"could not download {url}: {exc}") from exc
    if announced is not None and received != announced:
        raise DataError(f"could not download {url}: got {received} of {announced} bytes")


def _problem(path: Path, remote: RemoteFile) -> str | None:
    """Why `path` is not the expected file, or None when it passes the known checks."""
    size = path.stat().st_size
    if remote.size is not None and size != remote.size:
        return f"size is {size} bytes, expected {remote.size}"
    for kind, expected in (("sha256", remote.sha256), ("md5", remote.md5)):
        if expected is not None and (actual := _digest(path, kind)) != expected:
            return f"{kind.upper()} is {actual}, expected {expected}"
    return None


def _digest(path: Path, kind: str) -> str:
    digest = hashlib.new(kind, usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(_CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


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
