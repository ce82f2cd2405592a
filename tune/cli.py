"""`dlmia grid validate FILE` and `dlmia grid run FILE`: the functions behind the commands.

dlmia.cli parses the options and imports this module inside its handlers, so `import dlmia.cli`
never imports Ray. Bad input raises a DlmiaError, which dlmia.cli turns into exit code 2.
"""

from __future__ import annotations

import logging
from pathlib import Path

import pandas as pd

from dlmia.errors import ConfigError
from dlmia.io import check_writable
from tune.grid import load_grid, override
from tune.outputs import output_root
from tune.plan import Plan, cell_count, expand
from tune.progress import Progress

log = logging.getLogger(__name__)

LARGE_GRID = 10_000  # cells above which `grid run` asks for --yes

TABLE_COLUMNS = (
    "shadow", "target", "attack", "seed", "roc_auc", "balanced_accuracy", "tpr_at_1pct_fpr",
    "status",
)  # fmt: skip


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
) -> int:
    """Run grid `file`, then print the results table and the heatmaps' paths.

    Returns:
        The exit code: 0 when every cell finished, 1 when any failed.

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
        grid,
        out=out,
        data_root=data_root,
        cache=cache,
        address=address,
        max_retries=max_retries,
        progress=progress,
    )
    print(summary.line())
    if not report(summary.out):
        table = results_table(summary.out, [job.id for job in expand(grid, data_root).cells])
        print(table.to_string(index=False, float_format=lambda v: f"{v:.3f}"))
    return summary.exit_code


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
            f"({entry.search.sampler}, {entry.search.max_concurrent} at once)"
            for name, entry in grid.attacks.items() if entry.search is not None
        )
    )


def results_table(out: str | Path, cell_ids: list[str]) -> pd.DataFrame:
    """The main columns of the grid's results, one row per cell (a search's selected trial), in
    grid order."""
    paths = [Path(out) / "results" / f"{cell_id}.parquet" for cell_id in cell_ids]
    rows = [pd.read_parquet(p) for p in paths if p.is_file()]
    if not rows:
        return pd.DataFrame()
    frame = pd.concat(rows, ignore_index=True)
    parts = frame["cell_id"].str.split("__", expand=True)
    frame["shadow"], frame["target"] = parts[0], parts[1]
    return frame[[c for c in TABLE_COLUMNS if c in frame]]


def report(out: Path) -> bool:
    """Print the analysis report (table, heatmap paths) when the analysis package is there."""
    try:
        from analysis.report import summarize
    except ImportError:
        return False
    try:
        summarize(out)
    except Exception as exc:  # noqa: BLE001 (a report problem must not hide the grid's results)
        log.warning("the analysis report failed (%s); the plain table follows", exc)
        return False
    return True
