"""Files in and out with their limits: atomic writes (a temporary file beside the target, then a
rename), so a reader (or a resumed run) sees either the whole file or none of it; for the few
files written in place (the lock, the Optuna journal), opening that follows no link and takes
regular files only, so a link planted in an output folder cannot redirect a write; reading an
input (a grid file) only from a regular file of bounded size; and a check that an output folder
takes writes before a run starts.
"""

from __future__ import annotations

import errno
import json
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from dlmia.errors import ConfigError, OutputError


def atomic_write(path: str | Path, write: Callable[[Path], object]) -> Path:
    """Call `write(tmp_path)` then rename the temporary file to `path` (same folder, same
    filesystem)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        write(tmp)
        os.chmod(tmp, 0o666 & ~_umask())  # mkstemp creates 0600; give the file the usual mode
        os.replace(tmp, path)
    except BaseException:
        tmp.unlink(missing_ok=True)
        raise
    return path


def open_regular(path: str | Path, flags: int, mode: int = 0o644) -> int:
    """`os.open(path, flags, mode)` for a file written in place: no symbolic link is followed,
    and only a regular file is opened (a FIFO or a device would block or never end).

    Raises:
        OutputError: `path` is a link, a folder or another non-regular file, naming it.
    """
    flags |= os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC
    try:
        fd = os.open(path, flags, mode)
    except OSError as exc:
        if exc.errno not in (errno.ELOOP, errno.EISDIR, errno.ENXIO):
            raise
        raise not_regular(path) from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise not_regular(path)
    return fd


def not_regular(path: str | Path) -> OutputError:
    """The error for a path dlmia writes in place that is a link, or not what it writes there
    (a folder, a FIFO where a file goes)."""
    mode = os.lstat(path).st_mode
    kinds = {stat.S_ISLNK: "a symbolic link", stat.S_ISDIR: "a folder", stat.S_ISFIFO: "a FIFO"}
    kind = next((name for test, name in kinds.items() if test(mode)), "not a regular file")
    return OutputError(
        f"{path} is {kind}; dlmia writes there in place and follows no link: remove it, or "
        "write to another folder"
    )


def read_regular(path: str | Path, limit: int, what: str) -> bytes:
    """The bytes of `path`, a regular file (links followed) of at most `limit` bytes: a FIFO or
    a device (`/dev/zero`) would block or never end, and a huge file exhaust memory.

    Raises:
        ConfigError: it cannot be read, is no regular file or is larger, naming it as `what`.
    """
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | os.O_CLOEXEC)
    except OSError as exc:
        raise ConfigError(f"{path}: cannot read {what} ({exc.strerror})") from None
    if not stat.S_ISREG(os.fstat(fd).st_mode):
        os.close(fd)
        raise ConfigError(f"{path}: is not a regular file; a {what} must be one")
    with os.fdopen(fd, "rb") as handle:
        data = handle.read(limit + 1)
    if len(data) > limit:
        raise ConfigError(f"{path}: a {what} holds at most {limit:,} bytes")
    return data


def check_writable(folder: str | Path, option: str) -> Path:
    """`folder` when files can be written in it (it, or the nearest folder above it that exists,
    takes a probe file), so a run refuses a bad output folder before any work, not after.

    Raises:
        ConfigError: it is a file or a dangling link, or the probe cannot be written
            (permissions, read-only or immutable file system), naming `option`.
    """
    folder = Path(folder)
    if folder.is_symlink() and not folder.exists():
        raise ConfigError(
            f"{option} {folder}: is a link to {os.readlink(folder)}, which does not exist"
        )
    if folder.exists() and not folder.is_dir():
        raise ConfigError(f"{option} {folder}: is a file, not a folder")
    existing = next(p for p in (folder, *folder.absolute().parents) if p.exists())
    if not existing.is_dir():
        raise ConfigError(f"{option} {folder}: {existing} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".dlmia-probe.", dir=existing)
    except OSError as exc:
        raise ConfigError(
            f"{option} {folder}: cannot write in {existing} ({exc.strerror})"
        ) from None
    os.close(fd)
    os.unlink(probe)
    return folder


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_parquet(frame: pd.DataFrame, path: str | Path) -> Path:
    """Write `frame` to parquet atomically."""
    return atomic_write(path, lambda tmp: frame.to_parquet(tmp, index=False))


def write_json(data: Any, path: str | Path) -> Path:
    """Write `data` as indented JSON atomically."""
    return atomic_write(path, lambda tmp: tmp.write_text(json.dumps(data, indent=2, default=str)))


def json_safe(value: Any) -> Any:
    """`value` as plain JSON data: numpy scalars become Python numbers, anything else unknown
    its text."""
    def scalar(item: Any) -> Any:
        return item.item() if hasattr(item, "item") else str(item)

    return json.loads(json.dumps(value, default=scalar))
