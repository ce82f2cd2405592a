"""The output folder of a grid run, and which cells in it are finished.

Layout under OUT (the analysis package reads it; the tables' columns are `dlmia.schema`'s):
- `results/<cell_id>.parquet`: the cell's one row of the results table (`dlmia.results.result_row`
  plus the runner's `grid`, `cell_id`, `cell_key`, side ids, `attempts`, `error`, `traceback`,
  `status` "ok" or "failed"; a failed row has the same columns, NaN metrics, the error in one
  line and its whole traceback); a searched cell's row is its selected trial;
- `trials/<cell_id>.parquet`: a searched cell's trials table, one row per trial;
- `scores/<cell_id>.parquet`: the target users' member scores (user, label, score), of the
  selected trial for a searched cell;
- `searches/<search>/`: a search's trial records (tune.trials), what a resumed search reads;
  `optuna.log`: every search's Optuna study (one journal, a study per cell); `tune/`: Tune's
  own experiment folders, written and never read back (they hold pickles);
- `grid.yaml`: the resolved grid; `sides/`: the side cache unless `--cache` names another.
Every file is written atomically, the result row last, so a cell is finished exactly when its
result file exists with status ok and the cell's current content key, and its other files (scores,
and a searched cell's trials) exist too: deleting any of them makes the cell run again.
"""

from __future__ import annotations

import logging
import math
import os
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import yaml
from pyarrow import ArrowException

from dlmia import config as cfg
from dlmia.attacks import ATTACKS
from dlmia.errors import OutputError
from dlmia.io import atomic_write, not_regular, write_parquet
from dlmia.layout import GridFolder
from dlmia.records import CellResult, SideInfo
from dlmia.results import result_row, scores_frame
from dlmia.schema import ATTACK_METRICS, IDENTITY, METRICS, TRIALS
from tune.grid import Grid, grid_dict
from tune.journal import repair
from tune.plan import CellJob

log = logging.getLogger(__name__)


OUT_ENV = "DLMIA_OUT"  # the folder grids write into by default (a grid's output is OUT/<name>)
JOB_ENV = "RAY_JOB_CONFIG_JSON_ENV_VAR"  # set by Ray for the entrypoint of a submitted job


def output_root(grid_name: str, out: str | Path | None = None) -> Path:
    """The absolute output folder of grid `grid_name`: `out` when given; else
    `$DLMIA_OUT/<name>`; else, inside a Ray job (whose working directory is a temporary copy),
    `~/dlmia-out/<name>` on the node running the job; else `out/<name>` here."""
    if out is not None:
        return Path(out).expanduser().absolute()
    if os.environ.get(OUT_ENV):
        return (Path(os.environ[OUT_ENV]).expanduser() / grid_name).absolute()
    if os.environ.get(JOB_ENV):
        return Path.home() / "dlmia-out" / grid_name
    return (Path("out") / grid_name).absolute()


class Outputs(GridFolder):
    """Paths (dlmia.layout) and writers of one run's output folder."""

    def __init__(self, root: str | Path) -> None:
        super().__init__(root)
        self.state = (self.searches, self.tune)  # the searches' own folders

    def start(self, grid: Grid, data_root: str | Path | None) -> None:
        """Repair the Optuna journal a killed run may have torn (tune.journal), write grid.yaml,
        create the folders and drop temporary files of a killed run; in that order, so a folder
        holding a planted link or folder where these files go is refused before anything is
        written there.

        Raises:
            OutputError: a file cannot be written there (naming it), the journal is a link, a
                folder or another non-regular file, or a folder the run writes in is a link.
        """
        source, root = grid.source or "a mapping", data_root or "default"
        header = f"# resolved from {source}; data root: {root}\n"
        text = header + yaml.safe_dump(grid_dict(grid), sort_keys=False)
        for folder in (self.results, self.scores, self.trials, *self.state):
            if folder.is_symlink():  # a planted link would carry the run's writes elsewhere
                raise not_regular(folder)
        try:
            repair(self.study_file)
            atomic_write(self.grid_file, lambda tmp: tmp.write_text(text))
            for folder in (self.results, self.scores, self.trials):
                folder.mkdir(parents=True, exist_ok=True)
                for stale in folder.glob(".*.tmp"):
                    stale.unlink(missing_ok=True)
        except OSError as exc:
            where = exc.filename2 or exc.filename or self.root
            raise OutputError(f"cannot write {where} ({exc.strerror or exc})") from None

    def finished(self, job: CellJob) -> bool:
        """Whether `job` has an ok result written for its current content key, and every other
        file of an ok cell (`files`)."""
        row = self._row(job)
        done = row.get("status") == "ok" and row.get("cell_key") == job.key
        return done and all(path.is_file() for path in self.files(job))

    def files(self, job: CellJob) -> list[Path]:
        """The files an ok cell has besides its result row: its scores, and a searched cell's
        trials."""
        folders = [self.scores] + ([self.trials] if job.search is not None else [])
        return [folder / f"{job.id}.parquet" for folder in folders]

    def status(self, job: CellJob) -> str:
        """The status of `job`'s result row ("ok", "failed"), or "" when it has none."""
        return str(self._row(job).get("status", ""))

    def _row(self, job: CellJob) -> dict[str, Any]:
        """`job`'s result row, or {} when there is none (or a foreign file stands there)."""
        path = self.results / f"{job.id}.parquet"
        if not path.is_file():
            return {}
        try:
            return dict(pd.read_parquet(path).iloc[0])
        except (OSError, ValueError, IndexError, ArrowException) as exc:
            log.warning("%s is unreadable (%s); the cell runs again", path, exc)
            return {}

    def write(
        self,
        job: CellJob,
        result: CellResult,
        grid: str,
        attempts: int,
        trials: pd.DataFrame | None = None,
    ) -> Path:
        """Write an ok cell: its scores, a searched cell's `trials` (tune.search.trials_frame) as
        its trials table, then its result row."""
        row = result_row(job.config, result) | self._extra(job, grid, attempts, "", "ok")
        write_parquet(scores_frame(result), self.scores / f"{job.id}.parquet")
        if trials is not None:
            write_parquet(trials_table(row, trials), self.trials / f"{job.id}.parquet")
        return write_parquet(pd.DataFrame([row]), self.results / f"{job.id}.parquet")

    def write_failed(
        self,
        job: CellJob,
        error: str,
        grid: str,
        sides: Mapping[str, SideInfo],
        attempts: int,
        traceback: str = "",
    ) -> Path:
        """Write a failed cell: the same columns as an ok row, NaN metrics, the error (one line)
        and its traceback (the whole text)."""
        for stale in (self.scores, self.trials):
            (stale / f"{job.id}.parquet").unlink(missing_ok=True)
        result = failed_result(job, sides)
        row = result_row(job.config, result, status="failed")
        row |= self._extra(job, grid, attempts, error, "failed", traceback)
        return write_parquet(pd.DataFrame([row]), self.results / f"{job.id}.parquet")

    @staticmethod
    def _extra(
        job: CellJob, grid: str, attempts: int, error: str, status: str, traceback: str = ""
    ) -> dict[str, Any]:
        return {
            "grid": grid,
            "cell_id": job.id,
            "cell_key": job.key,
            "shadow_side_id": job.shadow,
            "target_side_id": job.target,
            "attempts": attempts,
            "error": error,
            "traceback": traceback,
            "status": status,
            "finished_at": time.time(),
        }


def trials_table(cell_row: dict[str, Any], trials: pd.DataFrame) -> pd.DataFrame:
    """A searched cell's trials table: the cell's identity, then per trial its numbers, state,
    criteria, picks, recorded target metrics (NaN for a trial ASHA stopped), settings, fit
    seconds and `param.*` values."""
    frame = pd.DataFrame({name: [cell_row.get(name)] * len(trials) for name in IDENTITY})
    frame["search"] = cell_row["search"]
    for name in TRIALS:
        if name in trials:
            frame[name] = trials[name].to_numpy()
    for name in METRICS:
        frame[name] = trials.get(f"target.{name}", pd.Series(math.nan, trials.index)).to_numpy()
    frame["attack_settings"] = trials["settings"].to_numpy()
    frame["attack_seconds"] = trials["fit_seconds"].to_numpy()
    params = [c for c in trials.columns if c.startswith("param.")]
    return pd.concat([frame, trials[params].reset_index(drop=True)], axis=1)


def failed_result(job: CellJob, sides: Mapping[str, SideInfo]) -> CellResult:
    """A CellResult with NaN metrics, so a failed row has exactly an ok row's columns (with
    the counts and coverage of whichever of its sides exist, `sides` by side id)."""
    shadow, target = sides.get(job.shadow), sides.get(job.target)
    config: Any = cfg.build(ATTACKS[job.config.attack].Config, job.config.attack_settings)
    empty = np.empty(0, dtype=np.int64)
    return CellResult(
        dict.fromkeys(ATTACK_METRICS, math.nan), np.empty(0), empty, empty,
        n_shadow=shadow.n_users if shadow else None, n_target=target.n_users if target else None,
        attack_settings=cfg.as_dict(config), attack_seconds=math.nan, shadow_side=shadow,
        target_side=target,
    )  # fmt: skip
