"""What a grid run does next: the scheduler's decisions, kept apart from Ray (which only does).

`Schedule` holds the bookkeeping of one run: the sides still to train (in the order the cells
need them), the datasets being prepared or held in the object store, what is running, how
often each side, dataset and cell was tried, what failed. The Ray loop (tune.scheduler) asks it
what to submit (`datasets_to_prepare`, `worker_demand`, `next_prepare_for(worker)`,
`next_for(worker)`, `next_cell_for(worker)`, `ready_cells`) and tells it how each call ended
(`on_*`); it answers with plain values and never touches Ray, so every decision is tested with
fakes (tests/test_schedule.py):

- a dataset is prepared while a waiting side needs it, at most `prepare_cap` at once, and let
  go (`datasets_to_release`) once no waiting or running side needs it. Where the workers are
  where the data files are (`prepare_on_workers`: a run on this machine alone), a worker of its
  first waiting side's shape prepares it (`next_prepare_for`) and then trains its sides,
  holding it already; else, and for a shape with GPUs (whose worker would fit the item vectors
  on its GPU, not as the CPU task does), a task prepares it (`datasets_to_prepare`);
- an idle worker gets the first waiting side of its shape whose dataset is prepared, one of a
  dataset it holds first, while fewer than `side_cap` sides train (0: no limit); sides wait in
  the order the cells need them, a retried side first;
- a cell is ready when every side it needs exists (shadow, target and, for the reference
  attack, its pool), at most `cell_cap` run at once; a cell one of whose sides failed is
  failed without running;
- a ready cell without a search runs on an idle worker of its shape (whose process has its
  imports done, so the cell starts at once), sides first; one runs as a task only where no
  worker of its shape can be held. Workers are wanted (`worker_demand`) for the waiting sides
  of prepared datasets and for these ready cells, so a worker whose last side is built goes
  straight on to cells; an idle worker whose cells wait for sides is kept, not one whose cells
  wait only for the cell cap (which searches waiting for its CPU may hold). A worker takes the
  ready cell expected to run longest (the mean time of its attack's finished cells; an attack
  not yet timed first, the plan's order among equals): the run then ends on short cells, not
  on a long one beside an idle CPU. Cells run as tasks go in the plan's order;
- a call that raised is tried again up to `max_retries` times, unless it failed on bad input.
"""

from __future__ import annotations

import math
from collections import Counter, defaultdict
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal, Protocol

from tune.plan import CellJob, SideJob

Kind = Literal["prepare", "side", "cell"]
Shape = tuple[float, float]  # (num_cpus, num_gpus) a worker reserves


@dataclass(frozen=True)
class Failure:
    """A call that raised."""

    error: str  # one line: the cause's exception type and message
    retryable: bool = True  # False for bad input (a DlmiaError), which would only fail again
    traceback: str = ""  # the whole remote traceback


class Holder(Protocol):
    """What the schedule knows of an idle worker."""

    @property
    def shape(self) -> Shape: ...

    @property
    def holds(self) -> list[str]: ...  # dataset keys it keeps


class Schedule:
    """The bookkeeping of one run's sides and cells (see the module docstring)."""

    def __init__(
        self,
        sides: Mapping[str, SideJob],
        cells: Sequence[CellJob],
        *,
        shape: Callable[[SideJob | CellJob], Shape],
        max_retries: int,
        cell_cap: int,
        side_cap: int = 0,
        prepare_cap: int = 2,
        prepare_on_workers: bool = False,
    ) -> None:
        self.sides, self.shape = sides, shape
        self.max_retries, self.cell_cap, self.prepare_cap = max_retries, cell_cap, prepare_cap
        self.side_cap, self.prepare_on_workers = side_cap, prepare_on_workers
        self.waiting = list(cells)  # cells not running yet, in the plan's order
        self.pending = list(dict.fromkeys(s for job in cells for s in job.side_ids))
        self.built: set[str] = set()  # sides that exist (trained or from the cache)
        self.failed: dict[str, str] = {}  # side id -> why it failed
        self.running: dict[Kind, set[str]] = {"prepare": set(), "side": set(), "cell": set()}
        self.prepared: set[str] = set()  # dataset keys held in the object store
        self.attempts: Counter[str] = Counter()  # dataset key, side id or cell id -> tries
        self.timed: defaultdict[str, list[float]] = defaultdict(list)  # attack -> cell seconds

    @property
    def finished(self) -> bool:
        """Whether nothing waits and nothing runs."""
        return not (self.pending or self.waiting or any(self.running.values()))

    # --- datasets -----------------------------------------------------------------------------

    def datasets_to_prepare(self) -> list[str]:
        """The datasets to prepare now as tasks (now being prepared): needed by waiting sides,
        neither prepared nor being prepared, at most `prepare_cap` at once, and not for a
        worker to prepare (`next_prepare_for`)."""
        on_workers = self._worker_prepares()
        chosen = [key for key in self._to_prepare() if key not in on_workers]
        self._start("prepare", chosen)
        return chosen

    def next_prepare_for(self, worker: Holder) -> str | None:
        """The dataset idle `worker` prepares next (now being prepared), or None: of the datasets
        to prepare now that a worker prepares, the first whose first waiting side has the
        worker's shape."""
        for key, shape in self._worker_prepares().items():
            if shape == worker.shape:
                self._start("prepare", [key])
                return key
        return None

    def on_prepared(self, key: str) -> None:
        self.running["prepare"].discard(key)
        self.prepared.add(key)

    def on_prepare_failed(self, key: str, failure: Failure) -> list[str]:
        """Prepare `key` again on the next round, or, out of tries, fail every waiting side of
        it; the sides failed."""
        self.running["prepare"].discard(key)
        if self._retry(key, failure):
            return []
        lost = [s for s in self.pending if self.sides[s].dataset_key == key]
        for side_id in lost:
            self.pending.remove(side_id)
            self.failed[side_id] = f"preparing its dataset failed: {failure.error}"
        return lost

    def datasets_to_release(self) -> list[str]:
        """Prepared datasets no waiting or running side needs any more (forgotten here)."""
        needed = {self.sides[s].dataset_key for s in (*self.pending, *self.running["side"])}
        gone = sorted(self.prepared - needed)
        self.prepared -= set(gone)
        return gone

    # --- workers ------------------------------------------------------------------------------

    def worker_demand(self) -> Counter[Shape]:
        """How many workers of each shape have work now: the waiting sides of prepared datasets
        (as many as `side_cap` leaves room for), the ready cells a worker runs (as many as
        `cell_cap` leaves room for) and the datasets a worker prepares."""
        demand = Counter(self.shape(job) for job in self._sides_ready()[: self._side_room()])
        demand.update(self.shape(job) for job in self._ready(self._worker_cells()))
        demand.update(self._worker_prepares().values())
        return demand

    def upcoming_shapes(self) -> set[Shape]:
        """The shapes of the work that waits for other work (a side for its dataset, a cell for
        its sides): a worker of one of them will have work later. Not a ready cell that waits
        only for the cell cap: the cells holding the cap may be searches whose trials wait for
        the CPU an idle worker would keep, and the run would stall with every CPU idle."""
        cells = [job for job in self._worker_cells() if not self._sides_built(job)]
        return {self.shape(self.sides[s]) for s in self.pending} | {self.shape(j) for j in cells}

    # --- sides --------------------------------------------------------------------------------

    def next_for(self, worker: Holder) -> SideJob | None:
        """The side idle `worker` trains next (now running), or None: the first waiting side of
        its shape whose dataset is prepared, one of a dataset it holds first, while fewer than
        `side_cap` sides train."""
        ready = [job for job in self._sides_ready() if self.shape(job) == worker.shape]
        held = [job for job in ready if job.dataset_key in worker.holds]
        if not ready or not self._side_room():
            return None
        job = (held or ready)[0]
        self.pending.remove(job.id)
        self._start("side", [job.id])
        return job

    def on_side_built(self, side_id: str) -> None:
        """Side `side_id` exists (trained now, or found in the cache before it ran)."""
        self.running["side"].discard(side_id)
        if side_id in self.pending:
            self.pending.remove(side_id)
        self.built.add(side_id)

    def on_side_failed(self, side_id: str, failure: Failure) -> bool:
        """Whether `side_id` is tried again (first among the waiting sides); else it failed."""
        self.running["side"].discard(side_id)
        if self._retry(side_id, failure):
            self.pending.insert(0, side_id)
            return True
        self.failed[side_id] = failure.error
        return False

    # --- cells --------------------------------------------------------------------------------

    def blocked_cells(self) -> list[tuple[CellJob, str]]:
        """Waiting cells that cannot run because a side of theirs failed, with why (they leave
        the schedule: each is failed without running)."""
        blocked = []
        for job in list(self.waiting):
            lost = [s for s in job.side_ids if s in self.failed]
            if lost:
                self.waiting.remove(job)
                blocked.append((job, f"side {lost[0]} failed: {self.failed[lost[0]]}"))
        return blocked

    def next_cell_for(self, worker: Holder) -> CellJob | None:
        """The cell idle `worker` runs next (now running), or None: of the ready cells without a
        search of its shape, the one expected to run longest (`expected_seconds`; the plan's
        order among equals), while fewer than `cell_cap` run."""
        ready = [job for job in self._worker_cells([worker.shape]) if self._sides_built(job)]
        if not ready or not self._cell_room():
            return None
        job = max(ready, key=self.expected_seconds)
        self._take([job])
        return job

    def expected_seconds(self, job: CellJob) -> float:
        """How long cell `job` should run: the mean time of its attack's finished cells (see
        `on_cell_done`), or infinity before one is timed, so that each attack is timed early."""
        times = self.timed.get(job.config.attack)
        return sum(times) / len(times) if times else math.inf

    def ready_cells(self, worker_shapes: Collection[Shape] = ()) -> list[CellJob]:
        """The cells to submit as tasks now (now running): waiting ones whose every side exists,
        in the plan's order, while fewer than `cell_cap` run; not the cells a worker runs
        (`next_cell_for`: those without a search, of a shape in `worker_shapes`)."""
        on_workers = {job.id for job in self._worker_cells(worker_shapes)}
        ready = self._ready([job for job in self.waiting if job.id not in on_workers])
        self._take(ready)
        return ready

    def on_cell_done(self, job: CellJob, seconds: float | None = None) -> None:
        """Cell `job` ended; it ran for `seconds` (None: not timed, e.g. a search, whose time
        says nothing of a single fit's)."""
        self.running["cell"].discard(job.id)
        if seconds is not None:
            self.timed[job.config.attack].append(seconds)

    def on_cell_failed(self, job: CellJob, failure: Failure) -> bool:
        """Whether cell `job` runs again (it is ready again at once); else it failed."""
        self.running["cell"].discard(job.id)
        if self._retry(job.id, failure):
            self.waiting.insert(0, job)
            return True
        return False

    # --- helpers ------------------------------------------------------------------------------

    def _to_prepare(self) -> list[str]:
        """The datasets waiting sides need, neither prepared nor being prepared, in the order the
        sides wait, as many as `prepare_cap` leaves room for."""
        needed = dict.fromkeys(self.sides[s].dataset_key for s in self.pending)
        fresh = [k for k in needed if k not in self.prepared and k not in self.running["prepare"]]
        return fresh[: max(self.prepare_cap - len(self.running["prepare"]), 0)]

    def _worker_prepares(self) -> dict[str, Shape]:
        """The datasets to prepare now that a worker prepares (see the module docstring), each
        with the shape of that worker: its first waiting side's, without GPUs."""
        if not self.prepare_on_workers:
            return {}
        keys = set(self._to_prepare())
        first: dict[str, Shape] = {}
        for job in (self.sides[s] for s in self.pending):
            if job.dataset_key in keys:
                first.setdefault(job.dataset_key, self.shape(job))
        return {key: shape for key, shape in first.items() if shape[1] == 0}

    def _sides_ready(self) -> list[SideJob]:
        """The waiting sides whose dataset is prepared, in order."""
        sides = (self.sides[s] for s in self.pending)
        return [job for job in sides if job.dataset_key in self.prepared]

    def _side_room(self) -> int:
        """How many more sides may train now (`side_cap`; 0: any number)."""
        if not self.side_cap:
            return len(self.pending)
        return max(self.side_cap - len(self.running["side"]), 0)

    def _worker_cells(self, shapes: Collection[Shape] | None = None) -> list[CellJob]:
        """The waiting cells without a search (of a shape in `shapes`, if given)."""
        return [job for job in self.waiting if job.search is None
                and (shapes is None or self.shape(job) in shapes)]  # fmt: skip

    def _ready(self, cells: list[CellJob]) -> list[CellJob]:
        """Those of `cells` whose every side exists, as many as `cell_cap` leaves room for."""
        return [job for job in cells if self._sides_built(job)][: self._cell_room()]

    def _sides_built(self, job: CellJob) -> bool:
        return set(job.side_ids) <= self.built

    def _cell_room(self) -> int:
        """How many more cells may run now (`cell_cap`)."""
        return max(self.cell_cap - len(self.running["cell"]), 0)

    def _take(self, cells: list[CellJob]) -> None:
        for job in cells:
            self.waiting.remove(job)
        self._start("cell", [job.id for job in cells])

    def _start(self, kind: Kind, names: list[str]) -> None:
        self.running[kind].update(names)
        self.attempts.update(names)

    def _retry(self, name: str, failure: Failure) -> bool:
        return failure.retryable and self.attempts[name] <= self.max_retries
