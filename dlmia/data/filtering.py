"""Dropping rare users and items (the k-core filter of method.md section 2).

Counts are numbers of interactions (a repeated user-item pair counts each time), as in the
paper's scripts, which count rows.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import NoReturn

import numpy as np
import numpy.typing as npt

from dlmia.data.histories import IntArray
from dlmia.data.interactions import Interactions
from dlmia.errors import ConfigError, DataError


@dataclass(frozen=True)
class FilterConfig:
    """Minimum interaction counts per user and per item.

    One pass is three steps, each counting on what the previous step left: drop users with fewer
    than `min_user` interactions, then items with fewer than `min_item`, then users with fewer
    than `min_user` again. `passes: 1` is the paper's filter (process_ml1m.py): after it, items
    may again have fewer than `min_item` interactions. `passes: None` repeats passes until one
    removes nothing, so that every user has >= min_user and every item >= min_item (the k-core).
    """

    min_user: int = 5  # users with fewer interactions are dropped
    min_item: int = 5  # items with fewer interactions are dropped
    passes: int | None = None  # user/item/user passes; None = repeat until nothing changes

    def __post_init__(self) -> None:
        for key in ("min_user", "min_item"):
            value = getattr(self, key)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"data.filter.{key}: expected an integer >= 1, got {value!r}")
        if self.passes is not None and (
            isinstance(self.passes, bool) or not isinstance(self.passes, int) or self.passes < 1
        ):
            raise ConfigError(
                "data.filter.passes: expected an integer >= 1 or null (until stable), "
                f"got {self.passes!r}"
            )

    def describe(self) -> str:
        """E.g. `min_user=5, min_item=5, until stable`."""
        passes = "until stable" if self.passes is None else f"{self.passes} pass(es)"
        return f"min_user={self.min_user}, min_item={self.min_item}, {passes}"


def kcore(
    interactions: Interactions, config: FilterConfig, source: str | None = None
) -> Interactions:
    """The interactions of users and items that pass the filter, ids re-mapped to contiguous ints.

    Surviving ids keep their relative order (first appearance in the unfiltered data), and the
    raw id maps are carried over. Interactions stay in file order.

    Args:
        interactions: the loaded dataset.
        config: the thresholds and number of passes.
        source: the name used in error messages (default: `interactions.name`).

    Raises:
        DataError: nothing is left; the message gives the step that removed the last interactions
            and how many users, items and interactions were left before it.
    """
    source = source or interactions.name
    users, items = interactions.users, interactions.items
    keep = np.ones(len(items), dtype=bool)
    done = 0
    while config.passes is None or done < config.passes:
        done += 1
        before = int(keep.sum())
        for step, ids, n_ids, minimum in _steps(interactions, config):
            kept = keep.copy()
            keep &= _frequent(ids, n_ids, keep, minimum)[ids]
            if not keep.any():
                _raise_empty(source, config, done, step, users[kept], items[kept])
        if int(keep.sum()) == before:
            break
    return _compact(interactions, keep)


def _steps(
    interactions: Interactions, config: FilterConfig
) -> tuple[tuple[str, IntArray, int, int], ...]:
    """The three steps of one pass: (name, ids, number of ids, minimum count)."""
    user = ("min_user", interactions.users, interactions.n_users, config.min_user)
    item = ("min_item", interactions.items, interactions.n_items, config.min_item)
    return (user, item, user)


def _frequent(
    ids: IntArray, n_ids: int, keep: npt.NDArray[np.bool_], minimum: int
) -> npt.NDArray[np.bool_]:
    """(n_ids,) whether each id has at least `minimum` kept interactions."""
    return np.bincount(ids[keep], minlength=n_ids) >= minimum


def _raise_empty(
    source: str, config: FilterConfig, n_pass: int, step: str, users: IntArray, items: IntArray
) -> NoReturn:
    raise DataError(
        f"{source}: filtering ({config.describe()}) left no users and no items: in pass {n_pass}, "
        f"the {step}={getattr(config, step)} step removed the last {len(np.unique(users))} users "
        f"and {len(np.unique(items))} items ({len(users)} interactions). Lower "
        "data.filter.min_user / min_item, or use more data"
    )


def _present(ids: IntArray, n_ids: int) -> IntArray:
    """(n_present,) the sorted ids among 0..n_ids-1 that occur in `ids`."""
    return np.flatnonzero(np.bincount(ids, minlength=n_ids))


def _compact(interactions: Interactions, keep: npt.NDArray[np.bool_]) -> Interactions:
    """Interactions `keep` with users and items renumbered 0.. in their old order; maps kept."""
    kept_users = _present(interactions.users[keep], interactions.n_users)
    kept_items = _present(interactions.items[keep], interactions.n_items)
    user_index = np.full(interactions.n_users, -1, dtype=np.int64)
    user_index[kept_users] = np.arange(len(kept_users))
    item_index = np.full(interactions.n_items, -1, dtype=np.int64)
    item_index[kept_items] = np.arange(len(kept_items))
    return Interactions(
        interactions.name,
        user_index[interactions.users[keep]],
        item_index[interactions.items[keep]],
        None if interactions.times is None else interactions.times[keep],
        interactions.user_ids[kept_users],
        interactions.item_ids[kept_items],
    )
