"""The Ray layer of dlmia: grid files, their expansion into sides and cells, and the grid runner.

    from tune import load_grid, run_grid
    summary = run_grid(load_grid("demo"), data_root="data")   # a packaged grid, or a file's path

Importing `tune` does not import Ray; `run_grid` (tune.runner) does, when first used.
"""

from __future__ import annotations

from typing import Any

from tune.grid import Grid, load_grid, parse_grid
from tune.plan import Plan, expand

__all__ = ["Grid", "Plan", "RunSummary", "expand", "load_grid", "parse_grid", "run_grid"]


def __getattr__(name: str) -> Any:
    if name in ("run_grid", "RunSummary"):
        from tune import runner

        return getattr(runner, name)
    raise AttributeError(f"module 'tune' has no attribute {name!r}")
