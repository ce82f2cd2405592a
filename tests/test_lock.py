"""One writer per output folder (dlmia.lock): a second run fails at once and names the first.

The lock itself is tested in this process and with a SIGKILLed holder; the grid runner with two
real `dlmia grid run` drivers on one --out (the first paused while the second tries, so the two
surely overlap, then ended by SIGTERM, which it handles as Ctrl-C: lock released, exit code 143,
the rerun resumes), and `dlmia cell --out` on a locked folder.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
import yaml

from dlmia.cli import main as cli_main
from dlmia.errors import LockedError, OutputError
from dlmia.lock import LOCK_NAME, FolderLock, describe
from tests.test_grid_runner import QUIET, results, tiny_grid
from tune.grid import load_grid
from tune.plan import expand
from tune.runner import run_grid

HOLD = (
    "import sys, time\n"
    "from dlmia.lock import FolderLock\n"
    "FolderLock(sys.argv[1]).acquire()\n"
    "print('locked', flush=True)\n"
    "time.sleep(600)\n"
)


def test_a_second_lock_fails_naming_the_holder_until_the_first_is_released(
    tmp_path: Path,
) -> None:
    folder = tmp_path / "out"
    with FolderLock(folder):
        assert (folder / LOCK_NAME).is_file()
        with pytest.raises(LockedError) as refused:
            FolderLock(folder).acquire()
        message = str(refused.value)
        assert str(folder) in message and f"PID {os.getpid()}" in message
        assert f"on host {socket.gethostname()} since 20" in message and "command: " in message
    assert not folder.exists()  # released; the folder it made, left empty, removed
    with FolderLock(folder):
        (folder / "result.parquet").touch()
    assert list(folder.iterdir()) == [folder / "result.parquet"]


def test_the_lock_of_a_killed_holder_is_taken_over_with_a_warning(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    folder = tmp_path / "out"
    holder = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(folder)], stdout=subprocess.PIPE, text=True
    )
    try:
        assert holder.stdout is not None and holder.stdout.readline().strip() == "locked"
        with pytest.raises(LockedError, match=f"PID {holder.pid} "):
            FolderLock(folder).acquire()
    finally:
        holder.kill()
        holder.wait(timeout=30)
    assert (folder / LOCK_NAME).is_file()  # a SIGKILLed holder leaves its file behind
    with caplog.at_level(logging.WARNING, logger="dlmia.lock"), FolderLock(folder):
        assert json.loads((folder / LOCK_NAME).read_text())["pid"] == os.getpid()
    assert f"ended without releasing it (killed or crashed): PID {holder.pid} " in caplog.text


@pytest.mark.parametrize("target", ["victim.txt", "missing.txt"])
def test_a_link_planted_as_the_lock_is_refused_and_nothing_is_written_through_it(
    tmp_path: Path, target: str
) -> None:
    folder, victim = tmp_path / "out", tmp_path / "victim.txt"
    victim.write_text("precious")
    folder.mkdir()
    (folder / LOCK_NAME).symlink_to(tmp_path / target)
    with pytest.raises(OutputError, match=f"{folder / LOCK_NAME} is a symbolic link"):
        FolderLock(folder).acquire()
    assert victim.read_text() == "precious" and not (tmp_path / "missing.txt").exists()
    assert (folder / LOCK_NAME).is_symlink()  # left for the user to look at


@pytest.mark.parametrize("kind", ["folder", "FIFO"])
def test_a_lock_that_is_no_regular_file_is_refused(tmp_path: Path, kind: str) -> None:
    lock = tmp_path / LOCK_NAME
    lock.mkdir() if kind == "folder" else os.mkfifo(lock)
    with pytest.raises(OutputError, match=f"{lock} is a {kind}"):
        FolderLock(tmp_path).acquire()


def test_a_lock_body_is_described_without_terminal_escapes() -> None:
    text = describe({"pid": 1, "host": "h\x1b]0;owned\x07", "command": "\x1b[2Jrm -rf /"})
    assert "\x1b" not in text and "\x07" not in text and "\\x1b[2Jrm -rf /" in text


def test_cell_command_refuses_a_locked_out_folder(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    with FolderLock(tmp_path):
        code = cli_main([
            "-q", "cell", "--shadow", "synthetic:popularity", "--target", "synthetic:popularity",
            "--k", "10", "--device", "cpu", "--out", str(tmp_path),
        ])
    assert code == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [error[-1]] and error[-1].startswith("dlmia: error: ")
    assert f"{tmp_path} is in use by another dlmia run (PID {os.getpid()} " in error[-1]
    assert not (tmp_path / "result.parquet").exists()


def wait_stopped(pid: int, timeout: float = 30.0) -> None:
    """Wait until process `pid` is in the stopped state (T in /proc/PID/stat)."""
    deadline = time.monotonic() + timeout
    while Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] != "T":
        assert time.monotonic() < deadline, f"process {pid} did not stop"
        time.sleep(0.05)


@pytest.mark.slow
def test_a_second_grid_driver_fails_and_the_first_ends_resumably_on_sigterm(
    tmp_path: Path,
) -> None:
    grid, out = tmp_path / "grid.yaml", tmp_path / "out"
    raw = tiny_grid("locked", max_concurrent_cells=1)
    raw["seeds"] = [0, 1, 2]  # 12 cells one at a time: still mid-grid when paused and stopped
    grid.write_text(yaml.safe_dump(raw))
    command = [sys.executable, "-m", "dlmia.cli", "-q", "grid", "run", str(grid)]
    command += ["--out", str(out)]
    log = tmp_path / "first.log"
    with log.open("w") as stream:
        first = subprocess.Popen(command, start_new_session=True, stdout=stream, stderr=stream)
    try:
        wait_for(lambda: any((out / "results").glob("*.parquet")), first)
        os.kill(first.pid, signal.SIGSTOP)  # paused mid-run, holding the lock
        wait_stopped(first.pid)  # SIGSTOP lands asynchronously: a write may still be finishing
        before = files(out)
        second = subprocess.run(command, capture_output=True, text=True, timeout=300)
        after = files(out)  # before the first driver resumes and writes again
        os.kill(first.pid, signal.SIGCONT)
        os.kill(first.pid, signal.SIGTERM)  # mid-grid: handled as Ctrl-C
        assert second.returncode == 2, second.stderr[-3000:]
        error = second.stderr.strip().splitlines()[-1]
        assert error.startswith(f"dlmia: error: {out} is in use by another dlmia run (PID ")
        assert f"PID {first.pid} on host {socket.gethostname()} since " in error
        assert f"grid run {grid} --out {out}" in error
        assert after == before  # the second driver wrote nothing
        assert first.wait(timeout=300) == 143, log.read_text()[-3000:]
    finally:
        stop_session(first)
    text = log.read_text()
    assert text.strip().splitlines()[-1] == "dlmia: terminated; rerun to resume"
    assert "Traceback" not in text and not (out / LOCK_NAME).exists()
    finished = files(out / "results")
    rerun = run_grid(expand(load_grid(grid)), out=out, progress=QUIET)  # the lock was released
    assert rerun.skipped == len(finished) and rerun.ok == 12 - len(finished)
    assert {path: files(out / "results")[path] for path in finished} == finished  # untouched
    frame = results(out)
    assert len(frame) == 12 and (frame["status"] == "ok").all()


def wait_for(
    condition: Callable[[], bool], driver: subprocess.Popen[bytes], timeout: float = 240
) -> None:
    """Poll `condition()` until it holds; fail when `driver` ended or `timeout` s passed first."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert driver.poll() is None and time.monotonic() < deadline, "the first driver ended"
        time.sleep(0.05)


def files(folder: Path) -> dict[Path, int]:
    """Every file under `folder` and its modification time (ns)."""
    return {path: path.stat().st_mtime_ns for path in folder.rglob("*") if path.is_file()}


def stop_session(driver: subprocess.Popen[bytes]) -> None:
    """End `driver` and what is left of the Ray it started (its session), if still running."""
    if driver.poll() is not None:
        return
    for stat in Path("/proc").glob("[0-9]*/stat"):
        with contextlib.suppress(OSError, IndexError, ValueError):
            if int(stat.read_text().rsplit(")", 1)[1].split()[3]) == driver.pid:
                os.kill(int(stat.parent.name), signal.SIGKILL)
    driver.wait(timeout=30)
