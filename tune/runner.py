"""The grid runner: sides on a pool of Ray actors, cells as Ray tasks, results on disk, resume.

`run_grid` expands a grid, skips the cells already finished in the output folder, loads the
sides already in the cache, and schedules the rest (tune.scheduler): each side once, on a worker
actor with its recommender's resources, and each cell's attack as a task as soon as both its
sides exist. Everything (side cache, result rows, scores) is written by this driver, atomically,
so the output folder lives on the driver's machine whatever the cluster, and a driver killed at
any moment loses only the work in flight.
"""

from __future__ import annotations

import contextlib
import dataclasses
import logging
import os
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlmia.cell import CellResult
from dlmia.errors import DataError
from tune.cache import SideCache, plain
from tune.faults import Faults
from tune.grid import Grid
from tune.outputs import Outputs
from tune.plan import CellJob, Plan, data_fingerprint, expand
from tune.progress import Progress
from tune.search import SearchOutcome

log = logging.getLogger(__name__)


@dataclass
class RunSummary:
    """What a run did: counts, wall time, and one record per task it ran (for utilisation)."""

    grid: str
    out: Path
    cells: int  # cells of the grid (pairs x attacks x seeds)
    skipped: int = 0  # already finished in the output folder
    ok: int = 0
    failed: int = 0
    sides_cached: int = 0  # loaded from the side cache
    sides_trained: int = 0
    sides_failed: int = 0
    wall_seconds: float = 0.0
    cpus: float = 0.0  # CPUs of the cluster (0 when no Ray was needed)
    tasks: list[dict[str, Any]] = field(default_factory=list)  # kind, id, task_start/end, node_id

    @property
    def exit_code(self) -> int:
        """1 when any cell failed, else 0."""
        return 1 if self.failed else 0

    def line(self) -> str:
        """One line for the end of a run."""
        return (
            f"grid {self.grid}: {self.cells} cells ({self.skipped} already done, {self.ok} ok, "
            f"{self.failed} failed); sides: {self.sides_trained} trained, {self.sides_cached} "
            f"from cache, {self.sides_failed} failed; {self.wall_seconds:.1f} s; "
            f"results in {self.out}"
        )


def run_grid(
    grid: Grid,
    *,
    out: str | Path | None = None,
    data_root: str | Path | None = None,
    cache: str | Path | None = None,
    address: str | None = None,
    max_retries: int | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run every unfinished cell of `grid`; write results under `out` (default out/<name>).

    Args:
        grid: a validated grid (tune.grid.load_grid).
        out: the output folder; rerunning into the same folder resumes.
        data_root: the folder dataset names and relative paths resolve under.
        cache: the side cache folder (default OUT/sides); grids may share one.
        address: a Ray cluster (`auto`, `ray://host:10001`); None starts a local Ray in-process.
            When Ray is already initialised it is used as it is, and left running.
        max_retries: overrides the grid's runtime.max_retries.
        progress: where progress goes (default: a live view on a terminal, else plain lines).

    Raises:
        ConfigError, DataError: bad input (a missing data file, resources no node has), before
            any work starts.
    """
    started = time.perf_counter()
    plan = expand(grid, data_root)
    check_data(plan)
    faults = Faults()
    outputs = Outputs(out or Path("out") / grid.name)
    outputs.start(grid, data_root)
    side_cache = SideCache(cache or outputs.root / "sides")
    side_cache.clean()
    todo = [job for job in plan.cells if not outputs.finished(job)]
    summary = RunSummary(grid.name, outputs.root, len(plan.cells), len(plan.cells) - len(todo))
    retries = grid.runtime.max_retries if max_retries is None else max_retries
    if todo:
        with ray_session(address) as cpus:
            from tune.scheduler import Scheduler

            summary.cpus = cpus
            progress = progress or Progress.auto()
            searches = str(outputs.root.resolve())
            scheduler = Scheduler(plan, todo, side_cache, retries, faults, progress, searches)
            scheduler.on_cell = lambda job, value, attempts: record_cell(
                outputs, plan, scheduler.side_info, job, value, attempts
            )
            with progress:
                scheduler.run(strict=address is None)
            summary.tasks = scheduler.tasks
            counts = scheduler.side_counts()
            summary.sides_cached, summary.sides_trained, summary.sides_failed = counts
    statuses = [outputs.status(job) for job in todo]
    summary.ok, summary.failed = statuses.count("ok"), len(todo) - statuses.count("ok")
    summary.wall_seconds = time.perf_counter() - started
    return summary


def record_cell(
    outputs: Outputs, plan: Plan, sides: dict[str, Any], job: CellJob, value: Any, attempts: int
) -> None:
    """Write a finished cell (a CellResult, or a SearchOutcome: its selected trial and every trial)
    or a failed one (a scheduler Failure)."""
    if not isinstance(value, (CellResult, SearchOutcome)):
        outputs.write_failed(job, value.error, plan.grid.name, sides, attempts)
        return
    result, trials = (value, None) if isinstance(value, CellResult) else (value.selected, value.trials)
    info = plain(result.info)
    info["seconds"] = info["task_end"] - info["task_start"]
    result = dataclasses.replace(result, info=info)
    outputs.write(job, result, plan.grid.name, sides, attempts, trials)


def check_data(plan: Plan) -> None:
    """Fail before any work when a dataset's file is missing (bad input: exit code 2)."""
    for spec in plan.datasets.values():
        if data_fingerprint(spec) == "missing":
            root = spec.data_root or "the default data root ($DLMIA_DATA_ROOT or ./data)"
            raise DataError(
                f"dataset {spec.name!r} not found under {root}; pass --data-root DIR, or fetch "
                f"it with `dlmia data fetch {spec.name} --to DIR`"
            )


@contextlib.contextmanager
def ray_session(address: str | None) -> Iterator[float]:
    """Connect to Ray (or start a local one) for the run; yields the cluster's CPU count.

    Only a Ray started (or connected to) here is shut down afterwards; an initialised one is
    used and left alone.
    """
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    started = not ray.is_initialized()
    if started:
        options: dict[str, Any] = {"logging_level": logging.WARNING, "log_to_driver": False}
        if address:
            ray.init(address=address, **options)
        else:
            ray.init(address="local", include_dashboard=False, **options)
    try:
        yield float(ray.cluster_resources().get("CPU", 0.0))
    finally:
        if started:
            ray.shutdown()
