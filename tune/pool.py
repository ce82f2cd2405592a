"""The pool of side workers: actors grouped by resource shape, started and retired on demand.

Workers of one shape (num_cpus, num_gpus) are started while sides of that shape wait and the
cluster has room beside the other shapes' workers; a worker with no side of its shape left
retires at once, which frees its resources for the cells' attack tasks.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from typing import Any

import ray

from tune.actors import MAX_DATASETS, SideWorkerActor
from tune.schedule import Shape


@dataclass(eq=False)
class Worker:
    """A side-worker actor and what the driver knows about it."""

    handle: Any
    shape: Shape
    busy: bool = False
    holds: list[str] = field(default_factory=list)  # dataset keys it keeps, least recent first

    def keeps(self, dataset_key: str) -> None:
        """Record that the worker now keeps `dataset_key` (mirrors the actor's LRU)."""
        if dataset_key in self.holds:
            self.holds.remove(dataset_key)
        self.holds = [*self.holds, dataset_key][-MAX_DATASETS:]


class WorkerPool:
    """Side workers of every shape on the connected cluster, at most `limit` (0: no limit)."""

    def __init__(self, limit: int = 0) -> None:
        self.limit = limit
        self.workers: list[Worker] = []

    def idle(self) -> list[Worker]:
        return [w for w in self.workers if not w.busy]

    def resize(self, waiting: Counter[Shape]) -> None:
        """Retire idle workers of shapes nobody waits for; start workers for `waiting` sides."""
        for worker in [w for w in self.idle() if w.shape not in waiting]:
            self.remove(worker)
        for shape, count in waiting.items():
            alive = sum(w.shape == shape for w in self.workers)
            for _ in range(min(count, self.capacity(shape)) - alive):
                options = {"num_cpus": shape[0], "num_gpus": shape[1]}
                handle = SideWorkerActor.options(**options).remote(max(1, int(shape[0])))
                self.workers.append(Worker(handle, shape))

    def capacity(self, shape: Shape) -> int:
        """How many workers of `shape` fit on the cluster beside the other shapes' workers."""
        total = ray.cluster_resources()
        others = [w for w in self.workers if w.shape != shape]
        cpus = total.get("CPU", 0) - sum(w.shape[0] for w in others)
        gpus = total.get("GPU", 0) - sum(w.shape[1] for w in others)
        fits = int(cpus // shape[0])
        if shape[1] > 0:
            fits = min(fits, int(gpus // shape[1]))
        if self.limit:
            fits = min(fits, self.limit - len(others))
        return max(0, fits)

    def remove(self, worker: Worker) -> None:
        """Stop `worker` (if still alive) and forget it."""
        if worker in self.workers:
            self.workers.remove(worker)
            ray.kill(worker.handle)

    def stop(self) -> None:
        for worker in list(self.workers):
            self.remove(worker)
