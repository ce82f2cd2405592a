"""The grid's Optuna journal, `OUT/optuna.log`: one file, a study per searched cell.

Optuna appends each operation as one JSON line. A driver killed mid-append leaves a torn last
line; Optuna's reader skips a last line that lacks its line break, but the next append lands
right after the fragment and makes it an undecodable line in the middle, which breaks every later
read of the file (JSONDecodeError) and so every search in the folder. `repair` keeps the longest
run of whole, decodable lines and cuts the rest, with a warning, before a run's first search
opens the file (the run holds the folder's lock, so nothing else writes it then); `restore`
gives a study back, from the project's own trial records (tune.trials), any trial the cut took,
so trial numbers and records stay aligned and a resumed search samples knowing them.

The journal is the one file of an output folder written in place rather than by an atomic
rename: it is opened without following links and only as a regular file
(`dlmia.io.open_regular`), and appends hold an flock on it (`FlockLock`), which the system drops
when its holder dies: a run killed mid-append leaves no stale lock for the next to wait out.
"""

from __future__ import annotations

import fcntl
import json
import logging
import os
from pathlib import Path
from typing import Any, cast

import optuna
from optuna.trial import TrialState

from dlmia.io import open_regular
from tune.trials import TrialRecord

log = logging.getLogger(__name__)

STATES = {"complete": TrialState.COMPLETE, "pruned": TrialState.PRUNED, "failed": TrialState.FAIL}


def repair(path: Path) -> int:
    """Cut the journal at `path` after its last whole, decodable line; the bytes cut (0 when it
    is intact or absent).

    Raises:
        OutputError: `path` is a link, a folder or another non-regular file.
    """
    if not os.path.lexists(path):
        return 0
    with open(open_regular(path, os.O_RDWR), "r+b") as handle:
        data = handle.read()
        whole = 0
        while (end := data.find(b"\n", whole)) != -1:
            try:
                json.loads(data[whole:end])
            except ValueError:
                break
            whole = end + 1
        if whole < len(data):
            handle.truncate(whole)
            log.warning(
                "%s: cut %d bytes after its last whole record (a run killed while writing it); "
                "the searches resume from their trial records", path, len(data) - whole,
            )
    return len(data) - whole


def open_journal(path: Path) -> optuna.storages.BaseStorage:
    """The journal file at `path` (created when absent) as an Optuna storage.

    Raises:
        OutputError: `path` is a link, a folder or another non-regular file.
    """
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    path.parent.mkdir(parents=True, exist_ok=True)
    os.close(open_regular(path, os.O_WRONLY | os.O_CREAT | os.O_APPEND))
    return JournalStorage(JournalFileBackend(str(path), lock_obj=cast(Any, FlockLock(path))))


class FlockLock:
    """The lock Optuna takes around each append to the journal (`JournalFileBackend`'s
    `lock_obj`, of which it calls `acquire` and `release` only): an flock on the journal itself.
    Optuna's own locks are files, which a process killed while holding one leaves behind, and
    the next append waits 30 s before it breaks them; an flock goes with its holder."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.fd: int | None = None

    def acquire(self) -> bool:
        """Wait for the journal's exclusive lock (re-checking that it is no planted link)."""
        fd = open_regular(self.path, os.O_WRONLY | os.O_APPEND)
        fcntl.flock(fd, fcntl.LOCK_EX)
        self.fd = fd
        return True

    def release(self) -> None:
        """Give the lock up (closing the file drops it)."""
        if self.fd is not None:
            os.close(self.fd)
            self.fd = None


def restore(
    study: optuna.Study, records: list[TrialRecord], distributions: dict[str, Any]
) -> None:
    """Add to `study` every trial numbered past its last one that `records` hold (a journal cut
    by `repair` lost them), in number order, so each gets its recorded number; a number with no
    record (a trial in flight when the run died) becomes a failed trial. `distributions` are the
    searched settings' Optuna distributions."""
    recorded = {record.number: record for record in records}
    first = len(study.get_trials(deepcopy=False))
    for number in range(first, max(recorded, default=-1) + 1):
        study.add_trial(frozen(recorded.get(number), distributions))


def frozen(record: TrialRecord | None, distributions: dict[str, Any]) -> optuna.trial.FrozenTrial:
    """`record` as a finished Optuna trial (its criteria as user attributes); a failed trial
    without parameters when there is no record, or its parameters no longer fit the space."""
    if record is not None:
        try:
            return optuna.trial.create_trial(
                params=record.params,
                distributions={name: distributions[name] for name in record.params},
                value=record.objective if record.state == "complete" else None,
                state=STATES[record.state],
                user_attrs=dict(record.metrics),
            )
        except (KeyError, ValueError):
            pass
    return optuna.trial.create_trial(state=TrialState.FAIL)
