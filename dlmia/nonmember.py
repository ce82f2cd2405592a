"""The top-k lists a system serves to users it was not trained on (method.md section 1).

Policies:
- `popular` (the paper's): the most popular items, counted over the non-member histories of that
  side, skipping items the user already has.
- `popular-random` (the baseline paper's "popularity randomisation" defense): k items drawn at
  random from the 8k most popular, minus the user's own.
- `model`: the trained recommender's own list for the user.
"""

from __future__ import annotations

from typing import Literal, get_args

import numpy as np
import torch

from dlmia.data.histories import Histories
from dlmia.errors import ConfigError
from dlmia.recommenders.base import Recommender
from dlmia.seeding import numpy_rng

Policy = Literal["popular", "popular-random", "model"]
POLICIES: tuple[str, ...] = get_args(Policy)
RANDOM_POOL_FACTOR = 8  # popular-random draws from the RANDOM_POOL_FACTOR * k most popular items


def nonmember_lists(
    policy: Policy,
    histories: Histories,
    k: int,
    *,
    seed: int,
    recommender: Recommender | None = None,
    exclude_seen: bool = False,
) -> torch.Tensor:
    """(n_users, k) LongTensor (CPU) of ranked item ids for the non-members `histories`.

    Args:
        policy: `popular`, `popular-random` or `model`.
        histories: the non-members of one side (popularity is counted over them).
        k: list length.
        seed: run seed (only `popular-random` draws).
        recommender: the side's trained recommender (`model` only).
        exclude_seen: `model` only: drop the user's own items, as for member lists. The popularity
            policies always skip them.
    """
    if policy not in POLICIES:
        raise ConfigError(
            f"nonmember_lists: {policy!r} is not allowed; use one of {', '.join(POLICIES)}"
        )
    if not 0 < k <= histories.n_items:
        raise ConfigError(
            f"nonmember_lists: k={k} must be in 1..{histories.n_items} (the catalogue size)"
        )
    if policy == "model":
        if recommender is None:
            raise ConfigError("nonmember_lists: policy `model` needs the trained recommender")
        return recommender.recommend(histories, k, exclude_seen=exclude_seen)
    counts = np.bincount(histories.items, minlength=histories.n_items)  # (n_items,)
    ranking = np.argsort(-counts, kind="stable")  # (n_items,) most popular first, ties by id
    pool = k if policy == "popular" else min(RANDOM_POOL_FACTOR * k, histories.n_items)
    # Enough candidates that every user keeps k after removing their own items.
    n_candidates = min(histories.n_items, pool + int(histories.lengths.max(initial=0)))
    keys = np.broadcast_to(
        np.arange(n_candidates, dtype=np.float64), (histories.n_users, n_candidates)
    ).copy()  # (n, C) rank keys: take the smallest
    if policy == "popular-random":
        # Random order inside the pool; past it (a user owning most of the pool) popularity order.
        keys[:, :pool] = numpy_rng(seed, "nonmember", policy).random((histories.n_users, pool))
        keys[:, pool:] += 1.0
    return _smallest_keys_without_own(histories, ranking[:n_candidates], keys, k)


def _smallest_keys_without_own(
    histories: Histories, candidates: np.ndarray, keys: np.ndarray, k: int
) -> torch.Tensor:
    """(n, k) the candidates with the k smallest keys per user, the user's own items excluded.

    Args:
        histories: the users.
        candidates: (C,) item ids.
        keys: (n, C) key of each candidate for each user.
        k: list length.
    """
    position = np.full(histories.n_items, -1, dtype=np.int64)  # (n_items,) index into candidates
    position[candidates] = np.arange(len(candidates))
    rows, cols = histories.row_of_entries(), position[histories.items]  # (nnz,)
    keys[rows[cols >= 0], cols[cols >= 0]] = np.inf
    smallest = torch.topk(torch.from_numpy(keys), k, dim=1, largest=False)  # sorted ascending
    if torch.isinf(smallest.values).any():
        raise ConfigError(
            f"nonmember_lists: k={k} is too large: a user owns all but fewer than k of the "
            f"{histories.n_items} items"
        )
    return torch.from_numpy(candidates)[smallest.indices]  # (n, k)
