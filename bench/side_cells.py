"""What a change to side training does to the cells it touches: attack numbers over seeds,
before and after, in one run.

A side's leakage depends on how its recommender was trained, not only on its HR@10: a GRU4Rec
target that early stopping ends after 5 epochs gives Biased 0.82 ROC AUC on Amazon Beauty, one
that trains 17 epochs 0.93. So a change to side training is measured here on the paper's
same-recommender cells (shadow and target of one kind on one dataset) over several seeds: per
seed the sides' best epochs and HR@10, the training-free `norm` score and the Biased and DL-MIA
ROC AUCs, each built by this tree's code and, with `--baseline TREE`, by TREE's (another
checkout, e.g. `git worktree add /tmp/before HEAD~1`), every cell and seed in a fresh process.

    .venv/bin/python bench/side_cells.py --cells amazon-beauty:gru4rec --baseline /tmp/before
    .venv/bin/python bench/side_cells.py --cells ml-1m:caser amazon-beauty:caser --seeds 0 1 2
    .venv/bin/python bench/side_cells.py --cells amazon-beauty:gru4rec --set patience=10
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path
from typing import Any

import pandas as pd
from fresh import json_in_fresh_process, machine_line, side_facts

ROOT = Path(__file__).resolve().parents[1]
ATTACKS = ("norm", "biased", "dlmia")


def measure(dataset: str, recommender: str, seed: int, data_root: str,
            settings: dict[str, Any]) -> dict[str, Any]:  # fmt: skip
    """Build the cell's two sides here and attack it; its sides' facts and ROC AUCs."""
    import torch

    from dlmia.cell import ListOptions, SideChoice, attack_cell, cached_dataset, cell_config
    from dlmia.sides import DatasetSpec, build_side

    torch.set_num_threads(1)
    choice = SideChoice(DatasetSpec(name=dataset, data_root=data_root), recommender, settings)
    config = cell_config(choice, choice, "biased", {}, ListOptions(), seed=seed, device="cpu")
    data = cached_dataset(config.target.dataset)
    shadow, target = build_side(data, config.shadow), build_side(data, config.target)
    row: dict[str, Any] = {}
    for role, side in (("shadow", shadow), ("target", target)):
        facts = side_facts(side.info)
        row[f"{role}_epoch"] = facts.get("best_epoch", float("nan"))
        row[f"{role}_hr10"] = facts["recommender_hr_at_10"]
        row[f"{role}_fit_s"] = facts["fit_seconds"]
    for attack in ATTACKS:
        result = attack_cell(shadow, target, attack, {}, seed, "cpu")
        row[attack] = result.metrics["roc_auc"]
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--cells", nargs="+", default=[], help="DATASET:RECOMMENDER ...")
    parser.add_argument("--seeds", nargs="+", type=int, default=[0, 1, 2])
    parser.add_argument("--baseline", type=Path, help="a checkout with the code to compare to")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE",
                        help="recommender setting of this tree's sides (repeatable)")  # fmt: skip
    parser.add_argument("--one", help=argparse.SUPPRESS)
    args = parser.parse_args()
    data_root = str(Path(args.data_root).resolve())
    settings = {k: json.loads(v) for k, _, v in (a.partition("=") for a in args.set)}
    if args.one:
        dataset, recommender, seed = args.one.split(":")
        print(json.dumps(measure(dataset, recommender, int(seed), data_root, settings)))
        return
    if not args.cells:
        parser.error("--cells: name at least one DATASET:RECOMMENDER")
    trees = {"now": ROOT, **({"before": args.baseline.resolve()} if args.baseline else {})}
    rows = []
    for cell in args.cells:
        for seed in args.seeds:
            for code, tree in trees.items():
                extra = [f"--set={a}" for a in args.set] if code == "now" else []
                row = json_in_fresh_process(
                    tree, __file__, "--one", f"{cell}:{seed}", "--data-root", data_root, *extra,
                    what=f"{cell} seed {seed}",
                )  # fmt: skip
                rows.append({"cell": cell, "code": code, "seed": seed, **row})
                print(json.dumps(rows[-1]), flush=True)
    frame = pd.DataFrame(rows)
    print(f"# on {machine_line()}")
    print(frame.round(3).to_string(index=False))
    means = frame.groupby(["cell", "code"])[["target_epoch", *ATTACKS]].agg(["mean", "std"])
    print("\nmean and standard deviation over seeds", args.seeds)
    print(means.round(3).to_string())


if __name__ == "__main__":
    main()
