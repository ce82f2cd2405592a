"""Attack quality and stage timings on real data: Biased, DL-MIA and its ablations.

Prints (1) the stage timings of one seed (load, filter/split, item vectors, each side's fit,
recommend and vectors, each attack's fit) and (2) per cell and attack the mean and standard
deviation over seeds of ROC AUC and balanced accuracy, beside the paper's number (a balanced
accuracy, the paper's "AUC"). Sides are built once per seed and shared by every cell.

    # issue 2: the four ML-1M cells, Biased
    .venv/bin/python bench/cells.py
    # issue 3: + cross-dataset, DL-MIA, ablations
    .venv/bin/python bench/cells.py --preset dlmia
    # issue 4: GRU4Rec, Caser, BERT4Rec, Biased
    .venv/bin/python bench/cells.py --preset sequential
    # issue 4: NCF with ItemCF and LFM, Biased
    .venv/bin/python bench/cells.py --preset ncf
"""

from __future__ import annotations

import argparse
import itertools
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from analysis.paper import paper_table
from dlmia.cell import ListOptions, SideChoice, attack_cell, cached_dataset, cell_config
from dlmia.data.sources import name_or_path
from dlmia.machine import machine
from dlmia.sides import DatasetSpec, build_side
from dlmia.vectors import ItemVectorConfig

ATTACK_VARIANTS: dict[str, tuple[str, dict[str, Any]]] = {
    "biased": ("biased", {}),
    "dlmia": ("dlmia", {}),
    "no-encoder": ("dlmia", {"use_encoder": False}),
    "no-weights": ("dlmia", {"use_weights": False}),
    "no-align": ("dlmia", {"lambda_align": 0.0}),
    "no-pseudo": ("dlmia", {"use_pseudo_labels": False}),
}
ML = [("ml-1m", "itemcf"), ("ml-1m", "lfm")]
MUSIC = [("amazon-digital-music", "itemcf"), ("amazon-digital-music", "lfm")]
SEQUENTIAL = [("ml-1m", "gru4rec"), ("ml-1m", "caser"), ("ml-1m", "bert4rec")]
NCF = ("ml-1m", "ncf")
PRESETS = {
    "biased": (list(itertools.product(ML, ML)), ["biased"]),
    "dlmia": (
        list(itertools.product(ML, ML))
        + list(itertools.product(ML, MUSIC))
        + list(itertools.product(MUSIC, ML)),
        list(ATTACK_VARIANTS),
    ),
    "sequential": (list(itertools.product(SEQUENTIAL, SEQUENTIAL)), ["biased"]),
    "ncf": (
        [(NCF, NCF)] + [(NCF, side) for side in ML] + [(side, NCF) for side in ML], ["biased"]
    ),
}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--data-root", default=str(Path(__file__).resolve().parents[2] / "shared" / "data")
    )
    parser.add_argument("--preset", choices=sorted(PRESETS), default="biased")
    parser.add_argument(
        "--attacks", nargs="+", choices=sorted(ATTACK_VARIANTS), help="override the preset's"
    )
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--device", default="auto")
    args = parser.parse_args()
    torch.set_num_threads(1)
    cells, attacks = PRESETS[args.preset]
    attacks = args.attacks or attacks

    rows, timings = [], []
    for seed in args.seeds:
        datasets, sides = {}, {}
        for shadow, target in cells:  # specs as every run builds them: dlmia.cell.cell_config
            choices = [
                SideChoice(dataset_spec(d, args.data_root, args.device), r)
                for d, r in (shadow, target)
            ]
            config = cell_config(*choices, "biased", {}, ListOptions(), seed, args.device)
            for spec, (dataset, recommender) in ((config.shadow, shadow), (config.target, target)):
                datasets[dataset] = cached_dataset(spec.dataset)
                if (spec.role, dataset, recommender) not in sides:
                    sides[spec.role, dataset, recommender] = build_side(datasets[dataset], spec)
        for (shadow, target), attack in itertools.product(cells, attacks):
            name, settings = ATTACK_VARIANTS[attack]
            result = attack_cell(
                sides[("shadow", *shadow)], sides[("target", *target)], name, settings, seed,
                args.device,
            )
            rows.append({"shadow": "/".join(shadow), "target": "/".join(target), "attack": attack,
                         "seed": seed, **result.metrics,
                         "attack_seconds": result.attack_seconds})
        if seed == args.seeds[0]:
            timings = stage_timings(datasets, sides, rows)
    print(f"\nStage timings (seed {args.seeds[0]:d}) on {machine()}")
    print(pd.DataFrame(timings).to_string(index=False))
    print("\nAttack quality: mean ± std over seeds", args.seeds)
    print(summary(pd.DataFrame(rows)).to_string(index=False))


def dataset_spec(name: str, data_root: str, device: str) -> DatasetSpec:
    """The dataset as `dlmia cell` names it; the seed reaches it through `cell_config`."""
    vectors = ItemVectorConfig(device=device)
    return DatasetSpec(**name_or_path(name), data_root=data_root, vectors=vectors)


def stage_timings(datasets: dict, sides: dict, rows: list[dict]) -> list[dict[str, Any]]:
    """One row per stage of the first seed: what took how long, and on how many users."""
    out = []
    for name, data in datasets.items():
        for stage in ("load_seconds", "filter_split_seconds", "item_vector_seconds"):
            out.append({"stage": f"{name}: {stage.removesuffix('_seconds')}",
                        "seconds": data.stats[stage], "users": data.stats["n_users"]})
    for (role, dataset, recommender), side in sides.items():
        stages = {"fit": side.info.served.fit_seconds,
                  "recommend": side.info.served.recommend_seconds,
                  "vector": side.info.vector_seconds}  # fmt: skip
        for stage, seconds in stages.items():
            out.append({"stage": f"{dataset}/{role}/{recommender}: {stage}",
                        "seconds": seconds, "users": side.info.n_users})
    frame = pd.DataFrame(rows)
    for attack, group in frame.groupby("attack"):
        out.append({"stage": f"attack {attack}: fit+predict (mean per cell)",
                    "seconds": group["attack_seconds"].mean(),
                    "users": int(group["n_members"].iloc[0] * 2)})
    return out


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Mean ± std per cell and attack, with the paper's balanced accuracy beside ours."""
    paper = paper_table()
    paper["shadow"] = paper["shadow_dataset"] + "/" + paper["shadow_recommender"]
    paper["target"] = paper["target_dataset"] + "/" + paper["target_recommender"]
    grouped = frame.groupby(["shadow", "target", "attack"], sort=False).agg(
        roc_auc=("roc_auc", "mean"), roc_auc_std=("roc_auc", "std"),
        bal_acc=("balanced_accuracy", "mean"), bal_acc_std=("balanced_accuracy", "std"),
        seconds=("attack_seconds", "mean"),
    ).reset_index()
    grouped = grouped.merge(paper[["shadow", "target", "auc_biased", "auc_dlmia"]], how="left")
    grouped["paper_bal_acc"] = grouped.apply(
        lambda r: r["auc_biased"] if r["attack"] == "biased" else r["auc_dlmia"], axis=1
    )
    return grouped.drop(columns=["auc_biased", "auc_dlmia"]).round(3)


if __name__ == "__main__":
    main()
