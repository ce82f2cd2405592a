"""DL-MIA's label-free objective over seeds of one setting: the noise a search's pick must beat.

For every DL-MIA cell of a grid (default `paper-general`, seed 0) both sides come from a side
cache (a grid run's `OUT/sides`; a side not there is trained and cached), and DL-MIA is fitted
at its defaults with attack seeds 0..S-1 (the sides stay the grid's) and scored by the
label-free criteria (dlmia.selection). Prints, per cell, the objective's mean and standard
deviation over the seeds; then how the spread grows with the objective's size (its slope
through the origin, `relative sd`, and their correlation) and the margin a pick must beat the
defaults by, as a share of their objective's size: 2 x sqrt(2) x the relative sd, two standard
deviations of the difference of two fits (`DLMIAAttack.search_margin`). No target label is
read.

    .venv/bin/python bench/objective_noise.py --data-root ../shared/data \
        --cache out/paper-general/sides --seeds 3 --out bench/results/search/objective_noise.csv
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pandas as pd

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from reference import built  # noqa: E402  (bench/reference.py: a side from the cache or trained)

from dlmia.sides import SideOutput  # noqa: E402
from tune.cache import SideCache  # noqa: E402
from tune.grid import load_grid  # noqa: E402
from tune.plan import SideJob, expand  # noqa: E402


def objectives(shadow: SideOutput, target: SideOutput, seeds: int) -> list[dict[str, float]]:
    """The label-free criteria of DL-MIA at its defaults, fitted with attack seeds 0..seeds-1."""
    import torch

    from dlmia.attacks.dlmia import DLMIAAttack
    from dlmia.selection import criteria

    torch.set_num_threads(1)
    rows = []
    for seed in range(seeds):
        attack = DLMIAAttack(device="cpu", seed=seed).fit(
            shadow.vectors, shadow.labels, target.vectors
        )
        rows.append({"seed": seed, **criteria(attack, shadow.vectors, shadow.labels,
                                              target.vectors)})  # fmt: skip
    return rows


def cell_rows(args: tuple[str, SideJob, SideJob, str, int]) -> list[dict[str, object]]:
    """One cell's rows (run in a worker process)."""
    cell, shadow_job, target_job, cache_dir, seeds = args
    cache = SideCache(cache_dir)
    started = time.perf_counter()
    shadow, target = built(shadow_job.spec, cache), built(target_job.spec, cache)
    rows = objectives(shadow, target, seeds)
    seconds = time.perf_counter() - started
    return [{"cell": cell, "seconds": round(seconds, 1), **row} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--grid", default="paper-general")
    parser.add_argument("--data-root", default="../shared/data")
    parser.add_argument("--cache", type=Path, required=True, help="a side cache (OUT/sides)")
    parser.add_argument("--seeds", type=int, default=3)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--out", type=Path, help="write every fit's criteria here (CSV)")
    args = parser.parse_args()
    plan = expand(load_grid(args.grid), args.data_root)
    cells = [job for job in plan.cells if job.config.attack == "dlmia"]
    work = [(job.id.split("__dlmia")[0], plan.sides[job.shadow], plan.sides[job.target],
             str(args.cache), args.seeds) for job in cells]  # fmt: skip
    with ProcessPoolExecutor(args.workers) as pool:
        frame = pd.DataFrame([row for rows in pool.map(cell_rows, work) for row in rows])
    if args.out:
        args.out.parent.mkdir(parents=True, exist_ok=True)
        frame.to_csv(args.out, index=False)
    table = frame.groupby("cell")["objective"].agg(["mean", "std"]).round(4)
    pd.set_option("display.width", 160)
    print(table.to_string())
    pooled = math.sqrt(float((table["std"] ** 2).mean()))
    size = table["mean"].abs()
    relative = float((table["std"] * size).sum() / (size**2).sum())  # sd ~ relative x size
    print(
        f"\n{len(table)} cells x {args.seeds} seeds: pooled sd of the objective {pooled:.4f} "
        f"(median per cell {table['std'].median():.4f}); relative sd {relative:.3f} "
        f"(correlation of sd and size {table['std'].corr(size):.2f}); margin "
        f"2*sqrt(2)*relative = {2 * math.sqrt(2) * relative:.3f} x |defaults' objective|"
    )


if __name__ == "__main__":
    main()
