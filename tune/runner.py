"""The grid runner: sides and cells on a pool of Ray actors, results on disk, resume.

`run_grid` takes a grid's plan (tune.plan.expand), skips the cells already finished in the
output folder, loads the sides already in the cache, and schedules the rest (tune.scheduler):
each side once, on a worker actor with its recommender's resources, and each cell's attack as
soon as its sides exist, on a worker (a searched cell: as a task that drives its search).
Everything (side cache, result rows, scores) is written by this driver, atomically, so the
output folder lives on the driver's machine whatever the cluster, and a driver killed at any
moment loses only the work in flight. The folder has one writer: a run holds its lock
(dlmia.lock) from before its first write to its end, and a second run on it fails at once.
"""

from __future__ import annotations

import dataclasses
import logging
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dlmia.data.sources import check_file
from dlmia.errors import DlmiaError, OutputError
from dlmia.lock import FolderLock
from dlmia.records import CellResult, SideInfo
from tune.cache import SideCache
from tune.cluster import check_local_cpus, ray_session, resolve_address
from tune.faults import Faults, FaultyCalls
from tune.outputs import Outputs, output_root
from tune.plan import CellJob, Plan
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
    tasks: list[dict[str, Any]] = field(default_factory=list)  # kind, id, start/end, node, pid

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
    plan: Plan,
    *,
    out: str | Path | None = None,
    cache: str | Path | None = None,
    address: str | None = None,
    max_retries: int | None = None,
    progress: Progress | None = None,
) -> RunSummary:
    """Run every unfinished cell of `plan`; write results under `out` (default out/<grid name>).

    Args:
        plan: a grid expanded with its data root (`tune.plan.expand(load_grid(...), root)`).
        out: the output folder; rerunning into the same folder resumes.
        cache: the side cache folder (default OUT/sides); grids may share one.
        address: a Ray cluster (`auto`, `ray://host:10001`); None: $RAY_ADDRESS (set for a
            submitted Ray job's entrypoint) or, without it, a local Ray in-process.
            When Ray is already initialised it is used as it is, and left running.
        max_retries: overrides the grid's runtime.max_retries.
        progress: where progress goes (default: a live view on a terminal, else plain lines).

    Raises:
        ConfigError, DataError: bad input (a missing data file, a Ray address where nothing
            answers, resources no node has), before any work starts.
        LockedError: another run holds the output folder (dlmia.lock), before anything is written.
    """
    started = time.perf_counter()
    grid = plan.grid
    check_data(plan)
    address = resolve_address(address)
    if address is None and not ray_running():
        check_local_cpus(grid)
    faults = Faults()
    outputs = Outputs(output_root(grid.name, out))
    with FolderLock(outputs.root):  # one writer per output folder; a shared --cache needs none
        outputs.start(grid, plan.data_root or None)
        side_cache = SideCache(cache or outputs.sides)
        side_cache.clean()
        todo = [job for job in plan.cells if not outputs.finished(job)]
        skipped = len(plan.cells) - len(todo)
        summary = RunSummary(grid.name, outputs.root, len(plan.cells), skipped)
        if todo:
            retries = grid.runtime.max_retries if max_retries is None else max_retries
            schedule(plan, todo, outputs, side_cache, retries, faults, address, progress, summary)
        statuses = [outputs.status(job) for job in todo]
    summary.ok, summary.failed = statuses.count("ok"), len(todo) - statuses.count("ok")
    summary.wall_seconds = time.perf_counter() - started
    return summary


def schedule(
    plan: Plan,
    todo: list[CellJob],
    outputs: Outputs,
    side_cache: SideCache,
    retries: int,
    faults: Faults,
    address: str | None,
    progress: Progress | None,
    summary: RunSummary,
) -> None:
    """Run the cells of `todo` on Ray, recording each as it ends; fill in `summary`'s CPUs,
    tasks and side counts."""
    with ray_session(address) as cpus:
        import ray

        from tune.calls import RayCalls
        from tune.scheduler import Scheduler

        summary.cpus = cpus
        progress = progress or Progress.auto()
        calls = RayCalls(has_gpu=ray.cluster_resources().get("GPU", 0) > 0, local=address is None)
        sides: dict[str, SideInfo] = {}  # filled by the scheduler; failed cells' rows read it

        def on_cell(job: CellJob, value: Any, attempts: int) -> None:
            record_cell(outputs, plan, sides, job, value, attempts)

        scheduler = Scheduler(
            plan, todo, side_cache, FaultyCalls(calls, faults) if faults.rules else calls,
            on_cell, max_retries=retries, progress=progress,
            search_dir=str(outputs.root.resolve()), side_info=sides,
        )  # fmt: skip
        with progress:
            try:
                scheduler.run(strict=address is None)
            except OSError as exc:  # writing a side, a result or a trial record failed
                raise OutputError(
                    f"cannot write {exc.filename or outputs.root} ({exc.strerror or exc}); the "
                    f"cells finished so far are kept: fix it and rerun to resume"
                ) from exc
        summary.tasks = scheduler.tasks
        counts = scheduler.side_counts()
        summary.sides_cached, summary.sides_trained, summary.sides_failed = counts


def record_cell(
    outputs: Outputs, plan: Plan, sides: dict[str, SideInfo], job: CellJob, value: Any,
    attempts: int,
) -> None:
    """Write a finished cell (a CellResult, or a SearchOutcome: its selected trial and every trial)
    or a failed one (a scheduler Failure)."""
    if not isinstance(value, (CellResult, SearchOutcome)):
        outputs.write_failed(job, value.error, plan.grid.name, sides, attempts, value.traceback)
        return
    result, trials = (value.selected, value.trials) if isinstance(value, SearchOutcome) else (
        value, None
    )
    if result.task is not None:  # the whole cell: its task, from start to end
        result = dataclasses.replace(result, seconds=result.task.task_end - result.task.task_start)
    outputs.write(job, result, plan.grid.name, attempts, trials)


def ray_running() -> bool:
    """Whether this process already has an initialised Ray (which a run then uses as it is)."""
    ray = sys.modules.get("ray")
    return ray is not None and bool(ray.is_initialized())


def check_data(plan: Plan) -> None:
    """Fail before any work when a dataset's file is missing or the columns it declares do not
    fit the file (bad input: exit code 2): the loader's own lookup and message, after the grid
    file and the dataset's key."""
    checked = set()
    for job in plan.sides.values():
        if job.dataset_key in checked:
            continue
        checked.add(job.dataset_key)
        try:
            file = job.spec.dataset.file()
            if file is not None:
                check_file(file)
        except DlmiaError as exc:
            where = f"{plan.grid.source or plan.grid.name}: datasets.{job.id.split('.')[0]}"
            raise type(exc)(f"{where}: {exc}") from None  # side ids start with the alias
