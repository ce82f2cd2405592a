"""The Ray loop of one run: it submits what the schedule (tune.schedule) says is next, and waits.

Datasets are prepared where the data is (by a worker on this machine, else by a task on the
driver's node) and put in the object store; every idle worker of the pool (tune.pool) gets the
dataset to prepare, else the side, else the cell, the schedule picks for it; a searched cell's
task is submitted the moment the schedule finds all of its sides built. Each finished call goes
back to the schedule, which decides on retries and failures; finished and failed cells go to
`on_cell`, trained sides to the side cache. Ray is reached through `Calls` (tune.calls), so a
test hook can stand in for any call (tune.faults).
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError, RayTaskError

from dlmia.errors import ConfigError, DlmiaError
from dlmia.records import SideInfo, TaskRecord
from tune.cache import SideCache
from tune.calls import Calls
from tune.grid import Resources
from tune.plan import CellJob, Plan
from tune.pool import Worker, WorkerPool
from tune.progress import Progress
from tune.schedule import Failure, Kind, Schedule, Shape
from tune.search import trial_store

log = logging.getLogger(__name__)

#: A line of a Python traceback's stack ("  File "x.py", line 3, in f").
STACK_LINE = re.compile(r'^\s+File ".*", line \d+')
#: The line a traceback ends with: an exception's (dotted) type, and its message if it has one.
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(: .*)?$")
#: The terminal colour codes Ray puts around task names.
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")
#: What the loop does with a finished cell (a CellResult, a SearchOutcome or a Failure) and its
#: attempts.
OnCell = Callable[[CellJob, Any, int], None]


def failure_of(exc: RayError) -> Failure:
    """The failure `exc` reports: for a task, its cause (the exception the task raised); bad
    input (a DlmiaError) is not retried."""
    cause = exc.cause if isinstance(exc, RayTaskError) and exc.cause is not None else exc
    retryable = not isinstance(cause, DlmiaError)
    return Failure(error_line(cause), retryable, traceback=plain_text(str(exc)))


def error_line(cause: BaseException) -> str:
    """What went wrong, in one line: `Type: message` of `cause`, or where its message holds a
    traceback (Tune's TuneError wraps a trial's), the last exception line of that traceback."""
    lines = [line for line in plain_text(str(cause)).splitlines() if line.strip()]
    if any(STACK_LINE.match(line) for line in lines):
        raised = [line for line in lines if EXCEPTION_LINE.match(line)]
        if raised:
            return raised[-1]
    return f"{type(cause).__name__}: {lines[0] if lines else ''}"


def plain_text(text: str) -> str:
    """`text` without terminal colour codes and surrounding blank space."""
    return ANSI_CODE.sub("", text).strip()


@dataclass(frozen=True)
class Flight:
    """A remote call in flight."""

    kind: Kind
    id: str  # dataset key, side id or cell id
    worker: Worker | None = None
    submitted: float = field(default_factory=time.time)  # wall clock


class Scheduler:
    """Runs the sides and cells of `todo` on the connected Ray cluster."""

    def __init__(
        self,
        plan: Plan,
        todo: list[CellJob],
        cache: SideCache,
        calls: Calls,
        on_cell: OnCell,
        *,
        max_retries: int,
        progress: Progress,
        search_dir: str,
        side_info: dict[str, SideInfo],
    ) -> None:
        """`on_cell` gets each finished cell; `side_info` is filled with every built side's
        info (a failed cell's row records its sides')."""
        self.plan, self.cache, self.calls, self.on_cell = plan, cache, calls, on_cell
        self.progress, self.search_dir = progress, search_dir
        self.has_gpu = ray.cluster_resources().get("GPU", 0) > 0
        cap = plan.grid.runtime.max_concurrent_cells
        cpus = ray.cluster_resources().get("CPU", 1)
        self.schedule = Schedule(
            plan.sides, todo, shape=lambda job: self.shape(job.resources),
            max_retries=max_retries, cell_cap=cap or max(2, int(2 * cpus)),
            side_cap=plan.grid.runtime.side_workers, prepare_on_workers=calls.prepares_on_workers,
        )  # fmt: skip
        self.cells = {job.id: job for job in todo}
        self.side_refs: dict[str, ray.ObjectRef] = {}  # side id -> SideOutput in the object store
        self.side_info = side_info
        self.datasets: dict[str, ray.ObjectRef] = {}  # dataset key -> the prepared dataset
        self.flights: dict[ray.ObjectRef, Flight] = {}
        self.pool = WorkerPool()
        self.tasks: list[dict[str, Any]] = []  # kind, id, task_start, task_end, node_id, pid
        self.cached = 0
        self.searches = [job for job in todo if job.search is not None]
        trials = sum(job.search.num_samples for job in self.searches if job.search is not None)
        sides = len(self.schedule.pending)
        progress.begin(sides=sides, cells=len(todo), skipped=len(plan.cells) - len(todo),
                       trials=trials)  # fmt: skip
        self.trials_counted_at = 0.0

    def run(self, strict: bool = True) -> None:
        """Run until every cell is done; `strict` rejects resources that no node has."""
        self._check_resources(strict)
        self._load_cached()
        try:
            while True:
                self._submit()  # (a failed side's cells leave the schedule here)
                if self.schedule.finished:
                    break
                if not self.flights:
                    raise RuntimeError(f"stalled with {len(self.schedule.pending)} sides unplaced")
                self._collect()
                self._count_trials()
                self.progress.refresh()
        finally:
            self._count_trials(force=True)
            self.pool.stop()  # ends the sides and cells on workers
            for ref, flight in self.flights.items():
                if flight.kind == "cell" and flight.worker is None:  # a task's
                    ray.cancel(ref, force=True)

    def side_counts(self) -> tuple[int, int, int]:
        """(loaded from the cache, trained, failed) sides."""
        return self.cached, len(self.side_refs) - self.cached, len(self.schedule.failed)

    def shape(self, resources: Resources) -> Shape:
        """The shape of a worker with `resources` (GPU shares only where GPUs exist)."""
        return (resources.num_cpus, resources.num_gpus if self.has_gpu else 0.0)

    def _check_resources(self, strict: bool) -> None:
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        sides = {self.plan.sides[s].resources for s in self.schedule.pending}
        for res in sides | {c.resources for c in self.schedule.waiting}:
            cpus, gpus = self.shape(res)
            if not any(n.get("CPU", 0) >= cpus and n.get("GPU", 0) >= gpus for n in nodes):
                message = f"no node of the cluster has {cpus} CPUs and {gpus} GPUs"
                if strict:
                    raise ConfigError(f"resources: {message}; lower num_cpus/num_gpus in the grid")
                log.warning("%s; waiting for the autoscaler to add one", message)

    def _load_cached(self) -> None:
        for side_id in list(self.schedule.pending):
            side = self.cache.get(self.plan.sides[side_id].key)
            if side is not None:
                self.side_refs[side_id] = ray.put(side)
                self.side_info[side_id] = side.info
                self.schedule.on_side_built(side_id)
                self.cached += 1
                self.progress.done("side", side_id, cached=True)

    # --- submitting ---------------------------------------------------------------------------

    def _submit(self) -> None:
        """Everything the schedule says can start now."""
        for dataset in self.schedule.datasets_to_prepare():
            self._prepare(dataset, None)
        for cell, error in self.schedule.blocked_cells():
            self.on_cell(cell, Failure(error), 0)
            self.progress.done("cell", cell.id, failed=True)
        self.pool.resize(self.schedule.worker_demand(), self.schedule.upcoming_shapes())
        for worker in self.pool.idle():
            if (key := self.schedule.next_prepare_for(worker)) is not None:
                self._prepare(key, worker)
            elif (side := self.schedule.next_for(worker)) is not None:
                served = self.cache.lists(side.lists_key)  # the same side under other vectors
                ref = self.calls.side(worker, side, self.datasets[side.dataset_key], served)
                self._fly(ref, Flight("side", side.id, worker))
                self.progress.started("side", side.id)
            elif (job := self.schedule.next_cell_for(worker)) is not None:
                worker.lets_go()
                self._submit_cell(job, worker)
        demand = self.schedule.worker_demand()  # what still waits for a worker
        held = {shape for shape in demand if self.pool.can_hold(shape)}
        for cell in self.schedule.ready_cells(held):
            self._submit_cell(cell, None)

    def _prepare(self, key: str, worker: Worker | None) -> None:
        done, self.datasets[key] = self.calls.prepare(key, self.plan.datasets[key], worker)
        self._fly(done, Flight("prepare", key, worker))

    def _submit_cell(self, cell: CellJob, worker: Worker | None) -> None:
        sides = [self.side_refs[side_id] for side_id in cell.side_ids]
        ref = self.calls.cell(cell, sides, self.search_dir, worker)
        self._fly(ref, Flight("cell", cell.id, worker))
        self.progress.started("cell", cell.id)

    def _fly(self, ref: ray.ObjectRef, flight: Flight) -> None:
        self.flights[ref] = flight
        if flight.worker is not None:
            flight.worker.busy = True

    # --- collecting ---------------------------------------------------------------------------

    def _collect(self) -> None:
        """Wait (at most a second) for calls to finish, and hand every finished one on."""
        done, rest = ray.wait(list(self.flights), num_returns=1, timeout=1.0)
        if done and rest:
            done += ray.wait(rest, num_returns=len(rest), timeout=0)[0]
        for ref in done:
            flight = self.flights.pop(ref)
            value = self._value(ref, flight)
            if flight.worker is not None:
                flight.worker.busy = False
            if flight.kind == "prepare":
                self._prepare_done(flight, value)
            elif flight.kind == "side":
                self._side_done(flight, ref, value)
            else:
                self._cell_done(flight, value)

    def _value(self, ref: ray.ObjectRef, flight: Flight) -> Any:
        """The call's result, or a Failure saying why it raised (a dead worker leaves the pool)."""
        try:
            return ray.get(ref)
        except RayError as exc:
            if isinstance(exc, RayActorError) and flight.worker is not None:
                self.pool.remove(flight.worker)
            failure = failure_of(exc)
            log.warning("%s %s failed: %s", flight.kind, flight.id, failure.error)
            # a failed attempt still kept its resources busy: from submission (a side's worker
            # was idle then; a cell may have queued) to now
            record = TaskRecord(flight.submitted, time.time(), "", 0)
            self._task(f"{flight.kind} (failed)", flight.id, record)
            return failure

    def _prepare_done(self, flight: Flight, value: Any) -> None:
        if not isinstance(value, Failure):
            self.schedule.on_prepared(flight.id)
            if flight.worker is not None:
                flight.worker.keeps(flight.id)
            self._task("prepare", flight.id, value)
            return
        with contextlib.suppress(RayError):  # read the error, or Ray reports it as unhandled
            ray.get(self.datasets.pop(flight.id))
        for side_id in self.schedule.on_prepare_failed(flight.id, value):
            self.progress.done("side", side_id, failed=True)

    def _side_done(self, flight: Flight, ref: ray.ObjectRef, value: Any) -> None:
        if isinstance(value, Failure):
            if self.schedule.on_side_failed(flight.id, value):
                self.progress.retried("side", flight.id)
            else:
                self.progress.done("side", flight.id, failed=True)
        else:
            job = self.plan.sides[flight.id]
            self.cache.store(job.key, job.spec, value, job.lists_key)
            self.side_refs[flight.id] = ref
            self.side_info[flight.id] = value.info
            assert flight.worker is not None  # a side runs on a worker
            flight.worker.keeps(job.dataset_key)
            self.schedule.on_side_built(flight.id)
            self._task("side", flight.id, value.info.task)
            self.progress.done("side", flight.id)
        for key in self.schedule.datasets_to_release():  # frees the object store
            del self.datasets[key]

    def _cell_done(self, flight: Flight, value: Any) -> None:
        job = self.cells[flight.id]
        failed = isinstance(value, Failure)
        if failed and self.schedule.on_cell_failed(job, value):
            self.progress.retried("cell", job.id)
            return
        record: TaskRecord | None = None if failed else getattr(value, "selected", value).task
        seconds = None
        if record is not None and job.search is None:  # a search's time is not a fit's
            seconds = record.task_end - record.task_start
        self.schedule.on_cell_done(job, seconds)
        if not failed:
            self._task("cell", job.id, record)
        self.on_cell(job, value, self.schedule.attempts[job.id])
        self.progress.done("cell", job.id, failed=failed)

    # --- bookkeeping for the summary and the progress view ------------------------------------

    def _count_trials(self, every: float = 5.0, force: bool = False) -> None:
        """Tell the progress view how many trials the searches have done (their records)."""
        now = time.monotonic()
        if not self.searches or (now - self.trials_counted_at < every and not force):
            return
        self.trials_counted_at = now
        done = sum(trial_store(self.search_dir, job.search_name).count() for job in self.searches)
        self.progress.trials(done)

    def _task(self, kind: str, name: str, record: TaskRecord | None) -> None:
        where: dict[str, Any] = {"task_start": None, "task_end": None, "node_id": None,
                                 "pid": None}  # fmt: skip
        if record is not None:
            where = {"task_start": record.task_start, "task_end": record.task_end,
                     "node_id": record.node_id or None, "pid": record.pid or None}  # fmt: skip
        self.tasks.append({"kind": kind, "id": name, **where})
