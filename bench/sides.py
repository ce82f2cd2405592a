"""Where a side's time goes: per dataset and recommender, the seconds of dataset preparation,
recommender fit (of which early-stopping validation), list serving and difference vectors, the
peak memory, and the recommender's HR@10 on non-members; against a baseline tree in the same run.

Each side (the shadow role, seed 0) is built in a fresh process, so peak memory is that side's
(resident set high-water mark, including the dataset). With `--baseline TREE` (another checkout
of this repository, e.g. the commit before a change, made with `git worktree add`) every side is
also built by TREE's code and the table shows both and their ratio.

    .venv/bin/python bench/sides.py --data-root DATA
    .venv/bin/python bench/sides.py --data-root DATA --baseline /tmp/before --only ncf
"""

from __future__ import annotations

import argparse
import json
import resource
import time
from pathlib import Path
from typing import Any

from fresh import json_in_fresh_process, machine_line, side_facts

ROOT = Path(__file__).resolve().parents[1]
SIDES = (
    *(("ml-1m", r) for r in ("itemcf", "lfm", "ncf", "gru4rec", "caser", "bert4rec")),
    *(("amazon-digital-music", r) for r in ("itemcf", "lfm", "ncf")),
    *(("amazon-beauty", r) for r in ("gru4rec", "caser", "bert4rec")),
)
COLUMNS = ("prepare_s", "fit_s", "validation_s", "recommend_s", "vector_s", "peak_mb", "hr_at_10")


def measure(dataset: str, recommender: str, data_root: str) -> dict[str, Any]:
    """Build the shadow side of (`dataset`, `recommender`) here; its stage timings and memory."""
    import torch

    from dlmia.cell import ListOptions, SideChoice, cell_config
    from dlmia.sides import DatasetSpec, build_side, prepare_dataset

    torch.set_num_threads(1)
    spec = DatasetSpec(name=dataset, data_root=data_root)
    side = SideChoice(spec, recommender)
    config = cell_config(side, side, "norm", {}, ListOptions(), seed=0, device="cpu")
    started = time.perf_counter()
    data = prepare_dataset(config.shadow.dataset)
    prepared = time.perf_counter()
    info = side_facts(build_side(data, config.shadow).info)
    return {
        "prepare_s": prepared - started,
        "fit_s": info["fit_seconds"],
        "validation_s": info.get("validation_seconds", float("nan")),
        "recommend_s": info["recommend_seconds"],
        "vector_s": info["vector_seconds"],
        "peak_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
        "hr_at_10": info["recommender_hr_at_10"],
        "items": info.get("recommender_items", data.histories.n_items),
    }


def run_in(tree: Path, dataset: str, recommender: str, data_root: str) -> dict[str, Any]:
    """`measure` in a fresh process on `tree`'s code (this script, that tree's packages)."""
    return json_in_fresh_process(tree, __file__, "--one", dataset, recommender,
                                 "--data-root", data_root, what=f"{dataset}/{recommender}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--data-root", default=str(ROOT.parent / "shared" / "data"))
    parser.add_argument("--baseline", type=Path, help="a checkout with the code to compare to")
    parser.add_argument("--only", nargs="+", help="recommenders (or datasets) to run")
    parser.add_argument(
        "--one", nargs=2, metavar=("DATASET", "RECOMMENDER"), help=argparse.SUPPRESS
    )
    args = parser.parse_args()
    data_root = str(Path(args.data_root).resolve())
    if args.one:
        print(json.dumps(measure(*args.one, data_root)))
        return
    chosen = [s for s in SIDES if not args.only or set(s) & set(args.only)]
    print(f"# on {machine_line()}")
    print(f"{'dataset':<21} {'model':<9} {'code':<8} {'items':>7} "
          + " ".join(f"{c:>12}" for c in COLUMNS))
    for dataset, recommender in chosen:
        rows = {"now": run_in(ROOT, dataset, recommender, data_root)}
        if args.baseline:
            rows["before"] = run_in(args.baseline.resolve(), dataset, recommender, data_root)
        for code, row in sorted(rows.items()):
            print(f"{dataset:<21} {recommender:<9} {code:<8} {row['items']:>7} "
                  + " ".join(f"{row[c]:>12.3f}" for c in COLUMNS), flush=True)
        if args.baseline:
            ratio = {c: rows["before"][c] / rows["now"][c] if rows["now"][c] else float("nan")
                     for c in ("fit_s", "recommend_s", "peak_mb")}
            print(f"{'':<21} {'':<9} {'x faster':<8} {'':>7} fit {ratio['fit_s']:.2f}, "
                  f"recommend {ratio['recommend_s']:.2f}, memory {ratio['peak_mb']:.2f}")


if __name__ == "__main__":
    main()
