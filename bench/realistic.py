"""The realistic grids (`grids/realistic.yaml`, `grids/realistic-unseen.yaml`) in parts, and
their report.

`run PART` runs the cells of one part of a grid into `OUT/<grid>-<part>` (rerunning resumes;
every part shares the side cache `OUT/sides`). `report` reads every result folder under OUT
and writes `bench/results/realistic/`: the summary per family, policy and attack (mean ROC AUC
and TPR at 1% and 0.1% FPR), every cell with its intervals, log-scale ROC curves, the reference
attack against its pool size (from bench/reference.py's CSV) and which users are most exposed.

Parts (a cell belongs to a part when both its sides are of the part's dataset and kinds):
    ml-1m-general    ML-1M ItemCF and LFM (with the two wrong-kind pools)
    ml-1m-ncf        ML-1M NCF
    music            Digital Music ItemCF, LFM and NCF
    music-fast       Digital Music ItemCF and LFM (NCF's pools take hours on 2 cores)
    ml-1m-sequential ML-1M GRU4Rec, Caser and BERT4Rec
    beauty           Beauty GRU4Rec, Caser and BERT4Rec

    .venv/bin/python bench/realistic.py run ml-1m-general --data-root DATA
    .venv/bin/python bench/realistic.py run ml-1m-general --grid realistic-unseen --data-root DATA
    .venv/bin/python bench/realistic.py report                 # -> bench/results/realistic/
"""

from __future__ import annotations

import argparse
import os
import sys
from dataclasses import replace
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlmia.layout import RESULTS_DIR, SIDES_DIR  # noqa: E402
from tune.grid import Grid, load_grid  # noqa: E402

GENERAL, SEQUENTIAL = {"itemcf", "lfm", "ncf"}, {"gru4rec", "caser", "bert4rec"}
PARTS: dict[str, tuple[str, set[str]]] = {
    "ml-1m-general": ("ml-1m", {"itemcf", "lfm"}),
    "ml-1m-ncf": ("ml-1m", {"ncf"}),
    "music": ("music", GENERAL),
    "music-fast": ("music", {"itemcf", "lfm"}),
    "ml-1m-sequential": ("ml-1m", SEQUENTIAL),
    "beauty": ("beauty", SEQUENTIAL),
}
GRIDS = ("realistic", "realistic-unseen")


def part_grid(grid_name: str, part: str) -> Grid:
    """The cells of grid `grid_name` whose sides are both of part `part`'s dataset and kinds."""
    dataset, kinds = PARTS[part]
    grid = load_grid(grid_name)

    def inside(side: str) -> bool:
        alias, recommender = side.split(".")
        return alias == dataset and recommender in kinds

    cells = tuple(pair for pair in grid.cells if inside(pair.shadow) and inside(pair.target))
    return replace(grid, name=f"{grid.name}-{part}", cells=cells)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="run one part of a realistic grid")
    run.add_argument("part", choices=PARTS)
    run.add_argument("--grid", choices=GRIDS, default="realistic")
    run.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    run.add_argument("--out", type=Path, default=ROOT / "out" / "realistic")
    report = commands.add_parser("report", help="write the report from every part's results")
    report.add_argument("--out", type=Path, default=ROOT / "out" / "realistic")
    report.add_argument("--to", type=Path, default=ROOT / "bench" / "results" / "realistic")
    report.add_argument("--pool-sizes", type=Path,
                        default=ROOT / "bench" / "results" / "reference" / "reference.csv")
    args = parser.parse_args()
    if args.command == "run":
        os.environ.setdefault("RAY_AUTH_MODE", "disabled")
        os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
        from tune.plan import expand
        from tune.progress import Progress
        from tune.runner import run_grid

        grid = part_grid(args.grid, args.part)
        summary = run_grid(expand(grid, args.data_root), out=args.out / grid.name,
                           cache=args.out / SIDES_DIR, progress=Progress.auto())  # fmt: skip
        print(summary.line())
        sys.exit(summary.exit_code)
    from analysis.realistic_report import write_realistic_report

    folders = sorted(p for p in args.out.iterdir() if any(p.glob(f"{RESULTS_DIR}/*.parquet")))
    for path in write_realistic_report(folders, args.to, args.pool_sizes):
        print(path)


if __name__ == "__main__":
    main()
