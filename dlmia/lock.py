"""One writer per output folder: an exclusive lock that a run holds for as long as it lives.

`FolderLock(folder)` takes an `fcntl.flock` on `folder/.dlmia.lock` and writes who holds it
(host, PID, start time, command line) into that file; a second run on the folder fails at once
with a LockedError that names the holder. The lock belongs to the open file, so the operating
system drops it when the holder exits, even by SIGKILL or a crash: the next run takes over the
file such a run leaves behind, with a warning that names it. A clean release removes the file,
and the folder too when the lock made it and nothing else was written there.

The lock file is opened without following links and only as a regular file (dlmia.io's
`open_regular`): a link planted as the lock would otherwise have the run write through it. What
a lock file says about its holder is printed with its control characters escaped.

flock locks are advisory: they keep dlmia runs apart, not other programs. Linux honours them
across machines on NFS (as byte-range locks), so a shared output folder is covered too.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import json
import logging
import os
import shlex
import socket
import sys
from pathlib import Path
from typing import Any

from dlmia.errors import LockedError, printable
from dlmia.io import open_regular

log = logging.getLogger(__name__)

LOCK_NAME = ".dlmia.lock"


class FolderLock:
    """An exclusive lock on `folder` (created when absent), used as a context manager."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)
        self.path = self.folder / LOCK_NAME
        self._fd: int | None = None
        self._made_folder = False

    def __enter__(self) -> FolderLock:
        self.acquire()
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.release()

    def acquire(self) -> None:
        """Take the lock, or raise LockedError naming the run that holds it (OutputError when
        the lock's path is a link, a folder or another non-regular file)."""
        self._made_folder = not self.folder.exists()
        fd = self._open_locked()
        left = read_holder(fd)
        if left:
            log.warning(
                "%s: taking over the lock of a run that ended without releasing it (killed or "
                "crashed): %s", self.folder, describe(left)
            )
        body = json.dumps(holder()).encode()
        os.ftruncate(fd, 0)
        os.pwrite(fd, body, 0)
        self._fd = fd

    def release(self) -> None:
        """Remove the lock file (and the folder, if made here and left empty), then give the
        lock up: no one takes over the body of a released lock."""
        if self._fd is None:
            return
        self.path.unlink(missing_ok=True)
        if self._made_folder:
            with contextlib.suppress(OSError):  # not empty: the run wrote there
                self.folder.rmdir()
        os.close(self._fd)
        self._fd = None

    def _open_locked(self) -> int:
        """The lock file, open and locked here. Tries again when the holder removed the file
        between this open and this lock (the lock would then be on a file nobody sees)."""
        while True:
            self.folder.mkdir(parents=True, exist_ok=True)
            try:
                fd = open_regular(self.path, os.O_RDWR | os.O_CREAT)
            except FileNotFoundError:  # a holder that had made the folder just removed it
                continue
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held_by = read_holder(fd)
                os.close(fd)
                raise LockedError(
                    f"{self.folder} is in use by another dlmia run ({describe(held_by)}); wait "
                    "for it to end, or write to another folder"
                ) from None
            if is_file_at(fd, self.path):
                return fd
            os.close(fd)


def holder() -> dict[str, Any]:
    """Who takes a lock: this host, this process, now, and the command line."""
    return {
        "host": socket.gethostname(),
        "pid": os.getpid(),
        "since": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "command": shlex.join(sys.argv),
    }


def describe(body: dict[str, Any]) -> str:
    """A lock holder in words, safe to print (a lock file may hold anything); an empty body is
    a run that has not written its details yet."""
    if not body:
        return "a run that is starting"
    return printable(
        f"PID {body.get('pid')} on host {body.get('host')} since {body.get('since')}, "
        f"command: {body.get('command')}"
    )


def read_holder(fd: int) -> dict[str, Any]:
    """The holder written in an open lock file ({} when empty or unreadable)."""
    try:
        body = json.loads(os.pread(fd, 1 << 16, 0) or b"{}")
    except ValueError:
        return {}
    return body if isinstance(body, dict) else {}


def is_file_at(fd: int, path: Path) -> bool:
    """Whether open file `fd` is the file at `path` (not one removed or replaced since it was
    opened)."""
    try:
        return os.path.samestat(os.fstat(fd), os.lstat(path))
    except FileNotFoundError:
        return False
