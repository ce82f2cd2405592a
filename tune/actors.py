"""Ray remote code: dataset preparation, the grid's workers, and the cell search task.

A dataset is prepared once (load, filter, split, item vectors) where the data files are: on a
run on this machine alone by a worker (`GridWorker.prepare`), which then trains its sides, else
by `prepare_task`, which the scheduler pins to the driver's node. The prepared dataset goes
into the object store, and every other worker fetches it from there, so no worker node needs
the data. A worker is an actor with a side's or a cell's resources: it prepares datasets,
trains sides, keeping the prepared datasets it has used, so each further side of a dataset
skips the fetch, and attacks cells (their side outputs: shadow, target, and a reference pool's,
which Ray resolves from the object store). Its process imports torch and dlmia once: a cell on
a worker that has built the last sides starts at once, where a fresh task's process would
spend seconds on imports first.
A cell with a search runs `search_task` instead, on the driver's node (its trial records and
Optuna study go to the output folder there): for DL-MIA a Tune driver that holds no CPU itself
and runs the cell's trials, each with the attack's resources, anywhere on the cluster; for an
attack that learns nothing from the shadow side, the trials themselves (tune.search).
"""

from __future__ import annotations

import os
import time
from collections import OrderedDict
from dataclasses import replace

import ray
import torch

from dlmia.cell import attack_cell
from dlmia.records import CellResult, TaskRecord
from dlmia.sides import (
    DatasetSpec,
    PreparedDataset,
    ServedLists,
    SideOutput,
    build_side,
    prepare_dataset,
)
from tune.plan import CellJob, SideJob
from tune.search import SearchOutcome, on_tune

MAX_DATASETS = 2  # prepared datasets one worker keeps (least recently used goes first)


class InjectedFailure(RuntimeError):
    """Raised on purpose (DLMIA_GRID_FAULTS) to exercise retries and failure records."""


@ray.remote(num_cpus=0, max_retries=0)
def injected_failure(kind: str, name: str) -> None:
    """Stands in for a side's or cell's call that tune.faults says must fail."""
    raise InjectedFailure(f"injected failure in {kind} {name} (DLMIA_GRID_FAULTS)")


def task_record(started: float) -> TaskRecord:
    """Where and when this task ran, from `started` (wall clock) to now."""
    node = ray.get_runtime_context().get_node_id()
    return TaskRecord(started, time.time(), node, os.getpid())


def prepare(spec: DatasetSpec) -> tuple[TaskRecord, PreparedDataset]:
    """Prepare dataset `spec` with one torch thread, wherever it runs (the same dataset, bit for
    bit): (where it ran, for the driver; the dataset, for the object store)."""
    started, threads = time.time(), torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        data = prepare_dataset(spec)
    finally:
        torch.set_num_threads(threads)
    return task_record(started), data


@ray.remote(num_returns=2, max_retries=0)
def prepare_task(spec: DatasetSpec) -> tuple[TaskRecord, PreparedDataset]:
    """`prepare` as a task: where no worker prepares the dataset (tune.schedule)."""
    return prepare(spec)


class GridWorker:
    """Prepares datasets and trains sides, keeping the prepared datasets it has used (see
    MAX_DATASETS), and attacks cells."""

    def __init__(self, num_threads: int) -> None:
        torch.set_num_threads(num_threads)
        self.datasets: OrderedDict[str, PreparedDataset] = OrderedDict()

    def prepare(self, key: str, spec: DatasetSpec) -> tuple[TaskRecord, PreparedDataset]:
        """`prepare` dataset `spec` (its key `key`), and keep it for the sides this worker
        trains next."""
        record, data = prepare(spec)
        self._keep(key, data)
        return record, data

    def build(
        self,
        job: SideJob,
        dataset: list[ray.ObjectRef],
        served: ServedLists | None = None,
    ) -> SideOutput:
        """Train side `job` on its prepared dataset (held here, else fetched from the object store
        through `dataset[0]`; never from a data file); with `served` lists (of the same side
        under other vector settings) only vectorise them."""
        started = time.time()
        data = self.datasets.get(job.dataset_key)
        if data is None:
            data = ray.get(dataset[0])
        self._keep(job.dataset_key, data)
        side = build_side(data, job.spec, served)
        return replace(side, info=replace(side.info, task=task_record(started)))

    def attack(
        self, job: CellJob, shadow: SideOutput, target: SideOutput, *references: SideOutput
    ) -> CellResult:
        """Fit cell `job`'s attack on the shadow side and score the target side (with the
        reference pool's sides, for an attack that has one). A worker that attacks has built
        its sides: it lets its prepared datasets go."""
        self.datasets.clear()
        return attack(job, shadow, target, references)

    def _keep(self, key: str, data: PreparedDataset) -> None:
        self.datasets[key] = data
        self.datasets.move_to_end(key)
        while len(self.datasets) > MAX_DATASETS:
            self.datasets.popitem(last=False)


GridWorkerActor = ray.remote(max_restarts=0)(GridWorker)


def attack(
    job: CellJob, shadow: SideOutput, target: SideOutput, references: tuple[SideOutput, ...]
) -> CellResult:
    """Cell `job`'s attack, fitted on the shadow side, scored on the target side (with the
    reference pool's sides, for an attack that has one), with where and when it ran."""
    started = time.time()
    torch.set_num_threads(max(1, int(job.resources.num_cpus)))
    config = job.config
    result = attack_cell(
        shadow, target, config.attack, config.attack_settings, config.seed, config.device,
        references,
    )  # fmt: skip
    return replace(result, task=task_record(started))


@ray.remote(max_retries=0)
def attack_task(
    job: CellJob, shadow: SideOutput, target: SideOutput, *references: SideOutput
) -> CellResult:
    """`attack` as a task: for a cell of a shape no worker can be held for (tune.schedule)."""
    return attack(job, shadow, target, references)


@ray.remote(max_retries=0)
def search_task(
    job: CellJob, storage_dir: str, gpus: float, shadow: SideOutput, target: SideOutput,
    *references: SideOutput,
) -> SearchOutcome:
    """Search cell `job`'s attack settings (tune.search), on Ray Tune (each trial reserving
    the attack's CPUs and `gpus`) or here; resumes the search found in `storage_dir` under the
    cell's search name."""
    started = time.time()
    assert job.search is not None
    config = job.config
    if on_tune(config.attack):
        from tune.search_tune import search_on_tune

        outcome = search_on_tune(
            shadow, target, job.search, seed=config.seed, storage_dir=storage_dir,
            name=job.search_name, fixed=config.attack_settings, device=config.device,
            resources=(job.resources.num_cpus, gpus),
        )  # fmt: skip
    else:
        from tune.search_local import search_in_process

        torch.set_num_threads(max(1, int(job.resources.num_cpus)))
        outcome = search_in_process(
            config.attack, shadow, target, references, job.search, seed=config.seed,
            storage_dir=storage_dir, name=job.search_name, fixed=config.attack_settings,
            device=config.device,
        )  # fmt: skip
    return replace(outcome, selected=replace(outcome.selected, task=task_record(started)))
