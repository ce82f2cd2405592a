"""Faults while a grid runs or between runs, and how each is recovered: corrupt side-cache
entries are reported and trained again, an unreadable result or trial record is redone, and an
output folder that stops taking writes ends the run with one line, resumable."""

from __future__ import annotations

import logging
from pathlib import Path

import numpy as np
import pytest

from dlmia.errors import OutputError
from dlmia.sides import SideOutput
from tests.records import side_info
from tests.test_grid_runner import QUIET, tiny_grid
from tune.cache import SideCache
from tune.grid import parse_grid
from tune.outputs import Outputs
from tune.plan import expand
from tune.runner import run_grid
from tune.trials import TrialRecord, TrialStore

pytestmark = pytest.mark.slow


def one_cell_grid(name: str) -> dict:
    raw = tiny_grid(name)
    raw["cells"] = [{"shadow": "syn.lfm", "target": "syn.itemcf"}]
    return raw


@pytest.mark.usefixtures("local_ray")
@pytest.mark.parametrize("damage", ["truncated arrays", "arrays gone", "bad json"])
def test_corrupt_cache_entries_are_reported_and_trained_again(
    tmp_path: Path, damage: str, caplog: pytest.LogCaptureFixture
) -> None:
    grid = parse_grid(one_cell_grid("cache"))
    out = tmp_path / "out"
    assert run_grid(expand(grid), out=out, progress=QUIET).ok == 1
    cache = SideCache(out / "sides")
    side = next(iter(expand(grid).sides.values()))
    arrays, info = cache.paths(side.key)
    if damage == "truncated arrays":
        arrays.write_bytes(arrays.read_bytes()[:100])
    elif damage == "arrays gone":
        arrays.unlink()
    else:
        info.write_text("{not json")
    for result in (out / "results").glob("*.parquet"):
        result.unlink()  # the cell runs again, so its sides are needed again

    with caplog.at_level(logging.WARNING, logger="tune.cache"):
        summary = run_grid(expand(grid), out=out, progress=QUIET)
    assert summary.exit_code == 0 and summary.ok == 1
    assert (summary.sides_trained, summary.sides_cached) == (1, 1)
    assert "cannot be used" in caplog.text
    assert cache.get(side.key) is not None  # rebuilt and stored whole


def test_an_unreadable_trial_record_is_skipped_so_the_trial_runs_again(tmp_path: Path) -> None:
    store = TrialStore(tmp_path)
    scores = np.linspace(0, 1, 5)
    store.write(TrialRecord(0, "complete", {"lr": 0.001}, {"objective": -1.0}, scores))
    store.write(TrialRecord(1, "pruned", {"lr": 0.01}, {"objective": -2.0}))
    (tmp_path / "trial-0001.json").write_text('{"number": 1, "sta')  # cut short
    (tmp_path / "trial-0002.json").write_text('{"number": 2}')  # fields missing
    records = store.load()
    assert [r.number for r in records] == [0]
    assert np.array_equal(records[0].scores, scores)


def test_trial_scores_are_never_unpickled(tmp_path: Path) -> None:
    store = TrialStore(tmp_path)
    store.write(TrialRecord(0, "complete", {}, {"objective": -1.0}, np.zeros(3)))
    np.save(tmp_path / "trial-0000.npy", np.array([object()], dtype=object), allow_pickle=True)
    assert store.load() == []  # an object array needs pickle: refused, the trial runs again


@pytest.mark.usefixtures("local_ray")
def test_an_output_folder_that_stops_taking_writes_ends_the_run_resumably(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tiny_grid("readonly")
    grid = parse_grid(raw)
    out = tmp_path / "out"
    written: list[str] = []
    real_write = Outputs.write

    def write_then_fail(self: Outputs, job, *args, **kwargs):  # type: ignore[no-untyped-def]
        if written:
            raise OSError(28, "No space left on device", str(self.results / f"{job.id}.parquet"))
        written.append(job.id)
        return real_write(self, job, *args, **kwargs)

    monkeypatch.setattr(Outputs, "write", write_then_fail)
    with pytest.raises(OutputError, match="No space left on device.*rerun to resume"):
        run_grid(expand(grid), out=out, progress=QUIET)
    monkeypatch.undo()
    summary = run_grid(expand(grid), out=out, progress=QUIET)
    assert summary.exit_code == 0 and summary.skipped == 1
    assert summary.ok == len(expand(grid).cells) - 1


def test_side_output_arrays_round_trip_without_pickle(tmp_path: Path) -> None:
    grid = parse_grid(one_cell_grid("plain"))
    spec = next(iter(expand(grid).sides.values()))
    side = SideOutput(np.ones((3, 2), np.float32), np.array([0, 1, 1]), np.arange(3),
                      np.zeros((3, 4), np.int32), side_info(n_members=2, n_nonmembers=1))
    cache = SideCache(tmp_path)
    cache.store(spec.key, spec.spec, side)
    loaded = cache.get(spec.key)
    assert loaded is not None and np.array_equal(loaded.vectors, side.vectors)
