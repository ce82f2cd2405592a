"""Scheduling one run on Ray: sides on the worker pool, cells as tasks, retries, failures.

The driver loop keeps the cluster busy: the datasets waiting sides need are prepared on the
driver's node (where the data is) and put in the object store; every idle worker gets a side of
a prepared dataset, one it holds first. A cell's attack is submitted the moment both its sides
exist (and its reference pool's, for an attack that has one). A side or cell that raises is
retried up to `max_retries` times (not for bad input, which would only fail again), then
recorded as failed; the run goes on. The scheduler writes nothing but the side cache: finished
cells go to `on_cell`.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import ray
from ray.exceptions import RayActorError, RayError, RayTaskError
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from dlmia.errors import ConfigError, DlmiaError
from dlmia.records import SideInfo, TaskRecord
from tune.actors import attack_task, injected_failure, prepare_task, search_task
from tune.cache import SideCache
from tune.plan import CellJob, Plan
from tune.pool import Shape, Worker, WorkerPool
from tune.progress import Progress
from tune.search import trial_store

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Failure:
    """A call that raised."""

    error: str  # one line: the cause's exception type and message (error_line)
    retryable: bool = True  # False for bad input (a DlmiaError), which would only fail again
    traceback: str = ""  # the whole remote traceback, as Ray reports it

    @classmethod
    def of(cls, exc: RayError) -> Failure:
        """The failure `exc` reports: for a task, its cause (the exception the task raised)."""
        cause = exc.cause if isinstance(exc, RayTaskError) and exc.cause is not None else exc
        retryable = not isinstance(cause, DlmiaError)
        return cls(error_line(cause), retryable, traceback=plain_text(str(exc)))


#: A line of a Python traceback's stack ("  File "x.py", line 3, in f").
STACK_LINE = re.compile(r'^\s+File ".*", line \d+')
#: The line a traceback ends with: an exception's (dotted) type, and its message if it has one.
EXCEPTION_LINE = re.compile(r"^[A-Za-z_][\w.]*(: .*)?$")
#: The terminal colour codes Ray puts around task names.
ANSI_CODE = re.compile(r"\x1b\[[0-9;]*m")


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

    kind: str  # prepare | side | cell
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
        max_retries: int,
        fail: Callable[[str, str, int], bool],
        progress: Progress,
        search_dir: str = "",
    ) -> None:
        self.plan, self.cache, self.max_retries = plan, cache, max_retries
        self.search_dir = search_dir  # where searches keep their Tune and Optuna state
        self.fail, self.progress = fail, progress
        self.waiting = list(todo)  # cells not submitted yet
        self.cells = {job.id: job for job in todo}
        self.pending = list(dict.fromkeys(s for job in todo for s in job.side_ids))
        self.side_refs: dict[str, ray.ObjectRef] = {}  # side id -> SideOutput in the object store
        self.side_info: dict[str, SideInfo] = {}
        self.side_failed: dict[str, str] = {}  # side id -> error
        self.datasets: dict[str, ray.ObjectRef] = {}  # dataset key -> prepared (or in preparation)
        self.ready: set[str] = set()  # dataset keys whose preparation finished
        self.attempts: Counter[str] = Counter()
        self.flights: dict[ray.ObjectRef, Flight] = {}
        self.pool = WorkerPool(plan.grid.runtime.side_workers)
        self.tasks: list[dict[str, Any]] = []  # kind, id, task_start, task_end, node_id
        self.cached = 0
        self.on_cell: Callable[[CellJob, Any, int], None] = lambda job, value, attempts: None
        resources = ray.cluster_resources()
        self.has_gpu = resources.get("GPU", 0) > 0
        # datasets are prepared on the driver's node: with a CPU of it where it has one (a
        # cluster's head may have none for tasks), two at a time
        self.here = NodeAffinitySchedulingStrategy(ray.get_runtime_context().get_node_id(), False)
        here = next(n for n in ray.nodes() if n["NodeID"] == self.here.node_id)
        self.prepare_cpus = 1 if here["Resources"].get("CPU", 0) >= 1 else 0
        self.prepare_cap = 2
        cap = plan.grid.runtime.max_concurrent_cells
        self.cell_cap = cap or max(2, int(2 * resources.get("CPU", 1)))
        skipped = len(plan.cells) - len(todo)
        self.searches = [job for job in todo if job.search is not None]
        trials = sum(job.search.num_samples for job in self.searches if job.search is not None)
        progress.begin(sides=len(self.pending), cells=len(todo), skipped=skipped, trials=trials)
        self.trials_counted_at = 0.0

    def run(self, strict: bool = True) -> None:
        """Run until every cell is done; `strict` rejects resources that no node has."""
        self._check_resources(strict)
        self._load_cached()
        try:
            while self.pending or self.waiting or self.flights:
                self._prepare_datasets()
                ready = [s for s in self.pending if self.plan.sides[s].dataset_key in self.ready]
                self.pool.resize(Counter(self.shape(s) for s in ready))  # idle workers hold CPUs
                for worker in self.pool.idle():
                    self._give_work(worker)
                self._submit_cells()
                if not self.flights and (self.pending or self.waiting):
                    raise RuntimeError(f"stalled with {len(self.pending)} sides unplaced")
                self._collect()
                self._count_trials()
                self.progress.refresh()
        finally:
            self._count_trials(force=True)
            self.pool.stop()
            for ref, flight in self.flights.items():
                if flight.kind == "cell":
                    ray.cancel(ref, force=True)

    def side_counts(self) -> tuple[int, int, int]:
        """(loaded from the cache, trained, failed) sides."""
        return self.cached, len(self.side_refs) - self.cached, len(self.side_failed)

    def shape(self, side_id: str) -> Shape:
        """The resources of side `side_id`'s worker (GPU shares only where GPUs exist)."""
        resources = self.plan.sides[side_id].resources
        return (resources.num_cpus, resources.num_gpus if self.has_gpu else 0.0)

    def _check_resources(self, strict: bool) -> None:
        nodes = [n["Resources"] for n in ray.nodes() if n.get("Alive")]
        wanted = {self.plan.sides[s].resources for s in self.pending}
        for res in wanted | {c.resources for c in self.waiting}:
            gpus = res.num_gpus if self.has_gpu else 0.0
            if not any(n.get("CPU", 0) >= res.num_cpus and n.get("GPU", 0) >= gpus for n in nodes):
                message = f"no node of the cluster has {res.num_cpus} CPUs and {gpus} GPUs"
                if strict:
                    raise ConfigError(f"resources: {message}; lower num_cpus/num_gpus in the grid")
                log.warning("%s; waiting for the autoscaler to add one", message)

    def _load_cached(self) -> None:
        for side_id in list(self.pending):
            side = self.cache.get(self.plan.sides[side_id].key)
            if side is None:
                continue
            self.side_refs[side_id] = ray.put(side)
            self.side_info[side_id] = side.info
            self.pending.remove(side_id)
            self.cached += 1
            self.progress.done("side", side_id, cached=True)

    # --- sides --------------------------------------------------------------------------------

    def _give_work(self, worker: Worker) -> None:
        """A side of a prepared dataset, one the worker holds first."""
        mine = [self.plan.sides[s] for s in self.pending if self.shape(s) == worker.shape]
        ready = [job for job in mine if job.dataset_key in self.ready]
        held = [job for job in ready if job.dataset_key in worker.holds]
        if ready:
            job = (held or ready)[0]
            self.pending.remove(job.id)
            self.attempts[job.id] += 1
            served = self.cache.lists(job.lists_key)  # the same side under other vectors
            dataset = [self.datasets[job.dataset_key]]
            ref = self._injected("side", job.id) or worker.handle.build.remote(
                job, dataset, served
            )
            self._fly(ref, Flight("side", job.id, worker))
            self.progress.started("side", job.id)

    def _prepare_datasets(self) -> None:
        """Prepare the datasets that waiting sides need, on the driver's node (where the data
        files are), `prepare_cap` at a time; they reach the workers through the object store."""
        in_flight = sum(f.kind == "prepare" for f in self.flights.values())
        needed = dict.fromkeys(self.plan.sides[s].dataset_key for s in self.pending)
        for key in [k for k in needed if k not in self.datasets][: self.prepare_cap - in_flight]:
            task = prepare_task.options(
                num_cpus=self.prepare_cpus, scheduling_strategy=self.here, name=f"prepare {key}"
            )
            refs: Any = task.remote(self.plan.datasets[key], 1)  # (stats, dataset) refs
            stats, self.datasets[key] = refs
            self._fly(stats, Flight("prepare", key))

    def _prepare_done(self, flight: Flight, value: Any) -> None:
        if not isinstance(value, Failure):
            self.ready.add(flight.id)
            self._task("prepare", flight.id, value)
            return
        with contextlib.suppress(RayError):  # read the error, or Ray reports it as unhandled
            ray.get(self.datasets.pop(flight.id))
        self.attempts[flight.id] += 1
        if self.attempts[flight.id] <= self.max_retries and value.retryable:
            return  # prepared again on the next round
        for side_id in [s for s in self.pending if self.plan.sides[s].dataset_key == flight.id]:
            self.pending.remove(side_id)
            self._side_failed(side_id, f"preparing its dataset failed: {value.error}")

    def _side_done(self, flight: Flight, ref: ray.ObjectRef, value: Any) -> None:
        job = self.plan.sides[flight.id]
        if isinstance(value, Failure):
            if self._retry("side", flight.id, value):
                self.pending.insert(0, flight.id)
            else:
                self._side_failed(flight.id, value.error)
            return
        self.cache.store(job.key, job.spec, value, job.lists_key)
        self.side_refs[flight.id] = ref
        self.side_info[flight.id] = value.info
        flight.worker.keeps(job.dataset_key)  # type: ignore[union-attr]
        self._task("side", flight.id, value.info.task)
        self.progress.done("side", flight.id)
        self._release_datasets()

    def _side_failed(self, side_id: str, error: str) -> None:
        self.side_failed[side_id] = error
        self.progress.done("side", side_id, failed=True)

    def _release_datasets(self) -> None:
        """Drop prepared datasets no waiting or running side needs (frees the object store)."""
        needed = {self.plan.sides[s].dataset_key for s in self.pending}
        running = [f.id for f in self.flights.values() if f.kind == "side"]
        needed |= {self.plan.sides[s].dataset_key for s in running}
        for key in [k for k in self.ready if k not in needed]:
            self.ready.discard(key)
            del self.datasets[key]

    # --- cells --------------------------------------------------------------------------------

    def _submit_cells(self) -> None:
        in_flight = sum(f.kind == "cell" for f in self.flights.values())
        for job in list(self.waiting):
            failed = [s for s in job.side_ids if s in self.side_failed]
            if failed:
                self.waiting.remove(job)
                error = f"side {failed[0]} failed: {self.side_failed[failed[0]]}"
                self.on_cell(job, Failure(error), 0)
                self.progress.done("cell", job.id, failed=True)
            elif in_flight < self.cell_cap and set(job.side_ids) <= self.side_refs.keys():
                self.waiting.remove(job)
                self._submit_cell(job)
                in_flight += 1

    def _submit_cell(self, job: CellJob) -> None:
        self.attempts[job.id] += 1
        gpus = job.resources.num_gpus if self.has_gpu else 0.0
        sides = [self.side_refs[side_id] for side_id in job.side_ids]
        if job.search is None:
            task = attack_task.options(num_cpus=job.resources.num_cpus, num_gpus=gpus)
            ref = self._injected("cell", job.id) or task.remote(job, *sides)
        else:
            search = self._search_options()
            ref = self._injected("cell", job.id) or search.remote(
                job, *sides[:2], self.search_dir, gpus
            )
        self._fly(ref, Flight("cell", job.id))
        self.progress.started("cell", job.id)

    def _injected(self, kind: str, name: str) -> ray.ObjectRef | None:
        """A call that raises, in place of this attempt of side or cell `name`, when the test
        hook (tune.faults) asks for one; else None."""
        if not self.fail(kind, name, self.attempts[name]):
            return None
        return injected_failure.remote(kind, name)

    def _search_options(self) -> Any:
        """`search_task` as a CPU-less Tune driver on this driver's node (its trial records and
        Optuna study go to the output folder here)."""
        return search_task.options(num_cpus=0, scheduling_strategy=self.here)

    def _cell_done(self, flight: Flight, value: Any) -> None:
        job = self.cells[flight.id]
        failed = isinstance(value, Failure)
        if failed and self._retry("cell", job.id, value):
            self._submit_cell(job)
            return
        if not failed:
            self._task("cell", job.id, getattr(value, "selected", value).task)
        self.on_cell(job, value, self.attempts[job.id])
        self.progress.done("cell", job.id, failed=failed)

    def _count_trials(self, every: float = 5.0, force: bool = False) -> None:
        """Tell the progress view how many trials the searches have done (their records)."""
        now = time.monotonic()
        if not self.searches or (now - self.trials_counted_at < every and not force):
            return
        self.trials_counted_at = now
        done = sum(trial_store(self.search_dir, job.search_name).count() for job in self.searches)
        self.progress.trials(done)

    # --- events -------------------------------------------------------------------------------

    def _fly(self, ref: ray.ObjectRef, flight: Flight) -> None:
        self.flights[ref] = flight
        if flight.worker is not None:
            flight.worker.busy = True

    def _collect(self) -> None:
        """Wait (at most a second) for calls to finish, and handle every finished one."""
        if not self.flights:
            return
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
            failure = Failure.of(exc)
            log.warning("%s %s failed: %s", flight.kind, flight.id, failure.error)
            # a failed attempt still kept its resources busy: from submission (a side's worker
            # was idle then; a cell may have queued) to now
            record = TaskRecord(flight.submitted, time.time(), "", 0)
            self._task(f"{flight.kind} (failed)", flight.id, record)
            return failure

    def _retry(self, kind: str, name: str, failure: Failure) -> bool:
        """Whether to run `name` again after `failure`."""
        again = failure.retryable and self.attempts[name] <= self.max_retries
        if again:
            self.progress.retried(kind, name)
        return again

    def _task(self, kind: str, name: str, record: TaskRecord | None) -> None:
        times: dict[str, Any] = {"task_start": None, "task_end": None, "node_id": None}
        if record is not None:
            times = {"task_start": record.task_start, "task_end": record.task_end,
                     "node_id": record.node_id or None}
        self.tasks.append({"kind": kind, "id": name, **times})
