"""The remote calls of a grid run behind one small interface, so that the Ray loop
(tune.scheduler) only submits and waits, and a test hook can stand in for any call
(tune.faults.FaultyCalls).

`RayCalls` places them: datasets are prepared where the data files are, by a worker on a run on
this machine alone (`prepares_on_workers`), else by a task on the driver's node, with one of its
CPUs where it has one (a cluster's head may have none for tasks); a side is trained, and a cell
attacked, on a worker actor (a cell of a shape no worker can be held for runs as a task
anywhere with the attack's resources), and a searched cell's search runs as a task on the
driver's node (its trial records and Optuna study go to the output folder there): CPU-less when
it only drives Ray Tune, else with one of the node's CPUs where it has one.
"""

from __future__ import annotations

from typing import Any, Protocol

import ray
from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

from dlmia.sides import DatasetSpec, ServedLists
from tune.actors import attack_task, prepare_task, search_task
from tune.plan import CellJob, SideJob
from tune.pool import Worker
from tune.search import on_tune

Ref = Any  # a ray.ObjectRef


class Calls(Protocol):
    """What the Ray loop submits; each call returns the object reference(s) of its result."""

    prepares_on_workers: bool  # whether every worker is where the data files are

    def prepare(self, key: str, spec: DatasetSpec, worker: Worker | None) -> tuple[Ref, Ref]:
        """Prepare dataset `spec` on `worker` (or as a task without one): (its task record, the
        prepared dataset)."""
        ...

    def side(self, worker: Worker, job: SideJob, dataset: Ref, served: ServedLists | None) -> Ref:
        """Train side `job` on `worker` from the prepared `dataset` (or vectorise `served`)."""
        ...

    def cell(self, job: CellJob, sides: list[Ref], search_dir: str, worker: Worker | None) -> Ref:
        """Attack cell `job` with its sides (`job.side_ids`' outputs) on `worker` (or as a task
        without one), or search it."""
        ...


class RayCalls:
    """The calls as Ray tasks and actor methods, placed as the module docstring says."""

    def __init__(self, has_gpu: bool, local: bool) -> None:
        """`local`: the run's Ray is on this machine alone (it never gains a node), so its
        workers are where the data files are."""
        node, nodes = ray.get_runtime_context().get_node_id(), ray.nodes()
        self.here = NodeAffinitySchedulingStrategy(node, soft=False)
        resources = next(n["Resources"] for n in nodes if n["NodeID"] == node)
        self.cpus_here = 1 if resources.get("CPU", 0) >= 1 else 0
        self.has_gpu = has_gpu
        alive = [n["NodeID"] for n in nodes if n["Alive"]]
        self.prepares_on_workers = local and alive == [node]

    def prepare(self, key: str, spec: DatasetSpec, worker: Worker | None) -> tuple[Ref, Ref]:
        if worker is not None:
            method: Any = worker.handle.prepare.options(num_returns=2)
            record, dataset = method.remote(key, spec)
            return record, dataset
        task: Any = prepare_task.options(
            num_cpus=self.cpus_here, scheduling_strategy=self.here, name=f"prepare {key}"
        )
        record, dataset = task.remote(spec)  # two returns: two references
        return record, dataset

    def side(self, worker: Worker, job: SideJob, dataset: Ref, served: ServedLists | None) -> Ref:
        return worker.handle.build.remote(job, [dataset], served)  # a list: fetched, not resolved

    def cell(self, job: CellJob, sides: list[Ref], search_dir: str, worker: Worker | None) -> Ref:
        if worker is not None:
            return worker.handle.attack.remote(job, *sides)
        gpus = job.resources.num_gpus if self.has_gpu else 0.0
        if job.search is None:
            task: Any = attack_task.options(num_cpus=job.resources.num_cpus, num_gpus=gpus)
            return task.remote(job, *sides)
        cpus = 0 if on_tune(job.config.attack) else self.cpus_here
        search: Any = search_task.options(num_cpus=cpus, scheduling_strategy=self.here)
        return search.remote(job, search_dir, gpus, *sides)
