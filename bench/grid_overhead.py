"""How well the grid runner uses a machine, and what Ray costs against one plain process.

Runs a grid on a fresh local Ray (fresh side cache: everything is computed), then the same work
(prepare each dataset, build each side, attack each cell) in this process without Ray, one torch
thread per task as in the Ray workers. Prints a table:

- wall time of the Ray run (Ray's start-up excluded, and shown on its own line);
- summed task time per stage (dataset preparation, sides, cells) and in all;
- utilisation = summed task time / (wall time x CPUs): how busy the runner kept the cluster;
- idle CPU time: what the runner left unused (start-up of worker processes, the last cells);
- task slow-down: the same tasks on Ray against one process (serialisation, and CPU contention
  between parallel tasks, which a busy machine inflates);
- Ray's overhead = (wall time x CPUs) / in-process time - 1: both of the above together, 0 for a
  perfect parallel speed-up.

    python bench/grid_overhead.py          # paper-general on ../shared/data, all CPUs
    python bench/grid_overhead.py --datasets ml-1m --recommenders itemcf lfm --attacks biased
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from collections import defaultdict
from pathlib import Path
from typing import Any

import torch
import yaml
from threadpoolctl import threadpool_limits

from dlmia.cell import attack_cell
from dlmia.machine import machine
from dlmia.sides import build_side, prepare_dataset
from tune.cluster import start_local_ray
from tune.grid import parse_grid
from tune.plan import Plan, expand
from tune.progress import Progress
from tune.runner import RunSummary, run_grid

ROOT = Path(__file__).resolve().parents[1]


def subset(
    raw: dict[str, Any],
    datasets: list[str] | None,
    recommenders: list[str] | None,
    attacks: list[str] | None,
) -> dict[str, Any]:
    """The grid restricted to some dataset and recommender aliases and attacks (product cells),
    with fixed attack settings: a `search:` block is dropped (this bench measures the runner)."""
    keep_d = datasets or list(raw["datasets"])
    keep_r = recommenders or list(raw["recommenders"])
    sides = [f"{d}.{r}" for d in keep_d for r in keep_r]
    return {
        **raw,
        "datasets": {k: v for k, v in raw["datasets"].items() if k in keep_d},
        "recommenders": {k: v for k, v in raw["recommenders"].items() if k in keep_r},
        "attacks": {
            k: {key: value for key, value in v.items() if key != "search"}
            for k, v in raw["attacks"].items() if k in (attacks or raw["attacks"])
        },
        "cells": {"product": {"shadow": sides, "target": sides}},
    }


def run_on_ray(plan: Plan, cpus: int, out: Path) -> tuple[RunSummary, float]:
    """Run the grid on a fresh local Ray with `cpus` CPUs; returns the summary, Ray's start-up."""
    import ray

    started = time.perf_counter()
    start_local_ray(num_cpus=cpus)
    startup = time.perf_counter() - started
    try:
        summary = run_grid(plan, out=out, progress=Progress())
    finally:
        ray.shutdown()
    return summary, startup


def run_in_process(plan: Plan) -> dict[str, float]:
    """The same work in this process, serially, one thread (torch and BLAS); seconds per stage."""
    torch.set_num_threads(1)
    with threadpool_limits(limits=1):
        return _serial_stages(plan)


def _serial_stages(plan: Plan) -> dict[str, float]:
    seconds: dict[str, float] = defaultdict(float)
    datasets, sides = {}, {}
    for key, spec in plan.datasets.items():
        started = time.perf_counter()
        datasets[key] = prepare_dataset(spec)
        seconds["prepare"] += time.perf_counter() - started
    needed = dict.fromkeys(s for cell in plan.cells for s in (cell.shadow, cell.target))
    for side_id in needed:
        job = plan.sides[side_id]
        started = time.perf_counter()
        sides[side_id] = build_side(datasets[job.dataset_key], job.spec)
        seconds["side"] += time.perf_counter() - started
    for cell in plan.cells:
        config = cell.config
        started = time.perf_counter()
        shadow, target = sides[cell.shadow], sides[cell.target]
        attack_cell(
            shadow, target, config.attack, config.attack_settings, config.seed, config.device
        )
        seconds["cell"] += time.perf_counter() - started
    return dict(seconds)


def stage_table(summary: RunSummary) -> dict[str, float]:
    """Summed task seconds per stage of a Ray run."""
    seconds: dict[str, float] = defaultdict(float)
    for task in summary.tasks:
        seconds[task["kind"]] += task["task_end"] - task["task_start"]
    return dict(seconds)


def table(summary: RunSummary, startup: float, cpus: int, local: dict[str, float]) -> str:
    """The bench's table: the Ray run beside the in-process run (when there is one)."""
    ray_stages = stage_table(summary)
    busy, wall, serial = sum(ray_stages.values()), summary.wall_seconds, sum(local.values())
    rows = [("Ray start-up (not in the wall time)", f"{startup:.1f} s", "")]
    rows.append(("wall time", f"{wall:.1f} s", f"{serial:.1f} s" if local else ""))
    for stage in sorted(ray_stages, key=lambda s: ("prepare", "side", "cell").index(s.split()[0])):
        there = f"{local.get(stage, 0):.1f} s" if local and stage in local else ""
        rows.append((f"summed task time: {stage}", f"{ray_stages[stage]:.1f} s", there))
    rows.append(("summed task time: all", f"{busy:.1f} s", f"{serial:.1f} s" if local else ""))
    rows.append(("utilisation = task time / (wall x CPUs)", f"{busy / (wall * cpus):.1%}", ""))
    rows.append(("idle CPU time = wall x CPUs - task time", f"{wall * cpus - busy:.1f} s", ""))
    if local:
        slowdown = busy / serial - 1
        rows.append(("task slow-down = task time / one process - 1", f"{slowdown:.1%}", ""))
        overhead = wall * cpus / serial - 1
        rows.append(("Ray overhead = wall x CPUs / one process - 1", f"{overhead:.1%}", ""))
        rows.append(("speed-up = one process / wall", f"{serial / wall:.2f}x", ""))
    width = max(len(r[0]) for r in rows)
    lines = [f"{'':{width}}  {'Ray':>10}  {'one process':>12}"]
    lines += [f"{name:{width}}  {on_ray:>10}  {alone:>12}" for name, on_ray, alone in rows]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--grid", default=str(ROOT / "grids" / "paper-general.yaml"))
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--cpus", type=int, default=os.cpu_count() or 1, help="CPUs for Ray")
    parser.add_argument("--datasets", nargs="+", help="only these dataset aliases")
    parser.add_argument("--recommenders", nargs="+", help="only these recommender aliases")
    parser.add_argument("--attacks", nargs="+", help="only these attacks")
    parser.add_argument("--no-in-process", action="store_true", help="skip the run without Ray")
    parser.add_argument("--out", help="output folder of the Ray run (default: a temporary one)")
    args = parser.parse_args()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")

    raw = yaml.safe_load(Path(args.grid).read_text())
    raw = subset(raw, args.datasets, args.recommenders, args.attacks)
    plan = expand(parse_grid(raw, source=args.grid), args.data_root)
    name, n_sides, n_cells = plan.grid.name, len(plan.sides), len(plan.cells)
    print(f"grid {name}: {n_sides} sides, {n_cells} cells, {args.cpus} CPUs of {machine()}")
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp) / "ray"
        summary, startup = run_on_ray(plan, args.cpus, out)
    print(f"\n{table(summary, startup, args.cpus, {})}\n\n{summary.line()}", flush=True)
    if not args.no_in_process:
        print("\nthe same work in one process, without Ray ...", flush=True)
        print(f"\n{table(summary, startup, args.cpus, run_in_process(plan))}")


if __name__ == "__main__":
    main()
