"""DL-MIA fit speed on a real cell: stage seconds, the label-free criteria, and what a fresh
process pays for its first fit; against a baseline tree, interleaved in the same run.

The cell is ML-1M ItemCF -> ML-1M LFM (seed 0, the paper's item vectors), built once here
through `cell_config` as every run builds it. Each measurement runs in a fresh process on one
tree's code (PYTHONPATH), one thread, trees alternating, so both see the same machine: this
2-core VM's speed drifts by up to 1.4x within a day. Per process: a tiny fit (one epoch per
stage: the lazy start-up a search trial's new worker pays), then the default-settings fit
(stage seconds) and one `criteria` call. Prints medians per tree and the ratios.

    .venv/bin/python bench/fits.py --baseline /tmp/before      # a checkout of older code
    .venv/bin/python bench/fits.py --repeats 7
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fresh import json_in_fresh_process

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("first_fit_s", "fit_s", "vae_s", "heads_s", "joint_s", "criteria_s")


def measure(cell: Path) -> dict[str, Any]:
    """The timings of this process's code on the saved cell (see the module doc)."""
    import torch
    from sklearn.metrics import roc_auc_score

    from dlmia.attacks.dlmia import DLMIAAttack, DLMIAConfig
    from dlmia.selection import criteria

    torch.set_num_threads(1)
    data = np.load(cell)
    shadow, labels, target = data["shadow"], data["shadow_labels"], data["target"]
    tiny = DLMIAConfig(epochs_vae=1, epochs_heads=1, epochs_joint=1)
    started = time.perf_counter()
    DLMIAAttack(tiny, device="cpu", seed=1).fit(shadow, labels, target)
    first = time.perf_counter() - started
    attack = DLMIAAttack(DLMIAConfig(), device="cpu", seed=0).fit(shadow, labels, target)
    started = time.perf_counter()
    criteria(attack, shadow, labels, target)
    scores = attack.predict_proba(target)
    info = attack.info
    return {
        "first_fit_s": first, "fit_s": info["fit_seconds"], "vae_s": info["vae_seconds"],
        "heads_s": info["heads_seconds"], "joint_s": info["joint_seconds"],
        "criteria_s": time.perf_counter() - started,
        "roc_auc": float(roc_auc_score(data["target_labels"], scores)),
    }


def save_cell(data_root: str, path: Path) -> None:
    """Build the cell's two sides with this tree's code and save their vectors and labels."""
    from dlmia.cell import ListOptions, SideChoice, cached_dataset, cell_config
    from dlmia.sides import DatasetSpec, build_side

    choices = [SideChoice(DatasetSpec(name="ml-1m", data_root=data_root), model)
               for model in ("itemcf", "lfm")]
    config = cell_config(*choices, "dlmia", {}, ListOptions(), 0, "cpu")
    shadow = build_side(cached_dataset(config.shadow.dataset), config.shadow)
    target = build_side(cached_dataset(config.target.dataset), config.target)
    np.savez(path, shadow=shadow.vectors, shadow_labels=shadow.labels,
             target=target.vectors, target_labels=target.labels)


def in_fresh_process(tree: Path, cell: Path) -> dict[str, Any]:
    """`measure` in a new process on `tree`'s code."""
    return json_in_fresh_process(tree, __file__, "--one", str(cell), what="the fit")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--baseline", type=Path, help="a checkout with the code to compare to")
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per tree")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    trees = {"now": ROOT, **({"before": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory() as folder:
        cell = Path(folder) / "cell.npz"
        save_cell(str(Path(args.data_root).resolve()), cell)
        runs: dict[str, list[dict[str, Any]]] = {name: [] for name in trees}
        for _ in range(args.repeats):
            for name, tree in trees.items():
                runs[name].append(in_fresh_process(tree, cell))
    medians = {name: {c: statistics.median(r[c] for r in rows) for c in (*COLUMNS, "roc_auc")}
               for name, rows in runs.items()}
    print(f"ML-1M itemcf -> lfm, DL-MIA defaults, medians of {args.repeats} fresh processes")
    print(f"{'code':<10}" + "".join(f"{c:>13}" for c in (*COLUMNS, "roc_auc")))
    for name, row in medians.items():
        print(f"{name:<10}" + "".join(f"{row[c]:>13.3f}" for c in (*COLUMNS, "roc_auc")))
    if "before" in medians:
        ratios = {c: medians["before"][c] / medians["now"][c] for c in COLUMNS}
        print(f"{'x faster':<10}" + "".join(f"{ratios[c]:>13.2f}" for c in COLUMNS))


if __name__ == "__main__":
    main()
