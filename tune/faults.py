"""A test hook: make chosen sides or cells fail, to exercise retries and failure records.

DLMIA_GRID_FAULTS="side:GLOB:N,cell:GLOB:N" fails the first N attempts (or `always`) of every
side or cell whose id matches GLOB. Only the driver reads the variable: the runner then wraps
its remote calls in `FaultyCalls`, which submits a task that raises in place of each chosen
attempt, so the hook needs nothing on the workers and nothing in the scheduler.
"""

from __future__ import annotations

import fnmatch
import os
from collections import Counter
from typing import TYPE_CHECKING

from dlmia.errors import ConfigError

if TYPE_CHECKING:
    from dlmia.sides import DatasetSpec, ServedLists
    from tune.calls import Calls, Ref
    from tune.plan import CellJob, SideJob
    from tune.pool import Worker

FAULTS_ENV = "DLMIA_GRID_FAULTS"
ALWAYS = 1 << 30


class Faults:
    """The failures `FAULTS_ENV` asks for (none when it is unset)."""

    def __init__(self, text: str | None = None) -> None:
        text = os.environ.get(FAULTS_ENV, "") if text is None else text
        self.rules: list[tuple[str, str, int]] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            kind, _, rest = item.partition(":")
            pattern, _, count = rest.rpartition(":")
            valid = count.isdigit() or count == "always"
            if kind not in ("side", "cell") or not pattern or not valid:
                raise ConfigError(
                    f"{FAULTS_ENV}: {item!r}: expected side:GLOB:N or cell:GLOB:N "
                    "(N: a count, or always)"
                )
            self.rules.append((kind, pattern, ALWAYS if count == "always" else int(count)))

    def __call__(self, kind: str, name: str, attempt: int) -> bool:
        """Whether attempt `attempt` (from 1) of side or cell `name` is to fail."""
        return any(
            k == kind and fnmatch.fnmatchcase(name, p) and attempt <= n for k, p, n in self.rules
        )


class FaultyCalls:
    """`calls` with the failures `faults` asks for (the same interface, tune.calls.Calls)."""

    def __init__(self, calls: Calls, faults: Faults) -> None:
        self.calls, self.faults = calls, faults
        self.prepares_on_workers = calls.prepares_on_workers
        self.attempts: Counter[str] = Counter()  # side or cell id -> calls made for it

    def prepare(self, key: str, spec: DatasetSpec, worker: Worker | None) -> tuple[Ref, Ref]:
        return self.calls.prepare(key, spec, worker)

    def side(self, worker: Worker, job: SideJob, dataset: Ref, served: ServedLists | None) -> Ref:
        return self._failing("side", job.id) or self.calls.side(worker, job, dataset, served)

    def cell(self, job: CellJob, sides: list[Ref], search_dir: str, worker: Worker | None) -> Ref:
        return self._failing("cell", job.id) or self.calls.cell(job, sides, search_dir, worker)

    def _failing(self, kind: str, name: str) -> Ref | None:
        """A call that raises, in place of this attempt of side or cell `name`, when the rules
        ask for one; else None."""
        self.attempts[name] += 1
        if not self.faults(kind, name, self.attempts[name]):
            return None
        from tune.actors import injected_failure

        return injected_failure.remote(kind, name)
