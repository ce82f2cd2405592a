"""SIGTERM handled like SIGINT: a run stopped by `kill` (or a scheduler's stop) unwinds as after
Ctrl-C, releasing its lock and its Ray, resumable, instead of dying in a library's handler (Ray's
exits mid-call and leaves a crash dump, exit code 134).
"""

from __future__ import annotations

import signal
import threading
from types import FrameType

_received: list[int] = []  # SIGTERMs this process has received


class Terminated(KeyboardInterrupt):
    """The process received SIGTERM; handled wherever Ctrl-C is (exit code 143)."""


def terminated() -> bool:
    """Whether this process has received SIGTERM: an interrupt seen after it is its doing,
    whatever a library caught and re-raised it as (ray.wait raises a plain KeyboardInterrupt)."""
    return bool(_received)


def raise_on_sigterm() -> None:
    """Make SIGTERM raise `Terminated` in the main thread. Call again after a library installs
    its own handler (`ray.init` does); a no-op outside the main thread, which cannot set one."""
    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, _terminate)


def _terminate(signum: int, frame: FrameType | None) -> None:
    _received.append(signum)
    raise Terminated(f"signal {signum}")
