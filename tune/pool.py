"""The pool of workers: actors grouped by resource shape, started and retired on demand.

A worker trains sides and attacks cells (tune.actors.GridWorker). Workers of one shape
(num_cpus, num_gpus) are started while more sides or cells of that shape can start than idle
workers of it, and the cluster has room beside the other shapes' workers. A worker with nothing
of its shape left retires at once, which frees its resources for searches' trials and other
shapes; one whose next work waits for other sides stays, unless another shape needs the room.
A worker's process imports torch and dlmia once, however many sides and cells it runs.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import ray

from tune.actors import MAX_DATASETS, GridWorkerActor
from tune.schedule import Shape


@dataclass(eq=False)
class Worker:
    """A worker actor and what the driver knows about it."""

    handle: Any
    shape: Shape
    busy: bool = False
    holds: list[str] = field(default_factory=list)  # dataset keys it keeps, least recent first

    def keeps(self, dataset_key: str) -> None:
        """Record that the worker now keeps `dataset_key` (mirrors the actor's LRU)."""
        if dataset_key in self.holds:
            self.holds.remove(dataset_key)
        self.holds = [*self.holds, dataset_key][-MAX_DATASETS:]

    def lets_go(self) -> None:
        """Record that the worker keeps no dataset now (it went on to cells)."""
        self.holds = []


class WorkerPool:
    """Workers of every shape on the connected cluster."""

    def __init__(self) -> None:
        self.workers: list[Worker] = []

    def idle(self) -> list[Worker]:
        return [w for w in self.workers if not w.busy]

    def resize(self, demand: Counter[Shape], upcoming: set[Shape]) -> None:
        """Start workers where `demand` (sides and cells that can start, by shape) exceeds the
        idle ones, as far as the cluster has room. An idle worker with no work now retires,
        unless work of its shape is `upcoming` (sides or cells that wait for other sides) and no
        shape in demand lacks room: a worker kept is a process started once."""
        starved = any(self._wanting(shape, count) > self._room(shape)
                      for shape, count in demand.items())  # fmt: skip
        for worker in self.idle():
            if worker.shape not in demand and (worker.shape not in upcoming or starved):
                self.remove(worker)
        for shape, count in demand.items():
            for _ in range(min(self._wanting(shape, count), self._room(shape))):
                options = {"num_cpus": shape[0], "num_gpus": shape[1]}
                handle = GridWorkerActor.options(**options).remote(max(1, int(shape[0])))
                self.workers.append(Worker(handle, shape))

    def _wanting(self, shape: Shape, count: int) -> int:
        """How many of `count` calls of `shape` find no idle worker."""
        return count - sum(not w.busy for w in self.workers if w.shape == shape)

    def _room(self, shape: Shape) -> int:
        """How many more workers of `shape` the cluster has room for now."""
        return self.capacity(shape) - sum(w.shape == shape for w in self.workers)

    def can_hold(self, shape: Shape) -> bool:
        """Whether a worker of `shape` is alive or fits on the cluster."""
        return any(w.shape == shape for w in self.workers) or self.capacity(shape) > 0

    def capacity(self, shape: Shape) -> int:
        """How many workers of `shape` fit on the cluster beside the other shapes' workers."""
        total = ray.cluster_resources()
        others = [w for w in self.workers if w.shape != shape]
        cpus = total.get("CPU", 0) - sum(w.shape[0] for w in others)
        gpus = total.get("GPU", 0) - sum(w.shape[1] for w in others)
        fits = int(cpus // shape[0])
        if shape[1] > 0:
            fits = min(fits, int(gpus // shape[1]))
        return max(0, fits)

    def remove(self, worker: Worker) -> None:
        """Stop `worker` (if still alive) and forget it."""
        if worker in self.workers:
            self.workers.remove(worker)
            ray.kill(worker.handle)

    def stop(self) -> None:
        for worker in list(self.workers):
            self.remove(worker)
