"""The reference attack on real data: which statistic, variant, spread and pool size work where.

For each cell (dataset, target recommender, the references' kind, non-member policy, seen items
kept or not) it builds the target side and an offline and an online pool of `--references`
models once (cached on disk under `--cache`, keyed like a grid's sides), then scores every
statistic x variant x spread on the first R = 1, 2, 4, ... models of each pool, beside the
training-free baselines and the raw statistics. Prints one table per cell and writes every row
to `--out` as CSV. Target labels are read by the metrics only.

    # the defaults' bench: ML-1M ItemCF and LFM under the model policy, pools of 64
    .venv/bin/python bench/reference.py --data-root ../shared/data
    # the adversary guessing the architecture wrong: LFM references against an ItemCF target
    .venv/bin/python bench/reference.py --data-root ../shared/data --cells ml-1m:itemcf:lfm
    # seen items dropped from every list
    .venv/bin/python bench/reference.py --data-root ../shared/data --exclude-seen
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from dlmia.attacks.baselines import percentile_ranks  # noqa: E402
from dlmia.attacks.reference import calibrated_score  # noqa: E402
from dlmia.cell import (  # noqa: E402
    ListOptions,
    SideChoice,
    attack_cell,
    cached_dataset,
    cell_config,
    reference_view,
)
from dlmia.metrics import attack_metrics  # noqa: E402
from dlmia.sides import DatasetSpec, SideOutput, SideSpec, build_side  # noqa: E402
from dlmia.statistics import STATISTICS  # noqa: E402
from tune.cache import SideCache  # noqa: E402
from tune.plan import side_key  # noqa: E402

VARIANTS = ("offline", "online")
SPREADS = ("global", "per-user")
METRICS = ("roc_auc", "tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr", "tpr_at_0pct_fpr")


def built(spec: SideSpec, cache: SideCache) -> SideOutput:
    """Side `spec`, from the cache or trained (and then cached)."""
    key = side_key(spec)
    side = cache.get(key)
    if side is None:
        side = build_side(cached_dataset(spec.dataset), spec)
        cache.store(key, spec, side)
    return side


def scored(labels: Any, score: Any) -> dict[str, float]:
    """The table's metrics of a raw score (higher = member)."""
    metrics = attack_metrics(labels, percentile_ranks(score), interval=False)
    return {name: round(float(metrics[name]), 3) for name in METRICS}


def bench_cell(
    dataset: DatasetSpec, target_kind: str, pool_kind: str, options: ListOptions, seed: int,
    references: int, cache: SideCache,
) -> list[dict[str, Any]]:  # fmt: skip
    """Every scoring of one cell, as table rows."""
    started = time.perf_counter()
    pools = {}
    for variant in VARIANTS:
        config = cell_config(
            SideChoice(dataset, pool_kind), SideChoice(dataset, target_kind), "reference",
            {"references": references, "variant": variant}, options, seed, "auto",
        )  # fmt: skip
        target = built(config.target, cache)
        pools[variant] = reference_view([built(s, cache) for s in config.references],
                                        target.users)  # fmt: skip
    seconds = time.perf_counter() - started
    labels = target.labels
    rows = []
    for name in ("norm", "list-frequency"):  # training-free: the shadow side is not read
        result = attack_cell(target, target, name, {}, seed, "cpu")
        rows.append({"scoring": name, **scored(labels, result.scores)})
    for name in STATISTICS:
        rows.append({"scoring": f"raw {name}", **scored(labels, target.statistics[name])})
    sizes = [r for r in (1, 2, 4, 8, 16, 32, 64, 128) if r <= references]
    for variant, statistic, spread, r in itertools.product(VARIANTS, STATISTICS, SPREADS, sizes):
        if variant == "online" and r < 2:
            continue
        pool = pools[variant]
        assert pool is not None
        score = calibrated_score(
            target.statistics[statistic], pool.statistics[statistic][:r], pool.inside[:r],
            variant, spread,
        )  # fmt: skip
        rows.append({"scoring": "reference", "variant": variant, "statistic": statistic,
                     "spread": spread, "references": r, **scored(labels, score)})  # fmt: skip
    cell = {"dataset": dataset.label, "target": target_kind, "pool": pool_kind,
            "policy": options.nonmember_lists, "exclude_seen": options.exclude_seen,
            "seed": seed, "build_seconds": round(seconds, 1)}  # fmt: skip
    return [{**cell, **row} for row in rows]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", required=True)
    parser.add_argument(
        "--cells", nargs="+", default=["ml-1m:itemcf", "ml-1m:lfm"],
        help="DATASET:TARGET[:POOL] (the references' kind; default: the target's)",
    )  # fmt: skip
    parser.add_argument("--policies", nargs="+", default=["model"])
    parser.add_argument("--exclude-seen", action="store_true")
    parser.add_argument("--references", type=int, default=64)
    parser.add_argument("--seeds", nargs="+", type=int, default=[0])
    parser.add_argument("--cache", default="out/bench-reference/sides")
    parser.add_argument("--out", default="bench/results/reference/reference.csv")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cache = SideCache(args.cache)
    rows = []
    for text, policy, seed in itertools.product(args.cells, args.policies, args.seeds):
        name, target, *pool = text.split(":")
        dataset = DatasetSpec(name=name, data_root=str(Path(args.data_root).resolve()))
        options = ListOptions(nonmember_lists=policy, exclude_seen=args.exclude_seen)
        cell = bench_cell(dataset, target, pool[0] if pool else target, options, seed,
                          args.references, cache)  # fmt: skip
        frame = pd.DataFrame(cell)
        print(f"\n{text} {policy} exclude_seen={args.exclude_seen} seed {seed} "
              f"(sides built or loaded in {cell[0]['build_seconds']} s)")  # fmt: skip
        shown = frame[(frame["scoring"] != "reference") | frame["references"].isin([16, 64])]
        columns = ["scoring", "variant", "statistic", "spread", "references", *METRICS]
        print(shown[[c for c in columns if c in shown]].to_string(index=False))
        rows += cell
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    pd.DataFrame(rows).to_csv(args.out, index=False)
    print(f"\nwrote {args.out}")


if __name__ == "__main__":
    main()
