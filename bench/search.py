"""Search bench: TPE against random search on real cells, the label-free pick against the
shadow-only pick and the oracle, and the calibration of the objective's weights.

Cells: two same-dataset ML-1M cells, a Digital Music cell and two cross-dataset cells (ML-1M ->
Digital Music and back, LFM), each under both item-vector settings (`vectorization`,
`all-histories`): 10 cells. Each cell's sides are built once (through `dlmia.cell.cell_config`, as
every run builds them); then each sampler searches DL-MIA's settings on it with
`tune.search_tune.search_on_tune` (the default space, ASHA, `--trials` trials, 2 at a time, on a
local Ray with `--cpus` CPUs). Prints, per cell and sampler: trials per minute, the best label-free
objective found, and the target ROC AUC / balanced accuracy of the trial the objective selects, of
DL-MIA's defaults (the first trial), of the shadow-only pick and of the oracle (the best target ROC
AUC: selected on test labels, not an attack result). Then the calibration table: for candidate
objective weights, the target ROC AUC of the trial each weighting would pick (all finished trials
of all samplers), per cell and on average; the leave-one-cell-out choice (the weighting best on the
other cells, scored on the held-out one); the shadow-only pick; and on how many cells the default
weights' pick and the leave-one-cell-out pick are at or above the shadow-only pick. Rerunning with
the same `--out` restores finished searches and resumes an interrupted one (times reported are the
first run's). Writes `search_curves.png` (best objective after n trials), the trial table and the
tables under `--out`.

    .venv/bin/python bench/search.py                         # 10 cells x {tpe, random} x 16 trials
    .venv/bin/python bench/search.py --trials 8 --samplers tpe
    .venv/bin/python bench/search.py --cells 'ml-1m/* -> ml-1m/*'   # the four ML-1M cells
    .venv/bin/python bench/search.py --cells 'ml-1m/* -> ml-1m/*' --samplers tpe --trials 24 \
        --side-by-side 1 8 --rounds 2      # trials side by side against one at a time, A/B
"""

from __future__ import annotations

import argparse
import itertools
import os
import sys
import time
from fnmatch import fnmatch
from pathlib import Path

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from analysis.figures import pyplot, save_figure  # noqa: E402
from dlmia.cell import ListOptions, SideChoice, cached_dataset, cell_config  # noqa: E402
from dlmia.machine import machine  # noqa: E402
from dlmia.selection import SelectionConfig, objective  # noqa: E402
from dlmia.sides import DatasetSpec, SideOutput, build_side  # noqa: E402
from dlmia.vectors import VECTOR_FIT_ON, ItemVectorConfig  # noqa: E402
from tune.cluster import start_local_ray  # noqa: E402
from tune.search import SearchConfig  # noqa: E402
from tune.search_tune import search_on_tune  # noqa: E402

ML, DM = "ml-1m", "amazon-digital-music"
PAIRS = [
    ((ML, "itemcf"), (ML, "lfm")),
    ((ML, "lfm"), (ML, "itemcf")),
    ((DM, "itemcf"), (DM, "lfm")),
    ((ML, "lfm"), (DM, "lfm")),  # method.md 8: where the alignment weight matters most
    ((DM, "lfm"), (ML, "lfm")),
]
SHADOW_ONLY = "shadow-only pick (AUC, ties by loss)"
DEFAULT = "shadow + reverse + mmd (default)"
CELLS = [(fit_on, shadow, target) for fit_on in VECTOR_FIT_ON for shadow, target in PAIRS]
WEIGHTS = {  # candidate (w_shadow, w_reverse, w_mmd) on the log-losses and the MMD
    "shadow loss only": (1.0, 0.0, 0.0),
    "reverse loss only": (0.0, 1.0, 0.0),
    "shadow + reverse": (1.0, 1.0, 0.0),
    DEFAULT: (1.0, 1.0, 1.0),
    "shadow + reverse + 0.3 mmd": (1.0, 1.0, 0.3),
    "shadow + reverse + 3 mmd": (1.0, 1.0, 3.0),
    "shadow + 0.3 reverse + mmd": (1.0, 0.3, 1.0),
    "shadow + 3 reverse + mmd": (1.0, 3.0, 1.0),
    "shadow + mmd": (1.0, 0.0, 1.0),
}


def main() -> None:
    args = parse()
    os.environ.setdefault("RAY_AUTH_MODE", "disabled")
    os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
    import ray

    torch.set_num_threads(1)
    cells = [cell for cell in CELLS if any(fnmatch(label(*cell), p) for p in args.cells)]
    if not cells:
        sys.exit(f"--cells {' '.join(args.cells)}: matches none of {[label(*c) for c in CELLS]}")
    sides = build_sides(cells, args.data_root, args.seed)
    start_local_ray(num_cpus=args.cpus)
    frames, runs = [], []
    try:
        plan = itertools.product(range(args.rounds), cells, args.samplers, args.side_by_side)
        for turn, (fit_on, shadow, target), sampler, size in plan:
            cell = label(fit_on, shadow, target)
            search = SearchConfig(num_samples=args.trials, max_concurrent=args.cpus,
                                  sampler=sampler, side_by_side=size)  # fmt: skip
            folder = args.out / run_folder(sampler, size, turn, args)
            started = time.perf_counter()
            outcome = search_on_tune(
                sides["shadow", fit_on, shadow], sides["target", fit_on, target], search,
                seed=args.seed, storage_dir=folder, name=slug(cell), device="cpu",
            )
            wall = first_wall(folder / f"{slug(cell)}.wall", started)
            trials = outcome.trials.assign(cell=cell, sampler=sampler, side_by_side=size,
                                           round=turn)  # fmt: skip
            frames.append(trials)
            runs.append({**run_row(cell, sampler, trials, wall), "side by side": size,
                         "round": turn})  # fmt: skip
            print(f"{cell} [{sampler}, {size} side by side, round {turn}]: {len(trials)} "
                  f"trials in {wall:.0f} s", flush=True)
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
    rows = calibration.set_index("weights").drop(columns="mean")
    shadow = rows.loc[SHADOW_ONLY]
    for name in (DEFAULT, "leave-one-cell-out choice"):
        picked = rows.loc[name]
        print(f"\n{name}: pick >= shadow-only pick on {int((picked >= shadow - 1e-9).sum())} of "
              f"{len(picked)} cells (mean {picked.mean():.3f} vs {shadow.mean():.3f} ROC AUC)")
    print_throughput(table, args.cpus)
    print(f"\nwrote {plot_curves(trials, args.out / 'search_curves.png')}")


def run_folder(sampler: str, size: int, turn: int, args: argparse.Namespace) -> str:
    """A run's folder under --out: the sampler alone for the plain bench (as before)."""
    if args.rounds == 1 and args.side_by_side == [1]:
        return sampler
    return f"{sampler}-x{size}-round{turn}"


def print_throughput(table: pd.DataFrame, cpus: int) -> None:
    """Trials a minute and the mean target ROC AUC of each pick, per group size."""
    table = table.assign(wall=table["trials"] / table["trials/min"] * 60)  # seconds per search
    rows = []
    for size, runs in table.groupby("side by side"):
        rows.append({
            "side by side": size, "searches": len(runs), "trials": runs["trials"].sum(),
            "seconds": runs["wall"].sum(),
            "trials/min": runs["trials"].sum() / runs["wall"].sum() * 60,
            **{f"mean {name} ROC": runs[f"{name} ROC"].mean()
               for name in ("selected", "defaults", "shadow-only", "oracle")},
        })  # fmt: skip
    summary = pd.DataFrame(rows)
    print(f"\nthroughput on {cpus} CPUs of {machine()}, and the picks' mean target ROC AUC:\n"
          f"{summary.round(4).to_string(index=False)}")
    if len(summary) > 1:
        base = summary.iloc[0]
        for _, row in summary.iloc[1:].iterrows():
            print(f"x{row['side by side']:.0f} against x{base['side by side']:.0f}: "
                  f"{row['trials/min'] / base['trials/min']:.2f} times the trials a minute; "
                  f"selected ROC AUC {row['mean selected ROC'] - base['mean selected ROC']:+.4f}")


def parse() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data-root", default=str(default_root))
    parser.add_argument("--trials", type=int, default=16, help="trials per cell and sampler")
    parser.add_argument("--samplers", nargs="+", default=["tpe", "random"])
    parser.add_argument("--cells", nargs="+", default=["*"], metavar="PATTERN",
                        help="only cells whose name matches one of these shell patterns, e.g. "
                        "'ml-1m/* -> ml-1m/*' (names as in the tables)")
    parser.add_argument("--cpus", type=int, default=2, help="CPUs of the local Ray")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, default=Path("out/bench-search"))
    parser.add_argument("--side-by-side", type=int, nargs="+", default=[1], metavar="K",
                        help="trials per stacked group, each in turn (1: one trial per Tune "
                        "trial, Tune's ASHA); the first is the baseline of the ratios")
    parser.add_argument("--rounds", type=int, default=1,
                        help="repeat every search this many times, the group sizes "
                        "alternating within each round (A/B on a machine whose load varies)")
    return parser.parse_args()


def label(fit_on: str, shadow: tuple[str, str], target: tuple[str, str]) -> str:
    """A cell's name in the tables: `shadow -> target [vector setting]`."""
    return f"{'/'.join(shadow)} -> {'/'.join(target)} [{fit_on}]"


def build_sides(
    cells: list[tuple[str, tuple[str, str], tuple[str, str]]], data_root: str, seed: int
) -> dict[tuple[str, str, tuple[str, str]], SideOutput]:
    """Every side the cells need, built once, through `cell_config` as a grid run builds them."""
    sides = {}
    for fit_on, shadow, target in cells:
        choices = [
            SideChoice(
                DatasetSpec(name=dataset, data_root=data_root,
                            vectors=ItemVectorConfig(fit_on=fit_on, device="cpu")),
                recommender,
            )
            for dataset, recommender in (shadow, target)
        ]
        config = cell_config(*choices, "dlmia", {}, ListOptions(), seed, "cpu")
        for role, spec, side in (
            ("shadow", config.shadow, shadow), ("target", config.target, target)
        ):
            if (role, fit_on, side) not in sides:
                sides[role, fit_on, side] = build_side(cached_dataset(spec.dataset), spec)
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
            scores = group.apply(lambda r, config=config: objective(r.to_dict(), config), axis=1)
            picked.loc[name, cell] = group.loc[scores.idxmax(), "target.roc_auc"]
    table = picked.copy()
    table["mean"] = picked.mean(axis=1)
    held_out = []  # choose the weighting on the other cells, score it on the held-out one
    for cell in cells:  # (a single cell has no other cells to choose on: nan)
        others = picked.drop(columns=cell).mean(axis=1)
        held_out.append(picked.loc[others.idxmax(), cell] if others.notna().any() else np.nan)
    table.loc["leave-one-cell-out choice", cells] = held_out
    table.loc["leave-one-cell-out choice", "mean"] = float(np.mean(held_out))
    shadow_only = [shadow_pick(finished[finished["cell"] == cell]) for cell in cells]
    table.loc[SHADOW_ONLY, cells] = shadow_only
    table.loc[SHADOW_ONLY, "mean"] = float(np.mean(shadow_only))
    oracle = finished.groupby("cell", sort=False)["target.roc_auc"].max()
    table.loc["oracle (test labels)", cells] = oracle[cells].to_numpy()
    table.loc["oracle (test labels)", "mean"] = oracle.mean()
    return table.reset_index(names="weights")


def shadow_pick(group: pd.DataFrame) -> float:
    """Target ROC AUC of the trial shadow validation alone ranks first (`tune.search`'s rule)."""
    ranked = group.sort_values(["shadow_val_auc", "shadow_val_loss"], ascending=[False, True],
                               kind="stable")
    return float(ranked["target.roc_auc"].iloc[0])


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
