"""`dlmia grid validate FILE` and `dlmia grid run FILE`: the functions behind the commands.

dlmia.cli parses the options and imports this module inside its handlers, so `import dlmia.cli`
never imports Ray; it also prints the report of a finished run (the analysis package), so this
layer never imports analysis. Bad input raises a DlmiaError, which dlmia.cli turns into exit
code 2.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from dlmia.errors import ConfigError
from dlmia.io import check_writable
from tune.grid import load_grid, override
from tune.outputs import output_root
from tune.plan import Plan, cell_count, expand
from tune.progress import Progress
from tune.search import SearchConfig

if TYPE_CHECKING:
    from tune.runner import RunSummary

LARGE_GRID = 10_000  # cells above which `grid run` asks for --yes


def grid_validate(
    file: str | Path,
    data_root: str | Path | None = None,
    vectors_fit_on: str | None = None,
    no_search: bool = False,
) -> int:
    """Validate grid `file` in full (its data files included) and print what it would run."""
    from tune.runner import check_data

    plan = expand(override(load_grid(file), vectors_fit_on, no_search), data_root)
    check_data(plan)
    print(describe(plan))
    return 0


def grid_run(
    file: str | Path,
    *,
    address: str | None = None,
    data_root: str | Path | None = None,
    out: str | Path | None = None,
    cache: str | Path | None = None,
    max_retries: int | None = None,
    quiet: bool = False,
    vectors_fit_on: str | None = None,
    no_search: bool = False,
    yes: bool = False,
) -> RunSummary:
    """Run grid `file`, expanded once into its plan; print where results go and the summary line.

    Returns:
        What the run did (`RunSummary.exit_code`: 0 when every cell finished, 1 when any failed).

    Raises:
        ConfigError: bad options, or a grid of more than `LARGE_GRID` cells without `yes`.
    """
    from tune.runner import run_grid

    if max_retries is not None and max_retries < 0:
        raise ConfigError(f"--max-retries {max_retries}: must be >= 0")
    grid = override(load_grid(file), vectors_fit_on, no_search)
    cells = cell_count(grid)
    if cells > LARGE_GRID and not yes:
        raise ConfigError(
            f"{file}: {cells:,} cells (more than {LARGE_GRID:,}); check the grid with "
            f"`dlmia grid validate`, then pass --yes to run it"
        )
    out = output_root(grid.name, out)
    check_writable(out, "--out")
    print(f"grid {grid.name}: results go to {out}", flush=True)
    if cache:
        check_writable(cache, "--cache")
    progress = Progress(stream=None) if quiet else Progress.auto()
    summary = run_grid(
        expand(grid, data_root),
        out=out,
        cache=cache,
        address=address,
        max_retries=max_retries,
        progress=progress,
    )
    print(summary.line())
    return summary


def describe(plan: Plan) -> str:
    """A summary of a valid grid: its counts, sides and cells."""
    grid = plan.grid
    n_pairs, n_attacks, n_seeds = len(grid.cells), len(grid.attacks), len(grid.seeds)
    return (
        f"{grid.source or grid.name}: valid grid {grid.name!r}\n"
        f"  {len(grid.datasets)} datasets ({', '.join(grid.datasets)}), "
        f"{len(grid.recommenders)} recommenders ({', '.join(grid.recommenders)})\n"
        f"  {len(plan.sides)} sides to train, {n_pairs} shadow x target pairs x {n_attacks} "
        f"attacks ({', '.join(grid.attacks)}) x {len(grid.nonmember_lists)} non-member "
        f"policies ({', '.join(grid.nonmember_lists)}) x {n_seeds} seeds = {len(plan.cells)} cells"
        + "".join(
            f"\n  {name}: settings searched per cell, {entry.search.num_samples} trials "
            f"({entry.search.sampler}, {_at_once(entry.search)})"
            for name, entry in grid.attacks.items() if entry.search is not None
        )
    )


def _at_once(search: SearchConfig) -> str:
    """How a search's trials run: side by side in groups, and how many at once."""
    if search.side_by_side == 1:
        return f"{search.max_concurrent} at once"
    return f"{search.side_by_side} side by side, {search.max_concurrent} groups at once"
