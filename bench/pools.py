"""Reference pools side by side: R recommenders of one kind as one batched fit (dlmia.pools)
against R separate fits (dlmia.sides.build_side), in the same run.

For each kind and pool size R it builds an online reference pool of ML-1M (seed 0, the `model`
non-member policy, k = 100) twice, each in a fresh process: once side after side with
`build_side`, once with `build_pool`. It prints the wall seconds and the peak resident memory
of each build (`--separate-threads` and `--threads` torch threads: on two cores, separate fits
of small steps run fastest on one thread, a pool on two; the dataset is prepared first and not
timed; the peak is the highest RSS sampled every 10 ms while building, the dataset included),
the ratio, and how far the pool's lists agree with the separate fits' (the share of identical
lists, the mean top-k overlap, the largest difference of any list statistic) and the pooled
reference attack's ROC AUC on each
(`dlmia.pooled.pooled_scores`: each model in turn the target, the others its references).
A kind without a batched fit falls back to separate fits inside the pool (`fallback`).

    .venv/bin/python bench/pools.py --data-root ../shared/data --separate-threads 1
    .venv/bin/python bench/pools.py --data-root ../shared/data --kinds gru4rec --sizes 16
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from fresh import json_in_fresh_process, machine_line  # noqa: E402

KINDS = ("itemcf", "lfm", "ncf", "gru4rec")
COLUMNS = ("kind", "R", "pool", "separate_s", "pool_s", "x_faster", "separate_mb", "pool_mb",
           "same_lists", "overlap", "max_stat_diff", "auc_separate", "auc_pool")  # fmt: skip


class PeakRss:
    """The highest resident set size of this process, sampled on a thread while inside."""

    def __init__(self, every: float = 0.01) -> None:
        self.every, self.peak, self._stop = every, 0, threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def _sample(self) -> None:
        page = 4096
        while not self._stop.is_set():
            with open("/proc/self/statm") as statm:
                self.peak = max(self.peak, int(statm.read().split()[1]) * page)
            time.sleep(self.every)

    def __enter__(self) -> PeakRss:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join()


def build(kind: str, size: int, mode: str, args: argparse.Namespace, out: str) -> dict[str, Any]:
    """Build the pool of `size` `kind` models here (`mode`: separate or pool); its seconds and
    peak memory; its lists, labels and statistics saved to `out` (.npz)."""
    import torch

    from dlmia.attacks.base import PoolRequest
    from dlmia.cell import ListOptions, SideChoice, cached_dataset, cell_config
    from dlmia.pools import batchable, build_pool
    from dlmia.sides import DatasetSpec, build_side

    torch.set_num_threads(1)  # preparing the dataset (not timed) on one thread: no waits
    choice = SideChoice(DatasetSpec(name=args.dataset, data_root=args.data_root), kind)
    options = ListOptions(k=args.k, nonmember_lists=args.policy)
    config = cell_config(choice, choice, "reference", {}, options, seed=args.seed,
                         device=args.device, pool=PoolRequest(size, online=True))  # fmt: skip
    data = cached_dataset(config.shadow.dataset)
    torch.set_num_threads(args.threads)
    with PeakRss() as peak:
        started = time.perf_counter()
        if mode == "pool":
            sides = build_pool(data, config.references)
        else:
            sides = [build_side(data, spec) for spec in config.references]
        seconds = time.perf_counter() - started
    arrays = {"users": sides[0].users}
    for i, side in enumerate(sides):
        arrays[f"lists{i}"], arrays[f"labels{i}"] = side.lists, side.labels
        arrays.update({f"stat{i}:{name}": value for name, value in side.statistics.items()})
    np.savez(out, **arrays)
    return {"seconds": seconds, "peak_mb": peak.peak / 2**20, "batched": batchable(kind)}


def agreement(size: int, separate: str, pool: str, seed: int) -> dict[str, float]:
    """How far the pool's lists and statistics are from the separate fits', and the pooled
    reference attack's ROC AUC on each."""
    a, b = np.load(separate), np.load(pool)
    same = [np.array_equal(a[f"lists{i}"], b[f"lists{i}"]) for i in range(size)]
    overlap = [
        np.mean([len(np.intersect1d(x, y)) / len(x) for x, y in zip(a[f"lists{i}"],
                                                                      b[f"lists{i}"])])
        for i in range(size)
    ]  # fmt: skip
    stats = [key for key in a.files if key.startswith("stat")]
    diff = max(float(np.nanmax(np.abs(a[key] - b[key]))) for key in stats)
    return {
        "same_lists": float(np.mean(same)), "overlap": float(np.mean(overlap)),
        "max_stat_diff": diff, "auc_separate": pooled_auc(a, size, seed),
        "auc_pool": pooled_auc(b, size, seed),
    }  # fmt: skip


def pooled_auc(arrays: Any, size: int, seed: int) -> float:
    """The pooled reference attack's ROC AUC on a saved pool (default settings, at most R - 1
    references)."""
    from dlmia.attacks.reference import ReferenceConfig
    from dlmia.pooled import pooled_scores
    from dlmia.records import ServedInfo, SideInfo
    from dlmia.sides import SideOutput

    served = ServedInfo(0, 0, float("nan"), 0.0, 0.0, {}, 0)  # pooled_scores reads no info

    names = {key.split(":", 1)[1] for key in arrays.files if key.startswith("stat0:")}
    sides = [
        SideOutput(np.zeros((len(arrays["users"]), 1), np.float32), arrays[f"labels{i}"],
                   arrays["users"], arrays[f"lists{i}"], SideInfo(served, 0, 0.0, 0.0, 0.0),
                   {name: arrays[f"stat{i}:{name}"] for name in names})
        for i in range(size)
    ]  # fmt: skip
    settings = ReferenceConfig(references=min(16, size - 1))
    return float(pooled_scores(sides, settings, seed).metrics["roc_auc"])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--dataset", default="ml-1m")
    parser.add_argument("--kinds", nargs="+", default=list(KINDS))
    parser.add_argument("--sizes", nargs="+", type=int, default=[16, 64])
    parser.add_argument("--threads", type=int, default=2, help="torch threads of a pool build")
    parser.add_argument("--separate-threads", type=int,
                        help="torch threads of the separate fits (default: --threads)")
    parser.add_argument("--device", default="cpu")
    parser.add_argument("--policy", default="model", help="the non-member policy")
    parser.add_argument("--k", type=int, default=100)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--one", nargs=4, metavar=("KIND", "R", "MODE", "OUT"),
                        help=argparse.SUPPRESS)  # fmt: skip
    args = parser.parse_args()
    args.data_root = str(Path(args.data_root).resolve())
    if args.one:
        kind, size, mode, out = args.one
        print(json.dumps(build(kind, int(size), mode, args, out)))
        return
    passed = ["--data-root", args.data_root, "--dataset", args.dataset, "--device",
              args.device, "--policy", args.policy, "--k", str(args.k), "--seed",
              str(args.seed)]  # fmt: skip
    threads = {"pool": args.threads, "separate": args.separate_threads or args.threads}
    print(f"# {args.dataset}, online pools, policy {args.policy}, k {args.k}, seed {args.seed}, "
          f"device {args.device}; torch threads: separate fits {threads['separate']}, "
          f"pool {threads['pool']}; on {machine_line()}")  # fmt: skip
    print("".join(f"{c:>14}" for c in COLUMNS), flush=True)
    with tempfile.TemporaryDirectory() as folder:
        for kind in args.kinds:
            for size in args.sizes:
                runs, files = {}, {}
                for mode in ("separate", "pool"):
                    files[mode] = str(Path(folder) / f"{kind}-{size}-{mode}.npz")
                    runs[mode] = json_in_fresh_process(
                        ROOT, __file__, *passed, "--threads", str(threads[mode]), "--one", kind,
                        str(size), mode, files[mode], what=f"{kind} R={size} {mode}",
                    )  # fmt: skip
                sep, pool = runs["separate"], runs["pool"]
                row = {
                    "kind": kind, "R": size, "pool": "batched" if pool["batched"] else "fallback",
                    "separate_s": sep["seconds"], "pool_s": pool["seconds"],
                    "x_faster": sep["seconds"] / pool["seconds"], "separate_mb": sep["peak_mb"],
                    "pool_mb": pool["peak_mb"],
                    **agreement(size, files["separate"], files["pool"], args.seed),
                }  # fmt: skip
                print("".join(cell(row[c]) for c in COLUMNS), flush=True)


def cell(value: Any) -> str:
    """One right-aligned table cell."""
    if isinstance(value, float):
        return f"{value:>14.4g}" if abs(value) < 1e-3 and value else f"{value:>14.3f}"
    return f"{value!s:>14}"


if __name__ == "__main__":
    main()
