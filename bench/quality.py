"""Quality bench: HR@10 and NDCG@10 of every recommender on ML-1M, leave-last-item-out.

Protocol: the filtered ML-1M histories (time order) of all users (or a seeded fraction of them,
`--users`); each user's last item is the test item. Every model is fitted on the histories
without that item; the neural models hold out one more item per user (the second-to-last) for
early stopping, so no test item is ever seen in training or model selection. Each model then
ranks the whole catalogue from the user's history without the test item; the items of that
history are ranked out (unless one is the test item itself: repeats stay rankable). Ties share
their ranks. Times: fit (wall seconds, total and per epoch for the neural models, and CPU seconds
of all threads, which a busy machine inflates less than wall time) and `recommend` of top-100
lists for all users.

Published results to compare with, and how the protocols differ:
- RecBole (Zhao et al., CIKM 2021) publishes ML-1M tables (recbole.io) for all these models with
  full-catalogue HR@10/NDCG@10 too, but on all 6,040 users of the real ML-1M (here: the 4,008
  users of the paper's published partitions), with RecBole's own split (a ratio split by time by
  default; leave-one-out is an option), tuned settings and GPU-length training (here: CPU-sized
  defaults, see each model's Config). Compare magnitudes and the ordering, not digits.
- BERT4Rec (Sun et al., CIKM 2019) reports HR@10 near 0.70 on ML-1M, but ranks the test item
  against only 100 popularity-sampled negatives; full-catalogue numbers are several times lower
  and not comparable (Krichene and Rendle, KDD 2020; Petrov and Macdonald, RecSys 2022, who also
  show that BERT4Rec needs far longer training than usually reported).
- The DL-MIA reference (`reference-implementation.md` section 4) used sampled evaluation for
  BERT4Rec (1 vs 100) and NCF (1 vs 1,999) and no held-out evaluation for the rest.

Usage (from the repository root):
    .venv/bin/python bench/quality.py                      # all models, all users
    .venv/bin/python bench/quality.py --users 0.1667 --models gru4rec,ncf   # ~ a member part
    .venv/bin/python bench/quality.py --set gru4rec.epochs=10 --threads 2 --out quality.csv
"""

from __future__ import annotations

import argparse
import logging
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from dlmia.config import parse_assignments  # noqa: E402
from dlmia.data.filtering import kcore  # noqa: E402
from dlmia.data.histories import Histories  # noqa: E402
from dlmia.data.sources import default_filter, load_dataset  # noqa: E402
from dlmia.machine import machine  # noqa: E402
from dlmia.recommenders import RECOMMENDERS, make_recommender  # noqa: E402
from dlmia.recommenders.neural import NeuralRecommender, ranking_metrics  # noqa: E402
from dlmia.seeding import numpy_rng  # noqa: E402

ALL = ["popularity", "itemcf", "lfm", "ncf", "gru4rec", "caser", "bert4rec"]


def main(argv: list[str] | None = None) -> pd.DataFrame:
    args = parse(argv)
    torch.set_num_threads(args.threads)
    level = logging.INFO if args.verbose else logging.WARNING
    logging.basicConfig(level=level, format="%(message)s")
    histories = load(args.data, args.users, args.seed)
    print(f"ml-1m: {histories.n_users} users, {histories.n_items} items, "
          f"{len(histories.items)} interactions; {torch.get_num_threads()} threads of {machine()}")
    settings = settings_by_model(args.set)
    rows = [bench(name, histories, settings.get(name, {}), args) for name in args.models]
    table = pd.DataFrame(rows).set_index("model")
    popularity = table["hr@10"].get("popularity")
    if popularity:
        table["x popularity"] = table["hr@10"] / popularity
    print(table.to_string(float_format=lambda v: f"{v:.4f}" if v < 10 else f"{v:.1f}"))
    if args.out:
        table.to_csv(args.out)
    return table


def parse(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    default_root = Path(__file__).resolve().parents[2] / "shared" / "data"
    parser.add_argument("--data", type=Path, default=default_root, help="data root holding ml-1m/")
    parser.add_argument("--models", default=",".join(ALL), help="comma-separated model names")
    parser.add_argument("--users", type=float, default=1.0, help="fraction of users kept (seeded)")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    parser.add_argument("--set", action="append", default=[], help="MODEL.KEY=VALUE setting")
    parser.add_argument("--out", type=Path, help="also write the table as CSV")
    parser.add_argument("--verbose", action="store_true", help="log every epoch")
    args = parser.parse_args(argv)
    args.models = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(args.models) - set(RECOMMENDERS))
    if unknown:
        parser.error(f"unknown models {unknown}; use some of {sorted(RECOMMENDERS)}")
    return args


def load(root: Path, fraction: float, seed: int) -> Histories:
    """ML-1M histories after the default filter, optionally a seeded fraction of the users."""
    interactions = kcore(load_dataset("ml-1m", root), default_filter("ml-1m"))
    histories = interactions.histories()
    if fraction < 1.0:
        keep = numpy_rng(seed, "bench", "users").random(histories.n_users) < fraction
        histories = histories.rows(keep)
    return histories


def settings_by_model(assignments: list[str]) -> dict[str, dict[str, Any]]:
    """`model.key=value` strings -> {model: {key: value}}."""
    settings: dict[str, dict[str, Any]] = {}
    for key, value in parse_assignments(assignments).items():
        model, _, field = key.partition(".")
        settings.setdefault(model, {})[field] = value
    return settings


def bench(
    name: str, histories: Histories, settings: dict[str, Any], args: argparse.Namespace
) -> dict[str, Any]:
    """Fit `name` without each user's last item, then score that item; one table row."""
    visible, test = histories.drop_last(1), histories.last_items()
    model = make_recommender(name, settings, device=args.device, seed=args.seed)
    start, cpu = time.perf_counter(), time.process_time()
    model.fit(visible)
    fit_s, fit_cpu_s = time.perf_counter() - start, time.process_time() - cpu
    start = time.perf_counter()
    model.recommend(visible, k=100)
    recommend_s = time.perf_counter() - start
    hr, ndcg = ranking_metrics(model, visible, test, k=10)
    row: dict[str, Any] = {"model": name, "hr@10": hr, "ndcg@10": ndcg, "fit_s": fit_s,
                           "fit_cpu_s": fit_cpu_s, "recommend_s": recommend_s}
    if isinstance(model, NeuralRecommender):
        row |= {"epochs": len(model.log), "best_epoch": model.best_epoch,
                "train_s/epoch": float(np.mean([e.train_s for e in model.log])),
                "eval_s/epoch": float(np.mean([e.eval_s for e in model.log]))}
    print(f"{name}: HR@10 {hr:.4f} NDCG@10 {ndcg:.4f} fit {fit_s:.1f}s", flush=True)
    return row


if __name__ == "__main__":
    main()
