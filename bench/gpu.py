"""GPU check: one cell per recommender, and DL-MIA, on the GPU with and without bfloat16 autocast
(`amp`), against the same work on the CPU in the same run.

Each recommender serves as both sides of one cell (a shadow and a target side), attacked by
Biased; then DL-MIA attacks the last cell's sides. Prints, per model and device setting, the
wall time, the ratio to the CPU, and the cell's ROC AUC; and checks that the GPU numbers agree
with the CPU's within `--tolerance` (ROC AUC: GPU kernels are not bit-identical to the CPU's,
and bfloat16 rounds). Exit code 1 when a number disagrees, 2 when CUDA is absent (nothing to
compare: `--cpu-only` still runs and times the CPU column).

    .venv/bin/python bench/gpu.py                       # synthetic data, a few minutes
    .venv/bin/python bench/gpu.py --data-root DATA      # ML-1M
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlmia.cell import ListOptions, SideChoice, attack_cell, cached_dataset, cell_config  # noqa: E402
from dlmia.data.synthetic import SyntheticConfig  # noqa: E402
from dlmia.machine import machine  # noqa: E402
from dlmia.sides import DatasetSpec, SideOutput, build_side  # noqa: E402

NEURAL = ("ncf", "gru4rec", "caser", "bert4rec")
RECOMMENDERS = ("itemcf", "lfm", *NEURAL)
SETTINGS = {"cpu": ("cpu", False), "cuda": ("cuda", False), "cuda+amp": ("cuda", True)}


def dataset(data_root: str | None) -> DatasetSpec:
    if data_root:
        return DatasetSpec(name="ml-1m", data_root=str(Path(data_root).resolve()))
    synthetic = SyntheticConfig(n_users=3000, n_items=800, mean_length=40.0)
    return DatasetSpec(name="synthetic", synthetic=synthetic)


def sides(data: DatasetSpec, recommender: str, device: str, amp: bool
          ) -> tuple[SideOutput, SideOutput, float]:
    """Both sides of the recommender's cell on `device`: (shadow, target, seconds)."""
    settings = {"amp": amp} if recommender in NEURAL else {}  # the models with an `amp` setting
    config = cell_config(SideChoice(data, recommender, settings),
                         SideChoice(data, recommender, settings), "biased", {}, ListOptions(),
                         seed=0, device=device)
    prepared = cached_dataset(config.shadow.dataset)
    started = time.perf_counter()
    shadow, target = build_side(prepared, config.shadow), build_side(prepared, config.target)
    if device == "cuda":
        torch.cuda.synchronize()
    return shadow, target, time.perf_counter() - started


def timed_attack(shadow: SideOutput, target: SideOutput, attack: str, device: str
                 ) -> tuple[float, float]:
    """(ROC AUC, seconds) of `attack` on the cell."""
    started = time.perf_counter()
    result = attack_cell(shadow, target, attack, {}, seed=0, device=device)
    if device == "cuda":
        torch.cuda.synchronize()
    return float(result.metrics["roc_auc"]), time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", help="run on ML-1M under this data root")
    parser.add_argument("--tolerance", type=float, default=0.03, help="ROC AUC agreement")
    parser.add_argument("--cpu-only", action="store_true", help="time the CPU column only")
    parser.add_argument("--recommenders", nargs="+", default=list(RECOMMENDERS))
    args = parser.parse_args()
    if not torch.cuda.is_available() and not args.cpu_only:
        print("no CUDA device here: nothing to compare (--cpu-only times the CPU)")
        sys.exit(2)
    torch.set_num_threads(max(1, torch.get_num_threads()))
    names = ["cpu"] if args.cpu_only else list(SETTINGS)
    data = dataset(args.data_root)
    rows: list[dict[str, Any]] = []
    last: dict[str, tuple[SideOutput, SideOutput]] = {}
    for recommender in args.recommenders:
        for name in names:
            device, amp = SETTINGS[name]
            shadow, target, side_seconds = sides(data, recommender, device, amp)
            auc, attack_seconds = timed_attack(shadow, target, "biased", device)
            rows.append({"model": recommender, "setting": name, "seconds": side_seconds,
                         "roc_auc": auc, "attack_seconds": attack_seconds})
            last[name] = (shadow, target)
    for name in names:
        device = SETTINGS[name][0]
        auc, seconds = timed_attack(*last[name], "dlmia", device)
        rows.append({"model": "dlmia attack", "setting": name, "seconds": seconds, "roc_auc": auc,
                     "attack_seconds": seconds})
    failed = report(rows, args.tolerance)
    sys.exit(1 if failed else 0)


def report(rows: list[dict[str, Any]], tolerance: float) -> int:
    """Print the table; return how many GPU numbers disagree with the CPU's."""
    cpu = {row["model"]: row for row in rows if row["setting"] == "cpu"}
    print(f"# on {machine()}")
    print(f"{'model':<14} {'setting':<9} {'seconds':>8} {'x CPU':>6} {'ROC AUC':>8} agrees")
    failed = 0
    for row in rows:
        base = cpu[row["model"]]
        ratio = base["seconds"] / row["seconds"] if row["seconds"] else float("nan")
        agrees = abs(row["roc_auc"] - base["roc_auc"]) <= tolerance
        failed += not agrees
        print(f"{row['model']:<14} {row['setting']:<9} {row['seconds']:>8.1f} {ratio:>6.2f} "
              f"{row['roc_auc']:>8.3f} {'yes' if agrees else 'NO'}")
    print(f"{failed} disagreement(s) beyond {tolerance} ROC AUC")
    return failed


if __name__ == "__main__":
    main()
