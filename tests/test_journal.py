"""The Optuna journal survives tearing: a torn last record is cut before the next append would
bury it mid-file, a study gets back from the trial records the trials a cut took, and a link
planted as the journal is refused. No Ray (the search itself: tests/test_grid_search.py)."""

from __future__ import annotations

import fcntl
import os
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import optuna
import pytest

from dlmia.errors import OutputError
from tune.journal import FlockLock, open_journal, repair, restore
from tune.trials import TrialRecord

DISTRIBUTIONS = {"lr": optuna.distributions.FloatDistribution(1e-4, 1e-1, log=True)}


def study_with_trials(path: Path, values: list[float]) -> optuna.Study:
    """Study `cell` in the journal at `path`, with one finished trial per value."""
    study = optuna.create_study(storage=open_journal(path), study_name="cell",
                                direction="maximize", load_if_exists=True)
    for value in values:
        study.add_trial(optuna.trial.create_trial(
            params={"lr": 0.01}, distributions=DISTRIBUTIONS, value=value))
    return study


def reload(path: Path) -> optuna.Study:
    return optuna.load_study(study_name="cell", storage=open_journal(path))


def test_a_torn_last_record_is_cut_so_the_journal_stays_usable(tmp_path: Path) -> None:
    path = tmp_path / "optuna.log"
    study_with_trials(path, [0.1, 0.2, 0.3])
    whole = path.read_bytes()
    assert repair(path) == 0 and path.read_bytes() == whole  # intact: untouched
    path.write_bytes(whole[:-37])  # the last record torn, as by a kill mid-append
    assert repair(path) > 0
    assert path.read_bytes().endswith(b"\n") and whole.startswith(path.read_bytes())
    study = reload(path)
    study.add_trial(optuna.trial.create_trial(
        params={"lr": 0.02}, distributions=DISTRIBUTIONS, value=0.9))
    assert [t.value for t in reload(path).trials] == [0.1, 0.2, 0.9]  # readable after appends


def test_a_damaged_middle_is_cut_with_everything_after_it(tmp_path: Path) -> None:
    path = tmp_path / "optuna.log"
    study_with_trials(path, [0.1])
    good = path.read_bytes()
    path.write_bytes(good + b'{"op_code": 6, "trial_id"\n' + good.splitlines(True)[-1])
    assert repair(path) > 0 and path.read_bytes() == good
    assert [t.value for t in reload(path).trials] == [0.1]


def test_a_study_gets_back_the_trials_a_cut_took_from_the_records(tmp_path: Path) -> None:
    study = study_with_trials(tmp_path / "optuna.log", [0.1])
    records = [
        TrialRecord(0, "complete", {"lr": 0.01}, {"objective": 0.1}, np.zeros(2)),
        TrialRecord(1, "pruned", {"lr": 0.03}, {"objective": 0.05, "epoch": 4.0}),
        TrialRecord(3, "complete", {"lr": 0.002}, {"objective": 0.4}, np.zeros(2)),
    ]  # trial 2 was in flight when the run died: no record
    restore(study, records, DISTRIBUTIONS)
    trials = study.get_trials()
    assert [t.number for t in trials] == [0, 1, 2, 3]
    assert [t.state.name for t in trials] == ["COMPLETE", "PRUNED", "FAIL", "COMPLETE"]
    assert trials[3].params == {"lr": 0.002} and trials[3].value == 0.4
    assert trials[1].user_attrs == {"objective": 0.05, "epoch": 4.0}
    restore(study, records, DISTRIBUTIONS)  # nothing lost: nothing added
    assert len(study.get_trials()) == 4


HOLD = (  # a process holding the journal's append lock, as FlockLock takes it
    "import fcntl, os, sys, time\n"
    "fcntl.flock(os.open(sys.argv[1], os.O_WRONLY), fcntl.LOCK_EX)\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


def held(path: Path) -> bool:
    """Whether another open file holds the flock on `path`."""
    fd = os.open(path, os.O_WRONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        return True
    finally:
        os.close(fd)  # (drops the lock if this took it)
    return False


def test_an_append_lock_dies_with_its_holder(tmp_path: Path) -> None:
    path = tmp_path / "optuna.log"
    open_journal(path)
    lock = FlockLock(path)
    assert lock.acquire() and held(path)
    lock.release()
    assert not held(path)
    holder = subprocess.Popen([sys.executable, "-c", HOLD, str(path)], stdout=subprocess.PIPE,
                              text=True)
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        assert held(path)
    finally:
        holder.kill()  # as a run killed mid-append
        holder.wait(timeout=30)
    started = time.monotonic()
    assert lock.acquire() and time.monotonic() - started < 5  # nothing left to wait out
    lock.release()


@pytest.mark.parametrize("kind", ["link", "folder", "FIFO"])
def test_a_journal_that_is_no_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    path, victim = tmp_path / "optuna.log", tmp_path / "victim.txt"
    victim.write_text("precious")
    if kind == "link":
        path.symlink_to(victim)
    else:
        path.mkdir() if kind == "folder" else os.mkfifo(path)
    for use in (repair, open_journal):
        with pytest.raises(OutputError, match=f"{path} is a"):
            use(path)
    assert victim.read_text() == "precious"


@pytest.mark.parametrize("damage", ["garbage in the middle", "a link"])
def test_analysis_reads_a_damaged_journal_without_a_traceback(tmp_path: Path, damage: str) -> None:
    from analysis.search import param_importances

    path = tmp_path / "optuna.log"
    study_with_trials(path, [0.1, 0.2, 0.3, 0.4])
    good = path.read_bytes()
    if damage == "garbage in the middle":  # what appending after a torn record made
        path.write_bytes(good[:-37] + good)
    else:
        path.rename(tmp_path / "elsewhere.log")
        path.symlink_to(tmp_path / "elsewhere.log")
    assert param_importances(path, "cell") == {}
