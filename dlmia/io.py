"""Atomic file output: write to a temporary file beside the target, then rename.

A reader (or a resumed run) therefore sees either the whole file or none of it.
"""

from __future__ import annotations

import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pandas as pd

from dlmia.errors import ConfigError


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


def check_writable(folder: str | Path, option: str) -> Path:
    """`folder` when files can be written in it (it, or the nearest folder above it that exists,
    takes a probe file), so a run refuses a bad output folder before any work, not after.

    Raises:
        ConfigError: it is a file, or the probe cannot be written (permissions, read-only or
            immutable file system), naming `option`.
    """
    folder = Path(folder)
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
