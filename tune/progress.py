"""Progress of a grid run: sides and cells done, running and failed, search trials, and an ETA.

On a terminal a live table (rich) redraws in place; otherwise every finished side or cell is one
plain line on stderr, which reads well in a log file or CI output.
"""

from __future__ import annotations

import sys
import time
from dataclasses import dataclass, field
from typing import IO, Any

from rich.console import Console
from rich.live import Live
from rich.table import Table

TRIAL_LINE_SECONDS = 30.0  # plain mode: at most one line per this many seconds about trials


@dataclass
class Counts:
    """The state of one kind of work (sides or cells)."""

    total: int = 0
    done: int = 0  # finished in this run
    reused: int = 0  # from the cache (sides) or an earlier run (cells)
    running: set[str] = field(default_factory=set)  # names in flight
    failed: int = 0
    retries: int = 0


class Progress:
    """Receives the scheduler's events and shows them (see the module docstring)."""

    def __init__(self, live: bool = False, stream: IO[str] | None = sys.stderr) -> None:
        self.live = live and stream is not None
        self.stream = stream
        self.sides, self.cells = Counts(), Counts()
        self.trials_done, self.trials_total = 0, 0  # of this run's searches
        self._trial_line_at = float("-inf")
        self.started_at = time.perf_counter()
        self._view: Live | None = None

    @classmethod
    def auto(cls) -> Progress:
        """A live view when stderr is a terminal, plain lines otherwise."""
        return cls(live=sys.stderr.isatty())

    def begin(self, sides: int, cells: int, skipped: int, trials: int = 0) -> None:
        """Totals of this run: sides to make ready, cells to run, cells already finished, and
        the trials its searched cells plan."""
        self.sides = Counts(total=sides)
        self.cells = Counts(total=cells + skipped, reused=skipped)
        self.trials_done, self.trials_total = 0, trials
        self.started_at = time.perf_counter()
        searches = f", {trials} search trials" if trials else ""
        self._line(
            f"{sides} sides to make ready, {cells} cells to run ({skipped} already done){searches}"
        )

    def trials(self, done: int) -> None:
        """How many search trials are done so far (resumed searches' earlier ones too); a
        plain line when the count moved, at most every `TRIAL_LINE_SECONDS` (and at the end)."""
        moved, self.trials_done = done != self.trials_done, done
        now = time.perf_counter()
        due = now - self._trial_line_at >= TRIAL_LINE_SECONDS or done == self.trials_total
        if moved and due:
            self._trial_line_at = now
            self._line(f"search trials done ({self._summary()})")

    def started(self, kind: str, name: str) -> None:
        self._counts(kind).running.add(name)

    def retried(self, kind: str, name: str) -> None:
        counts = self._counts(kind)
        counts.retries += 1
        self._line(f"{kind} {name} failed; retrying")

    def done(self, kind: str, name: str, cached: bool = False, failed: bool = False) -> None:
        """A side or cell finished (from the cache, failed, or computed)."""
        counts = self._counts(kind)
        if cached:
            counts.reused += 1
        else:
            counts.running.discard(name)
            counts.failed += failed
            counts.done += not failed
        status = "from cache" if cached else "FAILED" if failed else "done"
        self._line(f"{kind} {name} {status} ({self._summary()})")

    def eta(self) -> float | None:
        """Seconds left, extrapolated from the share of this run's work done so far (a side, a
        cell and a search trial count as one unit each: a searched cell weighs its trials)."""
        work = (self.sides.total - self.sides.reused) + (self.cells.total - self.cells.reused)
        work += self.trials_total
        finished = self.sides.done + self.sides.failed + self.cells.done + self.cells.failed
        finished += self.trials_done
        if not finished or not work:
            return None
        elapsed = time.perf_counter() - self.started_at
        return elapsed * (work - finished) / finished

    def refresh(self) -> None:
        if self._view is not None:
            self._view.update(self._table())

    def __enter__(self) -> Progress:
        if self.live:
            console = Console(file=self.stream)
            self._view = Live(self._table(), console=console, refresh_per_second=4)
            self._view.__enter__()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._view is not None:
            self._view.update(self._table())
            self._view.__exit__(*exc)
            self._view = None

    def _counts(self, kind: str) -> Counts:
        return self.sides if kind == "side" else self.cells

    def _summary(self) -> str:
        s, c = self.sides, self.cells
        trials = f"trials {self._trials()}, " if self.trials_total else ""
        return (
            f"sides {s.done + s.reused}/{s.total}, cells {c.done + c.reused}/{c.total}, {trials}"
            f"{s.failed + c.failed} failed, ETA {_duration(self.eta())}"
        )

    def _trials(self) -> str:
        return f"{self.trials_done}/{self.trials_total} done"

    def _line(self, text: str) -> None:
        if self.stream is None or self.live:
            return
        elapsed = time.perf_counter() - self.started_at
        print(f"[{elapsed:7.1f}s] {text}", file=self.stream, flush=True)

    def _table(self) -> Table:
        elapsed = time.perf_counter() - self.started_at
        title = f"grid run: {_duration(elapsed)} elapsed, ETA {_duration(self.eta())}"
        if self.trials_total:
            title += f"; search trials {self._trials()}"
        table = Table(title=title)
        for column in ("", "total", "done", "reused", "running", "failed", "retries"):
            table.add_column(column, justify="right")
        for name, c in (("sides", self.sides), ("cells", self.cells)):
            values = (c.total, c.done, c.reused, len(c.running), c.failed, c.retries)
            table.add_row(name, *map(str, values))
        return table


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    minutes, secs = divmod(int(seconds), 60)
    return f"{minutes}m{secs:02d}s" if minutes else f"{secs}s"
