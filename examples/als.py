"""Your own recommender in dlmia: implicit's alternating least squares (Hu, Koren and Volinsky,
ICDM 2008) behind dlmia's `Recommender` interface.

Use it wherever a recommender name goes, as `examples.als:ALS` (run from the folder that holds
`examples/`, or put it on PYTHONPATH):

    dlmia cell --shadow ml-1m:examples.als:ALS --target ml-1m:examples.als:ALS \\
        --attack reference --nonmember-lists model --data-root data
    dlmia audit --interactions ratings.csv --lists served.csv --shadow examples.als:ALS

A recommender needs a `Config` dataclass (its settings; `--shadow-set factors=32` and grid
`settings:` fill it), `fit` on member histories and `score` of any histories over the whole
catalogue; `Recommender.recommend` does the rest. Members are scored with the factors ALS
trained for them (a system knows its users), anyone else is folded in with implicit's own
`recalculate_user`, the least-squares solution for their history with the item factors fixed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import torch
from threadpoolctl import threadpool_limits

from dlmia.data.histories import Histories
from dlmia.recommenders import Recommender
from dlmia.seeding import derive_seed


@dataclass(frozen=True)
class ALSConfig:
    """Settings of implicit's AlternatingLeastSquares."""

    factors: int = 64  # latent factors
    regularization: float = 0.05  # L2 weight of the factors
    iterations: int = 15  # alternating sweeps
    alpha: float = 10.0  # confidence of an observed interaction: 1 + alpha


class ALS(Recommender):
    """implicit's ALS on the member histories (CPU)."""

    name = "als"
    Config = ALSConfig
    config: ALSConfig

    def fit(self, histories: Histories) -> Self:
        from implicit.cpu.als import AlternatingLeastSquares

        cfg = self.config
        self.n_items = histories.n_items
        with threadpool_limits(1, "blas"):  # implicit runs its own threads
            self.model = AlternatingLeastSquares(
                factors=cfg.factors, regularization=cfg.regularization,
                iterations=cfg.iterations, alpha=cfg.alpha,
                random_state=derive_seed(self.seed, self.name) % 2**31,
            )  # fmt: skip
            self.model.fit(histories.to_sparse(), show_progress=False)
        order = np.argsort(histories.users, kind="stable")
        self.known_users, self.known_rows = histories.users[order], order
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        rows = histories.to_sparse()
        at = np.searchsorted(self.known_users, histories.users).clip(max=len(self.known_users) - 1)
        known = self.known_users[at] == histories.users  # (B,) users ALS trained
        factors = np.empty((histories.n_users, self.config.factors), dtype=np.float32)
        factors[known] = self.model.user_factors[self.known_rows[at[known]]]
        if (~known).any():
            with threadpool_limits(1, "blas"):
                folded = self.model.recalculate_user(np.flatnonzero(~known), rows[~known])
            factors[~known] = np.asarray(folded, dtype=np.float32).reshape(-1, self.config.factors)
        scores = factors @ np.asarray(self.model.item_factors, dtype=np.float32).T  # (B, n_items)
        return torch.from_numpy(scores).to(self.device)
