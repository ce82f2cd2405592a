"""DL-MIA fit speed on a real cell: stage seconds, the label-free criteria, what a fresh process
pays for its first fit, and a search's group of trials fitted side by side; against a baseline
tree, interleaved in the same run.

The cell is ML-1M ItemCF -> ML-1M LFM (seed 0, the paper's item vectors), built once here
through `cell_config` as every run builds it. Each measurement runs in a fresh process on one
tree's code (PYTHONPATH), one thread, trees alternating, so both see the same machine: this
2-core VM's speed drifts by up to 1.4x within a day. Per process: a tiny fit (one epoch per
stage: the lazy start-up a search trial's new worker pays), then the default-settings fit
(stage seconds) and one `criteria` call. In another fresh process, `--group K` trials fitted
side by side as a search's Tune trial fits them (the defaults and K - 1 points of the default
space, drawn with a fixed seed: the same points on every tree), first thing in that process, with
its page faults; a checksum of the K trials' target scores shows whether the numbers moved.
Prints medians per tree and the ratios.

    .venv/bin/python bench/fits.py --baseline /tmp/before      # a checkout of older code
    .venv/bin/python bench/fits.py --repeats 7 --group 12
"""

from __future__ import annotations

import argparse
import json
import resource
import statistics
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from fresh import json_in_fresh_process, machine_line

ROOT = Path(__file__).resolve().parents[1]
COLUMNS = ("first_fit_s", "fit_s", "vae_s", "heads_s", "joint_s", "criteria_s")
GROUP_COLUMNS = ("group_s", "vae_s", "heads_s", "joint_s", "page_faults")


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


def measure_group(cell: Path, size: int) -> dict[str, Any]:
    """A group of `size` trials fitted side by side on the saved cell (see the module doc)."""
    import torch

    from dlmia.attacks.dlmia import DLMIAAttack
    from dlmia.attacks.dlmia.side_by_side import fit_side_by_side

    torch.set_num_threads(1)
    data = np.load(cell)
    shadow, labels, target = data["shadow"], data["shadow_labels"], data["target"]
    attacks = [DLMIAAttack(config, device="cpu", seed=0) for config in group_settings(size)]
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    started = time.perf_counter()
    fit_side_by_side(attacks, shadow, labels, target)
    seconds = time.perf_counter() - started
    info = attacks[0].info
    return {
        "group_s": seconds, "vae_s": info["vae_seconds"], "heads_s": info["heads_seconds"],
        "joint_s": info["joint_seconds"],
        "page_faults": resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults,
        "checksum": float(sum(attack.predict_proba(target).sum() for attack in attacks)),
    }  # fmt: skip


def group_settings(size: int) -> list[Any]:
    """DL-MIA's defaults and `size` - 1 points of its default search space, drawn by Optuna's
    random sampler with a fixed seed, as a search's trials get their settings."""
    import optuna

    from tune.space import default_space, distributions, settings_of

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    space = distributions(default_space("dlmia", {}))
    points = [{}, *(study.ask(space).params for _ in range(size - 1))]
    return [settings_of("dlmia", point, {}) for point in points]


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


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--baseline", type=Path, help="a checkout with the code to compare to")
    parser.add_argument("--repeats", type=int, default=5, help="fresh processes per tree")
    parser.add_argument("--group", type=int, default=0, metavar="K",
                        help="also time K trials fitted side by side (0: not)")
    parser.add_argument("--one", type=Path, help=argparse.SUPPRESS)
    parser.add_argument("--one-group", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.one:
        print(json.dumps(measure(args.one)))
        return
    if args.one_group:
        print(json.dumps(measure_group(args.one_group, args.group)))
        return
    trees = {"now": ROOT, **({"before": args.baseline.resolve()} if args.baseline else {})}
    with tempfile.TemporaryDirectory() as folder:
        cell = Path(folder) / "cell.npz"
        save_cell(str(Path(args.data_root).resolve()), cell)
        kinds = {"fit": ("--one", str(cell)),
                 **({"group": ("--one-group", str(cell), "--group", str(args.group))}
                    if args.group else {})}  # fmt: skip
        runs: dict[str, dict[str, list[dict[str, Any]]]] = {
            kind: {name: [] for name in trees} for kind in kinds
        }
        for _ in range(args.repeats):
            for kind, flags in kinds.items():
                for name, tree in trees.items():
                    runs[kind][name].append(
                        json_in_fresh_process(tree, __file__, *flags, what=f"the {kind}")
                    )
    print(f"ML-1M itemcf -> lfm, DL-MIA defaults, medians of {args.repeats} fresh processes, "
          f"on {machine_line()}")
    print_table(runs["fit"], COLUMNS, "roc_auc")
    if args.group:
        print(f"\n{args.group} trials side by side (the defaults and {args.group - 1} points of "
              f"the default space), first in a fresh process, medians of {args.repeats}")
        print_table(runs["group"], GROUP_COLUMNS, "checksum")


def print_table(runs: dict[str, list[dict[str, Any]]], columns: tuple[str, ...],
                unchanged: str) -> None:  # fmt: skip
    """Medians per tree of `columns` and of `unchanged` (a number that shows whether the
    results moved), and the ratios before / now."""
    shown = (*columns, unchanged)
    medians = {name: {c: statistics.median(r[c] for r in rows) for c in shown}
               for name, rows in runs.items()}  # fmt: skip
    print(f"{'code':<10}" + "".join(f"{c:>13}" for c in shown))
    for name, row in medians.items():
        print(f"{name:<10}" + "".join(f"{row[c]:>13.3f}" for c in shown))
    if "before" in medians:
        ratios = {c: medians["before"][c] / max(medians["now"][c], 1e-9) for c in columns}
        print(f"{'x faster':<10}" + "".join(f"{ratios[c]:>13.2f}" for c in columns))


if __name__ == "__main__":
    main()
