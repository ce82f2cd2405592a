"""A failed call is recorded whole: its cause in one line (`error`), its traceback beside it.

Real Ray task errors go through `failure_of` (what the scheduler records), a Tune error that
wraps a trial's traceback included; then a grid cell failed by DLMIA_GRID_FAULTS is written
with both columns, and its ok neighbour with both empty.
"""

from __future__ import annotations

import traceback
from collections.abc import Callable
from pathlib import Path

import pytest
import ray
from ray.exceptions import RayError
from ray.tune.error import TuneError

from analysis import load_results
from dlmia.errors import ConfigError
from dlmia.schema import RESULTS, undeclared
from tests.test_grid_runner import QUIET, results, tiny_grid
from tune.faults import FAULTS_ENV
from tune.grid import parse_grid
from tune.plan import expand
from tune.runner import run_grid
from tune.schedule import Failure
from tune.scheduler import failure_of as recorded

pytestmark = [pytest.mark.slow, pytest.mark.usefixtures("local_ray")]


def failure_of(task: Callable[[], None]) -> Failure:
    """What the scheduler records of `task` run as a Ray task (that raises)."""
    with pytest.raises(RayError) as raised:
        ray.get(ray.remote(max_retries=0)(task).remote())
    return recorded(raised.value)


def test_a_task_error_is_its_cause_in_one_line_and_the_whole_traceback() -> None:
    def fit() -> None:
        raise ValueError("bad thing")

    failure = failure_of(fit)
    assert failure.error == "ValueError: bad thing" and failure.retryable
    assert 'raise ValueError("bad thing")' in failure.traceback
    assert failure.traceback.endswith("ValueError: bad thing")
    assert "\x1b[" not in failure.traceback  # without Ray's terminal colours


def test_a_tune_error_is_the_last_error_of_the_trial_traceback_it_wraps() -> None:
    def search() -> None:
        try:
            raise ValueError("bad thing")
        except ValueError:
            raise TuneError(traceback.format_exc()) from None

    failure = failure_of(search)
    assert failure.error == "ValueError: bad thing"
    assert "TuneError: Traceback (most recent call last):" in failure.traceback
    assert 'raise ValueError("bad thing")' in failure.traceback


def test_bad_input_is_recorded_and_not_retried() -> None:
    def cell() -> None:
        raise ConfigError("--set epochs: expected an integer\n(got 'x')")

    failure = failure_of(cell)
    assert failure.error == "ConfigError: --set epochs: expected an integer"
    assert not failure.retryable and "(got 'x')" in failure.traceback


def test_a_failed_cell_row_holds_the_cause_and_the_traceback(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    raw = tiny_grid("errors", ("popularity",))
    raw["attacks"]["norm"] = {}
    broken = "syn.popularity__syn.popularity__biased__s0"
    monkeypatch.setenv(FAULTS_ENV, f"cell:{broken}:always")
    out = tmp_path / "out"
    summary = run_grid(expand(parse_grid(raw)), out=out, max_retries=0, progress=QUIET)
    assert (summary.ok, summary.failed) == (1, 1)
    frame = results(out).set_index("attack")
    failed, ok = frame.loc["biased"], frame.loc["norm"]
    cause = f"InjectedFailure: injected failure in cell {broken} (DLMIA_GRID_FAULTS)"
    assert failed["error"] == cause
    assert "raise InjectedFailure(" in failed["traceback"]
    assert failed["traceback"].endswith(failed["error"])
    assert ok["status"] == "ok" and ok["error"] == ok["traceback"] == ""
    assert undeclared(frame.columns, RESULTS) == []  # ok and failed rows: declared columns only
    loaded = load_results(out).set_index("cell_id")
    assert loaded.loc[broken, "traceback"] == failed["traceback"]
