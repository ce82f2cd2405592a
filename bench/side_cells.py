"""What a change to side training does to the cells it touches: attack numbers over seeds,
before and after, in one run.

A side's leakage depends on how its recommender was trained, not only on its HR@10: a GRU4Rec
target that early stopping ends after 5 epochs gives Biased 0.82 ROC AUC on Amazon Beauty, one
that trains 17 epochs 0.93. So a change to side training is measured here on the paper's
same-recommender cells (shadow and target of one kind on one dataset) over several seeds: per
seed the sides' best epochs and HR@10, the training-free `norm` score and the Biased and DL-MIA
ROC AUCs, each built by this tree's code and, with `--baseline TREE`, by TREE's (another
checkout, e.g. `git worktree add /tmp/before HEAD~1`), every cell and seed in a fresh process.

A cell is `DATASET:RECOMMENDER` (shadow and target alike) or `SHADOW->TARGET`, each of those
`DATASET:RECOMMENDER`, for a cross cell. `--threads N` trains the sides with N torch threads: the
same model and data summed in another float order, which shows how far a cell rests on the
rounding of its sides' training (a side of a CPU kind whose kernels round differently is such a
perturbation too).

    .venv/bin/python bench/side_cells.py --cells amazon-beauty:gru4rec --baseline /tmp/before
    .venv/bin/python bench/side_cells.py --cells ml-1m:caser amazon-beauty:caser --seeds 0 1 2
    .venv/bin/python bench/side_cells.py --cells amazon-beauty:gru4rec --set patience=10
    .venv/bin/python bench/side_cells.py --cells 'amazon-beauty:bert4rec->ml-1m:caser' --threads 2
"""

from __future__ import annotations

import argparse
import json
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import pandas as pd
from fresh import json_in_fresh_process, machine_line, side_facts

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = ("norm", "biased", "dlmia")


def sides_of(cell: str) -> tuple[str, str]:
    """The (shadow, target) `DATASET:RECOMMENDER` pair that `cell` names."""
    shadow, _, target = cell.partition("->")
    target = target or shadow
    if any(side.count(":") != 1 for side in (shadow, target)):
        raise ValueError(f"cell {cell!r}: write DATASET:RECOMMENDER or SHADOW->TARGET")
    return shadow, target


def measure(cell: str, seed: int, data_root: str, settings: dict[str, Any],
            threads: int) -> dict[str, Any]:  # fmt: skip
    """Build the cell's two sides here (with `threads` torch threads) and attack it (with one);
    its sides' facts and ROC AUCs."""
    import torch

    from dlmia.cell import ListOptions, SideChoice, attack_cell, cached_dataset, cell_config
    from dlmia.sides import DatasetSpec, build_side

    def choice(side: str) -> SideChoice:
        dataset, recommender = side.split(":")
        return SideChoice(DatasetSpec(name=dataset, data_root=data_root), recommender, settings)

    shadow_side, target_side = sides_of(cell)
    config = cell_config(choice(shadow_side), choice(target_side), "biased", {}, ListOptions(),
                         seed=seed, device="cpu")  # fmt: skip
    torch.set_num_threads(threads)
    shadow, target = (build_side(cached_dataset(spec.dataset), spec)
                      for spec in (config.shadow, config.target))  # fmt: skip
    torch.set_num_threads(1)
    row: dict[str, Any] = {}
    for role, side in (("shadow", shadow), ("target", target)):
        facts = side_facts(side.info)
        row[f"{role}_epoch"] = facts.get("best_epoch", float("nan"))
        row[f"{role}_hr10"] = facts["recommender_hr_at_10"]
        row[f"{role}_pop_hr10"] = facts.get("popularity_hr_at_10", float("nan"))  # older trees
        row[f"{role}_fit_s"] = facts["fit_seconds"]
    for attack in ATTACKS:
        result = attack_cell(shadow, target, attack, {}, seed, "cpu")
        row[attack] = result.metrics["roc_auc"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--cells", nargs="+", default=[],
                        help="DATASET:RECOMMENDER or SHADOW->TARGET, each DATASET:RECOMMENDER")
    parser.add_argument("--threads", type=int, default=1, help="torch threads training a side")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--jobs", type=int, default=1, help="cells measured at once")
    parser.add_argument("--baseline", type=Path, help="a checkout with the code to compare to")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recommender setting of this tree's sides (repeatable)")  # fmt: skip
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_root = str(Path(args.data_root).resolve())
    settings = {k: json.loads(v) for k, _, v in (a.partition("=") for a in args.set)}
    if args.one:
        cell, _, seed = args.one.rpartition("@")
        print(json.dumps(measure(cell, int(seed), data_root, settings, args.threads)))
        return
    if not args.cells:
        parser.error("--cells: name at least one DATASET:RECOMMENDER")
    for cell in args.cells:
        try:
            sides_of(cell)
        except ValueError as error:
            parser.error(str(error))
    trees = {"now": ROOT, **({"before": args.baseline.resolve()} if args.baseline else {})}
    runs = [(cell, seed, code) for cell in args.cells for seed in args.seeds for code in trees]

    def run(cell: str, seed: int, code: str) -> dict[str, Any]:
        extra = [f"--set={a}" for a in args.set] if code == "now" else []
        row = json_in_fresh_process(
            trees[code], __file__, "--one", f"{cell}@{seed}", "--data-root", data_root,
            f"--threads={args.threads}", *extra, what=f"{cell} seed {seed}",
        )  # fmt: skip
        row = {"cell": cell, "code": code, "seed": seed, **row}
        print(json.dumps(row), flush=True)
        return row

    with ThreadPoolExecutor(args.jobs) as pool:
        rows = list(pool.map(lambda run_args: run(*run_args), runs))
    frame = pd.DataFrame(rows)
    print(f"# on {machine_line()}; sides trained with {args.threads} torch thread(s)")
    print(frame.round(3).to_string(index=False))
    means = frame.groupby(["cell", "code"])[["target_epoch", *ATTACKS]].agg(["mean", "std"])
    print("\nmean and standard deviation over seeds", args.seeds)
    print(means.round(3).to_string())


if __name__ == "__main__":
    main()
