"""Search bench: TPE against random search on four real cells, honest pick against the oracle.

Cells: two same-dataset ML-1M cells and two cross-dataset cells (ML-1M -> Digital Music and
back, LFM). Each cell's sides are built once; then each sampler searches DL-MIA's settings on it with
`tune.search.search_cell` (the default space, ASHA, `--trials` trials, 2 at a time, on a local Ray
with `--cpus` CPUs). Prints, per cell and sampler: trials per minute, the best label-free
objective found, and the target ROC AUC / balanced accuracy of the trial the objective selects,
of DL-MIA's defaults (the first trial), of the shadow-validation-only pick and of the oracle
(the best target ROC AUC: selected on test labels, not an attack result). Then the calibration
table: for candidate objective weights, the target ROC AUC of the trial each weighting would
pick (all finished trials of both samplers), per cell and on average, with the mean over
leave-one-cell-out choices. Rerunning with the same `--out` restores finished searches and
resumes an interrupted one (times reported are the first run's). Writes `search_curves.png` (best objective after n trials), the
trial table and the tables under `--out`.

    .venv/bin/python bench/search.py                          # 4 cells x {tpe, random} x 16 trials
    .venv/bin/python bench/search.py --trials 8 --samplers tpe
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.figures import pyplot, save_figure  # noqa: E402
from dlmia.data.splits import SplitConfig  # noqa: E402
from dlmia.selection import SelectionConfig, objective  # noqa: E402
from dlmia.sides import DatasetSpec, SideOutput, SideSpec, build_side, prepare_dataset  # noqa: E402
from dlmia.vectors import ItemVectorConfig  # noqa: E402
from tune.search import SearchConfig, search_cell  # noqa: E402

ML, DM = "ml-1m", "amazon-digital-music"
CELLS = [
    ((ML, "itemcf"), (ML, "lfm")),
    ((ML, "lfm"), (ML, "itemcf")),
    ((ML, "lfm"), (DM, "lfm")),  # method.md 8: where the alignment weight matters most
    ((DM, "lfm"), (ML, "lfm")),
]
WEIGHTS = {  # candidate (w_shadow, w_reverse, w_mmd) of the label-free objective
    "shadow only": (1.0, 0.0, 0.0),
    "reverse only": (0.0, 1.0, 0.0),
    "shadow + reverse": (1.0, 1.0, 0.0),
    "shadow + reverse - mmd (default)": (1.0, 1.0, 1.0),
    "shadow + reverse - 3 mmd": (1.0, 1.0, 3.0),
    "shadow + 2 reverse - mmd": (1.0, 2.0, 1.0),
    "shadow - mmd": (1.0, 0.0, 1.0),
    "shadow + reverse - 10 mmd": (1.0, 1.0, 10.0),
}


def main() -> None:
    args = parse()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    torch.set_num_threads(1)
    sides = build_sides(args.data_root, args.seed)
    ray.init(address="local", num_cpus=args.cpus, include_dashboard=False, log_to_driver=False)
    frames, runs = [], []
    try:
        for (shadow, target), sampler in itertools.product(CELLS, args.samplers):
            cell = f"{'/'.join(shadow)} -> {'/'.join(target)}"
            search = SearchConfig(num_samples=args.trials, max_concurrent=args.cpus, sampler=sampler)
            started = time.perf_counter()
            outcome = search_cell(
                sides["shadow", shadow], sides["target", target], search, seed=args.seed,
                storage_dir=args.out / sampler, name=slug(cell), device="cpu",
            )
            wall = first_wall(args.out / sampler / f"{slug(cell)}.wall", started)
            trials = outcome.trials.assign(cell=cell, sampler=sampler)
            frames.append(trials)
            runs.append(run_row(cell, sampler, trials, wall))
            print(f"{cell} [{sampler}]: {len(trials)} trials in {wall:.0f} s", flush=True)
    finally:
        ray.shutdown()
    trials = pd.concat(frames, ignore_index=True)
    args.out.mkdir(parents=True, exist_ok=True)
    trials.to_csv(args.out / "trials.csv", index=False)
    table = pd.DataFrame(runs)
    calibration = calibrate(trials)
    for name, frame in (("search", table), ("calibration", calibration)):
        frame.to_csv(args.out / f"{name}.csv", index=False)
        print(f"\n{name}:\n{frame.round(3).to_string(index=False)}")
    print(f"\nwrote {plot_curves(trials, args.out / 'search_curves.png')}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data-root", default=str(default_root))
    parser.add_argument("--trials", type=int, default=16, help="trials per cell and sampler")
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random"])
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/bench-search"))
    return parser.parse_args()


def build_sides(data_root: str, seed: int) -> dict[tuple[str, tuple[str, str]], SideOutput]:
    """Every side the cells need, built once (split and item vectors seeded by `seed`)."""
    datasets = {}
    for name in sorted({d for cell in CELLS for d, _ in cell}):
        spec = DatasetSpec(name=name, data_root=data_root, split=SplitConfig(seed=seed),
                           vectors=ItemVectorConfig(seed=seed, device="cpu"))
        datasets[name] = prepare_dataset(spec)
    sides = {}
    for role, index in (("shadow", 0), ("target", 1)):
        for dataset, recommender in sorted({cell[index] for cell in CELLS}):
            spec = SideSpec(datasets[dataset].spec, role, recommender, seed=seed, device="cpu")
            sides[role, (dataset, recommender)] = build_side(datasets[dataset], spec)
    return sides


def first_wall(path: Path, started: float) -> float:
    """Seconds since `started`, kept in `path` the first time: a rerun restores finished
    searches (and resumes an interrupted one) but reports the first run's time."""
    if not path.exists():
        path.write_text(f"{time.perf_counter() - started}")
    return float(path.read_text())


def slug(cell: str) -> str:
    return cell.replace(" -> ", "__").replace("/", "-")


def pick(trials: pd.DataFrame, column: str) -> pd.Series:
    """The finished trial flagged in `column`."""
    return trials[trials[column] & trials["finished"]].iloc[0]


def run_row(cell: str, sampler: str, trials: pd.DataFrame, wall: float) -> dict[str, object]:
    """One line of the search table: speed, best objective and what each pick gives."""
    finished = trials[trials["finished"]]
    defaults = trials[trials["trial"] == 1].iloc[0]
    row: dict[str, object] = {
        "cell": cell, "sampler": sampler, "trials": len(trials), "finished": len(finished),
        "trials/min": len(trials) / wall * 60, "best objective": finished["objective"].max(),
    }
    picks = {"selected": pick(trials, "selected"), "defaults": defaults,
             "shadow-only": pick(trials, "shadow_pick"), "oracle": pick(trials, "oracle_pick")}
    for name, chosen in picks.items():
        row[f"{name} ROC"] = chosen.get("target.roc_auc", np.nan)
        row[f"{name} BA"] = chosen.get("target.balanced_accuracy", np.nan)
    return row


def calibrate(trials: pd.DataFrame) -> pd.DataFrame:
    """Per candidate weighting, the target ROC AUC of the finished trial it ranks first in each
    cell (both samplers' trials pooled), their mean, and the mean of leave-one-cell-out picks."""
    finished = trials[trials["finished"]]
    cells = list(dict.fromkeys(finished["cell"]))
    picked = pd.DataFrame(index=list(WEIGHTS), columns=cells, dtype=float)
    for name, (w_shadow, w_reverse, w_mmd) in WEIGHTS.items():
        config = SelectionConfig(w_shadow=w_shadow, w_reverse=w_reverse, w_mmd=w_mmd)
        for cell, group in finished.groupby("cell", sort=False):
            scores = group.apply(lambda r: objective(r.to_dict(), config), axis=1)
            picked.loc[name, cell] = group.loc[scores.idxmax(), "target.roc_auc"]
    table = picked.copy()
    table["mean"] = picked.mean(axis=1)
    held_out = []  # choose the weighting on three cells, score it on the fourth
    for cell in cells:
        best = picked.drop(columns=cell).mean(axis=1).idxmax()
        held_out.append(picked.loc[best, cell])
    table.loc["leave-one-cell-out choice", cells] = held_out
    table.loc["leave-one-cell-out choice", "mean"] = float(np.mean(held_out))
    oracle = finished.groupby("cell", sort=False)["target.roc_auc"].max()
    table.loc["oracle (test labels)", cells] = oracle[cells].to_numpy()
    table.loc["oracle (test labels)", "mean"] = oracle.mean()
    return table.reset_index(names="weights")


def plot_curves(trials: pd.DataFrame, path: Path) -> Path:
    """Best objective after n trials, per cell, one line per sampler."""
    cells = list(dict.fromkeys(trials["cell"]))
    figure, axes = pyplot().subplots(1, len(cells), figsize=(4 * len(cells), 3.4), squeeze=False)
    for ax, cell in zip(axes[0], cells):
        for sampler, group in trials[trials["cell"] == cell].groupby("sampler"):
            group = group.sort_values("trial")
            ax.step(group["trial"], group["objective"].cummax(), where="post", label=sampler)
        ax.set_title(cell, fontsize=9)
        ax.set_xlabel("trials")
        ax.set_ylabel("best objective so far")
        ax.legend(fontsize=8)
    figure.tight_layout()
    return save_figure(figure, path)


if __name__ == "__main__":
    main()
