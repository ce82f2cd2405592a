"""A cell is finished only when all of its files are: its ok result row for the current key, its
scores and, searched, its trials table. Deleting any of them makes the cell run again (the rerun
rewrites it), so `analyze --roc` and the trials table never lose a cell. No Ray."""

from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from tests.fault_cases import base_grid
from tune.grid import parse_grid
from tune.outputs import Outputs, failed_result
from tune.plan import CellJob, expand


def jobs() -> tuple[CellJob, CellJob]:
    """A fixed-settings cell (biased) and a searched one (dlmia) of the catalogue's base grid."""
    cells = expand(parse_grid(base_grid())).cells
    plain = next(job for job in cells if job.search is None)
    searched = next(job for job in cells if job.search is not None)
    return plain, searched


@pytest.mark.parametrize("searched", [False, True], ids=["plain", "searched"])
def test_a_cell_missing_any_of_its_files_is_not_finished(tmp_path: Path, searched: bool) -> None:
    job = jobs()[searched]
    outputs = Outputs(tmp_path)
    if searched:  # a searched cell's trials table, written before its row (Outputs.write)
        outputs.trials.mkdir(parents=True)
        pd.DataFrame({"trial": [1]}).to_parquet(outputs.trials / f"{job.id}.parquet")
    outputs.write(job, failed_result(job, {}), "faults", attempts=1)
    files = outputs.files(job)
    assert len(files) == 1 + searched and all(path.is_file() for path in files)
    assert outputs.finished(job)
    for path in files:
        kept = path.read_bytes()
        path.unlink()
        assert not outputs.finished(job), f"finished without {path.parent.name}/"
        path.write_bytes(kept)
    assert outputs.finished(job)
