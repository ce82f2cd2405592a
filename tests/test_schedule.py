"""Every decision of a grid run's schedule (tune.schedule), with fakes and without Ray (not even
imported): which dataset is prepared and when it is let go, which side an idle worker gets, when
a cell is ready (its reference pool included), retries and their limits, and what a failure
takes down."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from types import SimpleNamespace

from tune.grid import Resources, parse_grid
from tune.plan import CellJob, SideJob, expand
from tune.schedule import Failure, Schedule, Shape
from tune.search import SearchConfig

ONE_CPU: Shape = (1.0, 0.0)
OOPS = Failure("RuntimeError: oops")
BAD_INPUT = Failure("ConfigError: bad", retryable=False)


@dataclass
class FakeWorker:
    """An idle worker as the schedule sees it."""

    shape: Shape = ONE_CPU
    holds: list[str] = field(default_factory=list)


def side(side_id: str, dataset: str, cpus: float = 1.0, gpus: float = 0.0) -> SideJob:
    """A side of `dataset` (only its id, dataset and resources matter to the schedule)."""
    resources = Resources(num_cpus=cpus, num_gpus=gpus)
    return SideJob(side_id, None, side_id, dataset, resources)  # type: ignore[arg-type]


def cell(cell_id: str, *side_ids: str, cpus: float = 1.0, searched: bool = False,
         attack: str = "biased") -> CellJob:  # fmt: skip
    """A cell of `attack` needing `side_ids` (shadow, target, then any reference sides),
    searched or not."""
    shadow, target, *references = side_ids
    search = SearchConfig() if searched else None
    config = SimpleNamespace(attack=attack)  # the only part of a cell's config the schedule reads
    return CellJob(cell_id, config, shadow, target, cell_id,  # type: ignore[arg-type]
                   Resources(num_cpus=cpus), search, tuple(references))  # fmt: skip


def schedule(
    sides: list[SideJob], cells: list[CellJob], *, retries: int = 1, cap: int = 10,
    prepare_cap: int = 2, side_cap: int = 0, on_workers: bool = False,
) -> Schedule:  # fmt: skip
    return Schedule(
        {job.id: job for job in sides}, cells,
        shape=lambda job: (job.resources.num_cpus, job.resources.num_gpus),
        max_retries=retries, cell_cap=cap, side_cap=side_cap, prepare_cap=prepare_cap,
        prepare_on_workers=on_workers,
    )  # fmt: skip


def build_all(plan: Schedule, worker: FakeWorker | None = None) -> list[str]:
    """Prepare every dataset and build every side, one at a time; the order they were built."""
    order = []
    while plan.pending:
        for key in plan.datasets_to_prepare():
            plan.on_prepared(key)
        job = plan.next_for(worker or FakeWorker())
        assert job is not None
        plan.on_side_built(job.id)
        order.append(job.id)
    return order


def test_datasets_are_prepared_in_the_order_sides_need_them_at_most_cap_at_once() -> None:
    sides = [side("a1", "A"), side("b1", "B"), side("c1", "C"), side("a2", "A")]
    plan = schedule(sides, [cell("x", "a1", "b1"), cell("y", "c1", "a2")], prepare_cap=2)
    assert plan.datasets_to_prepare() == ["A", "B"]
    assert plan.datasets_to_prepare() == []  # both still being prepared
    plan.on_prepared("A")
    assert plan.datasets_to_prepare() == ["C"]
    assert plan.attempts["A"] == 1 and plan.worker_demand() == {ONE_CPU: 2}  # a1 and a2


def test_a_dataset_is_let_go_only_after_its_last_side() -> None:
    sides = [side("a1", "A"), side("a2", "A"), side("b1", "B")]
    plan = schedule(sides, [cell("x", "a1", "a2"), cell("y", "b1", "b1")])
    for key in plan.datasets_to_prepare():
        plan.on_prepared(key)
    first = plan.next_for(FakeWorker())
    second = plan.next_for(FakeWorker())
    assert first is not None and second is not None and (first.id, second.id) == ("a1", "a2")
    plan.on_side_built("a1")
    assert plan.datasets_to_release() == []  # a2 still runs on A
    plan.on_side_built("a2")
    assert plan.datasets_to_release() == ["A"]
    assert plan.datasets_to_release() == []  # let go once
    assert plan.datasets_to_prepare() == []  # B is still held for b1


def test_a_worker_gets_a_side_of_its_shape_and_of_a_dataset_it_holds_first() -> None:
    sides = [side("a1", "A"), side("big", "A", cpus=2.0), side("b1", "B")]
    plan = schedule(sides, [cell("x", "a1", "big"), cell("y", "b1", "b1")])
    assert plan.next_for(FakeWorker()) is None  # nothing prepared yet
    for key in plan.datasets_to_prepare():
        plan.on_prepared(key)
    assert plan.worker_demand() == {ONE_CPU: 2, (2.0, 0.0): 1}
    job = plan.next_for(FakeWorker(holds=["B"]))
    assert job is not None and job.id == "b1"  # skips a1: it holds B's data already
    job = plan.next_for(FakeWorker(shape=(2.0, 0.0)))
    assert job is not None and job.id == "big"
    assert plan.next_for(FakeWorker(shape=(4.0, 0.0))) is None  # no side of that shape


def test_sides_are_built_in_the_order_cells_need_them() -> None:
    sides = [side(name, "A") for name in ("s1", "t1", "s2", "t2")]
    plan = schedule(sides, [cell("x", "s1", "t1"), cell("y", "s2", "t2"), cell("z", "s1", "t2")])
    assert build_all(plan) == ["s1", "t1", "s2", "t2"]


def test_a_cell_is_ready_when_every_side_it_needs_exists_its_reference_pool_included() -> None:
    plan = expand(parse_grid({
        "name": "pool", "datasets": {"syn": {"name": "synthetic"}},
        "recommenders": {"itemcf": {"name": "itemcf"}},
        "cells": [{"shadow": "syn.itemcf", "target": "syn.itemcf"}],
        "attacks": {"reference": {"settings": {"references": 3}}, "norm": {}},
    }))  # fmt: skip
    pooled = next(job for job in plan.cells if job.config.attack == "reference")
    assert len(pooled.side_ids) == 5  # shadow, target and three references
    state = Schedule(plan.sides, plan.cells, shape=lambda job: ONE_CPU, max_retries=1,
                     cell_cap=10)  # fmt: skip
    for key in state.datasets_to_prepare():
        state.on_prepared(key)
    built = []
    while (job := state.next_for(FakeWorker())) is not None:
        state.on_side_built(job.id)
        built.append(job.id)
        ready = [c.id for c in state.ready_cells()]
        if len(built) == 2:  # shadow and target: the norm cell runs, the reference cell waits
            assert ready == [c.id for c in plan.cells if c.config.attack == "norm"]
        elif len(built) < 5:
            assert ready == []
    assert built[:2] == [pooled.shadow, pooled.target] and len(built) == 5
    assert [c.id for c in state.ready_cells()] == []  # the pool's cell went with the last side
    assert pooled.id in state.running["cell"]


def test_cells_run_in_plan_order_at_most_cap_at_once() -> None:
    cells = [cell(f"c{i}", "s", "t") for i in range(5)]
    plan = schedule([side("s", "A"), side("t", "A")], cells, cap=2)
    build_all(plan)
    assert [job.id for job in plan.ready_cells()] == ["c0", "c1"]
    assert plan.ready_cells() == []
    plan.on_cell_done(cells[0])
    assert [job.id for job in plan.ready_cells()] == ["c2"]


def test_a_failed_side_is_retried_first_then_fails_its_cells_without_running_them() -> None:
    sides = [side("s", "A"), side("t", "A"), side("u", "A")]
    plan = schedule(sides, [cell("x", "s", "t"), cell("y", "u", "u")], retries=1)
    for key in plan.datasets_to_prepare():
        plan.on_prepared(key)
    job = plan.next_for(FakeWorker())
    assert job is not None and job.id == "s"
    assert plan.on_side_failed("s", OOPS)  # one retry, ahead of the other waiting sides
    assert plan.pending[0] == "s"
    again = plan.next_for(FakeWorker())
    assert again is not None and again.id == "s" and plan.attempts["s"] == 2
    assert not plan.on_side_failed("s", OOPS)  # out of tries
    blocked = [(job.id, why) for job, why in plan.blocked_cells()]
    assert blocked == [("x", "side s failed: RuntimeError: oops")]
    assert [c.id for c in plan.waiting] == ["y"]


def test_bad_input_is_never_retried() -> None:
    plan = schedule([side("s", "A"), side("t", "A")], [cell("x", "s", "t")], retries=3)
    for key in plan.datasets_to_prepare():
        plan.on_prepared(key)
    job = plan.next_for(FakeWorker())
    assert job is not None
    assert not plan.on_side_failed(job.id, BAD_INPUT)
    assert plan.failed == {"s": "ConfigError: bad"}


def test_a_failed_cell_runs_again_at_once_up_to_the_limit() -> None:
    job = cell("x", "s", "t")
    plan = schedule([side("s", "A"), side("t", "A")], [job, cell("y", "s", "t")], retries=2,
                    cap=1)  # fmt: skip
    build_all(plan)
    assert [c.id for c in plan.ready_cells()] == ["x"]
    for attempt in (1, 2):
        assert plan.on_cell_failed(job, OOPS)
        assert [c.id for c in plan.ready_cells()] == ["x"]  # before y: it was waiting first
        assert plan.attempts["x"] == attempt + 1
    assert not plan.on_cell_failed(job, OOPS)  # the first try and two retries
    ready = plan.ready_cells()
    assert [c.id for c in ready] == ["y"]
    plan.on_cell_done(ready[0])
    assert plan.finished


def test_a_dataset_that_cannot_be_prepared_fails_its_sides_after_its_retries() -> None:
    plan = schedule([side("a1", "A"), side("a2", "A")], [cell("x", "a1", "a2")], retries=1)
    assert plan.datasets_to_prepare() == ["A"]
    assert plan.on_prepare_failed("A", OOPS) == []  # prepared again on the next round
    assert plan.datasets_to_prepare() == ["A"]
    assert plan.on_prepare_failed("A", OOPS) == ["a1", "a2"]
    assert plan.failed["a1"] == "preparing its dataset failed: RuntimeError: oops"
    assert [job.id for job, _ in plan.blocked_cells()] == ["x"]
    assert plan.finished


def test_a_side_found_in_the_cache_counts_as_built_before_anything_runs() -> None:
    plan = schedule([side("s", "A"), side("t", "B")], [cell("x", "s", "t")])
    plan.on_side_built("s")
    assert plan.datasets_to_prepare() == ["B"]  # A is not needed any more
    plan.on_prepared("B")
    job = plan.next_for(FakeWorker())
    assert job is not None and job.id == "t"
    plan.on_side_built("t")
    ready = plan.ready_cells()
    assert [c.id for c in ready] == ["x"] and not plan.finished
    plan.on_cell_done(ready[0])
    assert plan.finished and plan.datasets_to_release() == ["B"]


def test_workers_are_wanted_for_waiting_sides_and_ready_cells_which_go_by_shape() -> None:
    sides = [side("s", "A"), side("t", "A"), side("u", "A")]
    cells = [cell("x", "s", "t"), cell("y", "u", "u"), cell("big", "s", "t", cpus=2.0)]
    plan = schedule(sides, cells)
    for key in plan.datasets_to_prepare():
        plan.on_prepared(key)
    for side_id in ("s", "t"):
        job = plan.next_for(FakeWorker())
        assert job is not None and job.id == side_id
        plan.on_side_built(side_id)
    assert plan.worker_demand() == {ONE_CPU: 2, (2.0, 0.0): 1}  # side u and cell x; cell big
    job = plan.next_for(FakeWorker())
    assert job is not None and job.id == "u"
    plan.on_side_built("u")
    worker = FakeWorker()
    first, second = plan.next_cell_for(worker), plan.next_cell_for(worker)
    assert first is not None and second is not None
    assert (first.id, second.id) == ("x", "y")  # in the plan's order, of the worker's shape
    assert plan.next_cell_for(worker) is None  # big wants a 2-CPU worker
    big = plan.next_cell_for(FakeWorker(shape=(2.0, 0.0)))
    assert big is not None and big.id == "big" and plan.running["cell"] == {"x", "y", "big"}


def test_cells_a_worker_runs_are_not_tasks_unless_no_worker_of_their_shape_can_be_held() -> None:
    cells = [cell("x", "s", "t"), cell("searched", "s", "t", searched=True),
             cell("big", "s", "t", cpus=2.0)]  # fmt: skip
    plan = schedule([side("s", "A"), side("t", "A")], cells)
    build_all(plan)
    held = [ONE_CPU]  # a 1-CPU worker is alive or fits; no 2-CPU one can be held
    assert [job.id for job in plan.ready_cells(held)] == ["searched", "big"]
    assert plan.worker_demand() == {ONE_CPU: 1}
    assert plan.next_cell_for(FakeWorker(shape=(2.0, 0.0))) is None  # big went as a task
    job = plan.next_cell_for(FakeWorker())
    assert job is not None and job.id == "x" and plan.worker_demand() == {}


def test_a_searched_cell_never_goes_to_a_worker_and_the_cell_cap_holds_for_both() -> None:
    cells = [cell("searched", "s", "t", searched=True), cell("x", "s", "t"), cell("y", "s", "t")]
    plan = schedule([side("s", "A"), side("t", "A")], cells, cap=2)
    build_all(plan)
    job = plan.next_cell_for(FakeWorker())
    assert job is not None and job.id == "x"  # the searched cell is skipped
    assert plan.worker_demand() == {ONE_CPU: 1}  # y: one room left under the cap
    assert [c.id for c in plan.ready_cells([ONE_CPU])] == ["searched"]
    assert plan.next_cell_for(FakeWorker()) is None and plan.worker_demand() == {}  # cap of 2
    plan.on_cell_done(cells[1])
    job = plan.next_cell_for(FakeWorker())
    assert job is not None and job.id == "y"


def test_side_cap_limits_the_sides_training_at_once() -> None:
    sides = [side(name, "A") for name in ("s1", "t1", "s2")]
    plan = schedule(sides, [cell("x", "s1", "t1"), cell("y", "s2", "s2")], side_cap=2)
    for key in plan.datasets_to_prepare():
        plan.on_prepared(key)
    assert plan.worker_demand() == {ONE_CPU: 2}  # three sides wait; two may train
    first, second = plan.next_for(FakeWorker()), plan.next_for(FakeWorker())
    assert first is not None and second is not None
    assert plan.next_for(FakeWorker()) is None and plan.worker_demand() == {}
    plan.on_side_built(first.id)
    job = plan.next_for(FakeWorker())
    assert job is not None and job.id == "s2"


def test_upcoming_shapes_are_those_of_sides_and_cells_that_wait_for_other_work() -> None:
    sides = [side("s", "A"), side("t", "B", cpus=2.0)]
    cells = [cell("x", "s", "t", cpus=4.0), cell("searched", "s", "t", searched=True)]
    plan = schedule(sides, cells)
    assert plan.upcoming_shapes() == {ONE_CPU, (2.0, 0.0), (4.0, 0.0)}  # not the search's
    for key in plan.datasets_to_prepare():
        plan.on_prepared(key)
    for shape in (ONE_CPU, (2.0, 0.0)):
        job = plan.next_for(FakeWorker(shape=shape))
        assert job is not None
        plan.on_side_built(job.id)
    assert plan.upcoming_shapes() == set()  # x is ready: in demand, not waiting
    assert plan.worker_demand() == {(4.0, 0.0): 1}


def test_no_worker_is_kept_for_cells_that_wait_only_for_the_cell_cap() -> None:
    """The searched sequential grid stalled with every CPU idle: searches held the cell cap
    and their trials waited for CPUs, which idle workers kept for the cells behind that cap
    held. A cell that waits only for the cap keeps no worker; one that waits for a side does."""
    sides = [side("s", "A"), side("t", "A"), side("u", "A")]
    cells = [cell("searched", "s", "t", searched=True), cell("x", "s", "t"), cell("y", "s", "u")]
    plan = schedule(sides, cells, cap=1)
    for key in plan.datasets_to_prepare():
        plan.on_prepared(key)
    for _ in range(2):  # s and t
        job = plan.next_for(FakeWorker())
        assert job is not None
        plan.on_side_built(job.id)
    assert [c.id for c in plan.ready_cells([ONE_CPU])] == ["searched"]  # x stays for a worker
    assert plan.next_cell_for(FakeWorker()) is None  # the cap is the search's
    assert plan.worker_demand() == {ONE_CPU: 1}  # u, whose cell y waits for it
    job = plan.next_for(FakeWorker())
    assert job is not None and job.id == "u"
    plan.on_side_built("u")
    assert plan.worker_demand() == {} and plan.upcoming_shapes() == set()  # x, y: the cap
    plan.on_cell_done(cells[0])
    assert plan.worker_demand() == {ONE_CPU: 1}


def test_a_worker_takes_the_ready_cell_expected_to_run_longest() -> None:
    cells = [cell("fast1", "s", "t", attack="norm"), cell("slow1", "s", "t", attack="dlmia"),
             cell("fast2", "s", "t", attack="norm"), cell("slow2", "s", "t", attack="dlmia"),
             cell("new", "s", "t", attack="biased")]  # fmt: skip
    plan = schedule([side("s", "A"), side("t", "A")], cells)
    build_all(plan)

    def next_id() -> str:
        job = plan.next_cell_for(FakeWorker())
        assert job is not None
        return job.id

    assert next_id() == "fast1"  # nothing timed yet: every attack counts as longest
    assert next_id() == "slow1"
    plan.on_cell_done(cells[0], 0.1)
    plan.on_cell_done(cells[1], 3.0)
    assert plan.expected_seconds(cells[3]) == 3.0
    assert next_id() == "new"  # biased is not timed yet: it goes first, so it is timed early
    plan.on_cell_done(cells[4], None)  # not timed (a search's time): biased is still unknown
    assert plan.expected_seconds(cells[4]) == math.inf
    assert [next_id(), next_id()] == ["slow2", "fast2"]


def test_where_workers_prepare_datasets_a_worker_of_the_first_sides_shape_takes_each() -> None:
    sides = [side("a1", "A", cpus=2.0), side("b1", "B"), side("c1", "C", gpus=0.5),
             side("a2", "A")]  # fmt: skip
    cells = [cell("x", "a1", "b1"), cell("y", "c1", "a2")]
    plan = schedule(sides, cells, prepare_cap=3, on_workers=True)
    assert plan.worker_demand() == {(2.0, 0.0): 1, ONE_CPU: 1}  # A by a1's shape, B by b1's
    assert plan.datasets_to_prepare() == ["C"]  # a GPU worker would fit C's vectors on its GPU
    assert plan.next_prepare_for(FakeWorker()) == "B"
    assert plan.next_prepare_for(FakeWorker()) is None  # A wants a 2-CPU worker
    assert plan.next_prepare_for(FakeWorker(shape=(2.0, 0.0))) == "A"
    assert plan.worker_demand() == {} and plan.running["prepare"] == {"A", "B", "C"}
    plan.on_prepared("B")
    preparer = FakeWorker(holds=["B"])
    job = plan.next_for(preparer)
    assert job is not None and job.id == "b1"  # it trains the side of the dataset it holds
    off = schedule(sides, cells, prepare_cap=3)
    assert off.next_prepare_for(FakeWorker()) is None
    assert off.datasets_to_prepare() == ["A", "B", "C"]  # all as tasks
