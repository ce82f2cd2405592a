"""The paper's two grids, run in parts that fit a laptop, and the report against the paper.

`run PART` runs one part of `grids/paper-general.yaml` or `grids/paper-sequential.yaml` (DL-MIA
at its fixed default settings: no search) for one item-vector setting, into
`OUT/<part>-<fit_on>`; rerunning resumes. `report` reads every result folder under OUT and
writes `bench/results/paper/` (markdown, CSV and heatmaps beside the paper's), so the report can
be regenerated after more parts or seeds have run.

Parts:
    general-fast   ItemCF and LFM sides of the general grid, seeds 0, 1, 2 (16 pairs)
    general-ncf    every general cell with an NCF side, seed 0 (20 pairs)
    sequential     the whole sequential grid, seed 0 (36 pairs)

    .venv/bin/python bench/paper.py run general-fast --fit-on vectorization --data-root DATA
    .venv/bin/python bench/paper.py run general-fast --fit-on all-histories --data-root DATA
    .venv/bin/python bench/paper.py run general-fast --fit-on vectorization --seeds 1 2
    .venv/bin/python bench/paper.py report                  # -> bench/results/paper/
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import dataclass, replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlmia.layout import RESULTS_DIR, SIDES_DIR  # noqa: E402
from dlmia.vectors import VECTOR_FIT_ON  # noqa: E402
from tune.grid import Grid, load_grid, override  # noqa: E402


@dataclass(frozen=True)
class Part:
    """A slice of a paper grid: its file, the recommenders a cell must use, and seeds."""

    grid: str  # file under grids/
    seeds: tuple[int, ...]
    only: frozenset[str] = frozenset()  # cells whose both sides use these recommenders ...
    needs: str = ""  # ... or cells with at least one side of this recommender


PARTS = {
    "general-fast": Part("paper-general.yaml", (0, 1, 2), only=frozenset({"itemcf", "lfm"})),
    "general-ncf": Part("paper-general.yaml", (0,), needs="ncf"),
    "sequential": Part("paper-sequential.yaml", (0,)),
}


def part_grid(name: str, fit_on: str, seeds: tuple[int, ...] = ()) -> Grid:
    """The grid of part `name` with item vectors fit on `fit_on` and DL-MIA unsearched, over
    `seeds` (default: the part's)."""
    part = PARTS[name]
    grid = override(load_grid(ROOT / "grids" / part.grid), fit_on, no_search=True)

    def recommenders(side: str) -> str:
        return side.split(".")[1]

    def keep(shadow: str, target: str) -> bool:
        used = {recommenders(shadow), recommenders(target)}
        if part.only:
            return used <= part.only
        return not part.needs or part.needs in used

    cells = tuple(pair for pair in grid.cells if keep(pair.shadow, pair.target))
    seeds = seeds or part.seeds
    suffix = "" if seeds == part.seeds else "-s" + "-".join(map(str, seeds))
    return replace(grid, name=f"{name}-{fit_on}{suffix}", cells=cells, seeds=seeds)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one part for one item-vector setting")
    run.add_argument("part", choices=PARTS)
    run.add_argument("--fit-on", choices=VECTOR_FIT_ON, required=True)
    run.add_argument(
        "--seeds", type=int, nargs="+", default=[],
        help="only these seeds (e.g. the ones a full-grid run has not covered)",
    )
    run.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    run.add_argument("--out", type=Path, default=ROOT / "out" / "paper")
    report = commands.add_parser("report", help="write the report from every part's results")
    report.add_argument("--out", type=Path, default=ROOT / "out" / "paper")
    report.add_argument("--to", type=Path, default=ROOT / "bench" / "results" / "paper")
    args = parser.parse_args()
    if args.command == "run":
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        from tune.plan import expand
        from tune.progress import Progress
        from tune.runner import run_grid

        grid = part_grid(args.part, args.fit_on, tuple(args.seeds))
        summary = run_grid(
            expand(grid, args.data_root), out=args.out / grid.name, cache=args.out / SIDES_DIR,
            progress=Progress.auto(),
        )
        print(summary.line())
        sys.exit(summary.exit_code)
    from analysis.paper_report import write_paper_report

    folders = sorted(p for p in args.out.iterdir() if (p / RESULTS_DIR).is_dir())
    for path in write_paper_report(folders, args.to):
        print(path)


if __name__ == "__main__":
    main()
