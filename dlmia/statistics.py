"""Per-user list statistics: one number per user from that user's top-k list and history.

The reference attack (method.md section 7) compares a user's statistic under the target with
the same statistic under reference recommenders, so each statistic must be computed the same
way from any list. Every side computes all of them for the users it serves (`build_side`), and
caches them with its lists; higher always means "the list looks more like a member's".

- `own`: the share of the visible history that the list hands back, |L & H| / min(|H|, k). Seen
  items kept (the paper's protocol); with `exclude_seen` it is 0 by construction.
- `own-dcg`: the same hits discounted by rank, summed (DCG@k of the visible history in the
  list): a memorised item comes back near the top, which the plain share cannot see; not
  normalised, so a heavy user's statistic moves more between models (the reference attack's
  default: with a spread pooled over users it found more members at 1% FPR than `own-ndcg`).
- `own-ndcg`: the DCG over its best possible value (NDCG@k).
- `heldout`: rank-discounted hits of the user's held-out items (held by the adversary, not shown
  to the recommender: the last item that the neural recommenders hold out), normalised by the
  best possible (NDCG@k of the held-out items). It survives `exclude_seen`; where nothing is held
  out (ItemCF, LFM) it is 0 for every user.
- `norm`: -|d_u|, the difference vector's length (the `norm` baseline's score).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from functools import cached_property

import numpy as np
import numpy.typing as npt

from dlmia.data.histories import Histories

FloatArray = npt.NDArray[np.float64]


@dataclass(frozen=True, eq=False)
class ListView:
    """What a statistic reads of n users: their lists and what the adversary holds of them."""

    lists: npt.NDArray[np.integer]  # (n, k) ranked item ids
    visible: Histories  # (n rows) what the recommender was given
    held_out: Histories  # (n rows) items the adversary holds beyond `visible`
    vectors: npt.NDArray[np.floating]  # (n, d) difference vectors

    @cached_property
    def visible_hits(self) -> npt.NDArray[np.bool_]:
        """(n, k) whether each list entry is in the row's visible history (three statistics
        read it: found once)."""
        return found_in_history(self.lists, self.visible)


def own_share(view: ListView) -> FloatArray:
    """|L & H| / min(|H|, k): the share of the visible history that the list hands back."""
    hits = view.visible_hits.sum(axis=1)  # (n,)
    possible = np.minimum(view.visible.lengths, view.lists.shape[1])
    return np.divide(hits, possible, out=np.zeros(len(hits)), where=possible > 0)


def own_dcg(view: ListView) -> FloatArray:
    """DCG@k of the visible history in the list."""
    return dcg(view.visible_hits)


def own_ndcg(view: ListView) -> FloatArray:
    """NDCG@k of the visible history in the list."""
    return ndcg(view.visible_hits, view.visible.lengths)


def held_out_ndcg(view: ListView) -> FloatArray:
    """NDCG@k of the held-out items in the list (0 for a user with none held out)."""
    return ndcg(found_in_history(view.lists, view.held_out), view.held_out.lengths)


def dcg(hits: npt.NDArray[np.bool_]) -> FloatArray:
    """(n,) DCG@k of each row's hits (n, k) (`found_in_history`): a hit at rank j (0-based)
    gains 1/log2(j+2)."""
    return (hits * rank_discount(hits.shape[1])).sum(axis=1)


def ndcg(hits: npt.NDArray[np.bool_], relevant: npt.NDArray[np.integer]) -> FloatArray:
    """(n,) NDCG@k of each row's hits (n, k) among its `relevant` (n,) items: the DCG over that
    of min(relevant, k) hits at the top (0 where none)."""
    k = hits.shape[1]
    ideal = np.concatenate([[0.0], np.cumsum(rank_discount(k))])[np.minimum(relevant, k)]
    gains = dcg(hits)
    return np.divide(gains, ideal, out=np.zeros(len(gains)), where=ideal > 0)


def rank_discount(k: int) -> FloatArray:
    """(k,) the gain of a hit at each rank: 1/log2(j+2) at 0-based rank j."""
    return 1.0 / np.log2(np.arange(k) + 2.0)


def negative_norm(view: ListView) -> FloatArray:
    """-|d_u|: a member's list sits closer to their history."""
    return -np.linalg.norm(np.asarray(view.vectors, dtype=np.float64), axis=1)


#: The statistics by name; each maps a `ListView` of n users to (n,) float64, higher = member.
STATISTICS: dict[str, Callable[[ListView], FloatArray]] = {
    "own": own_share,
    "own-dcg": own_dcg,
    "own-ndcg": own_ndcg,
    "heldout": held_out_ndcg,
    "norm": negative_norm,
}


def list_statistics(view: ListView) -> dict[str, FloatArray]:
    """Every registered statistic of the users of `view`."""
    return {name: statistic(view) for name, statistic in STATISTICS.items()}


def found_in_history(
    lists: npt.NDArray[np.integer], histories: Histories
) -> npt.NDArray[np.bool_]:
    """(n, k) whether each list entry is an item of the same row's history (no loop over users:
    (row, item) pairs as one sorted key array)."""
    lists = np.asarray(lists, dtype=np.int64)
    n, k = lists.shape
    width = max(histories.n_items, int(lists.max(initial=0)) + 1)
    owned = np.unique(histories.row_of_entries() * width + histories.items)  # (nnz,) sorted
    wanted = (np.arange(n, dtype=np.int64)[:, None] * width + lists).ravel()  # (n * k,)
    at = np.searchsorted(owned, wanted).clip(max=max(len(owned) - 1, 0))
    return (owned[at] == wanted).reshape(n, k) if len(owned) else np.zeros((n, k), dtype=bool)
