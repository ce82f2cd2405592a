"""`Interactions`: a loaded dataset, one row per interaction, ids mapped to contiguous integers."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dlmia.data.histories import Histories, IntArray


@dataclass(frozen=True, eq=False)
class Interactions:
    """Implicit feedback: user `users[j]` interacted with item `items[j]` at `times[j]`.

    Attributes:
        name: the dataset's name (`ml-1m`, `synthetic`, or the file path it came from).
        users: (nnz,) int64 user index in [0, n_users).
        items: (nnz,) int64 item index in [0, n_items).
        times: (nnz,) int64 timestamps, or None when the source has none (file order is time
            order).
        user_ids: (n_users,) the raw id of each user index (the kept id map).
        item_ids: (n_items,) the raw id of each item index.
    """

    name: str
    users: IntArray
    items: IntArray
    times: IntArray | None
    user_ids: npt.NDArray[np.generic]
    item_ids: npt.NDArray[np.generic]

    @classmethod
    def from_raw(
        cls,
        name: str,
        raw_users: npt.ArrayLike,
        raw_items: npt.ArrayLike,
        times: npt.ArrayLike | None = None,
    ) -> Interactions:
        """Map raw user and item ids to contiguous ints in order of first appearance, keeping the
        maps.

        Args:
            name: the dataset's name.
            raw_users: (nnz,) raw user id of each interaction (ints or strings, no missing values).
            raw_items: (nnz,) raw item id of each interaction.
            times: (nnz,) integer timestamps, or None.
        """
        import pandas as pd  # imported here so that `import dlmia` stays light

        users, user_ids = pd.factorize(np.asarray(raw_users))
        items, item_ids = pd.factorize(np.asarray(raw_items))
        return cls(
            name,
            users.astype(np.int64),
            items.astype(np.int64),
            None if times is None else np.asarray(times, dtype=np.int64),
            np.asarray(user_ids),
            np.asarray(item_ids),
        )

    @property
    def n_users(self) -> int:
        return len(self.user_ids)

    @property
    def n_items(self) -> int:
        return len(self.item_ids)

    @property
    def n_interactions(self) -> int:
        return len(self.items)

    def histories(self) -> Histories:
        """All users' histories, each sorted by time (stable: ties keep file order)."""
        keys = (self.users,) if self.times is None else (self.times, self.users)
        order = np.lexsort(keys)  # primary key last: user, then time
        counts = np.bincount(self.users, minlength=self.n_users)
        indptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        times = None if self.times is None else self.times[order]
        return Histories(
            indptr, self.items[order], self.n_items, np.arange(self.n_users, dtype=np.int64), times
        )

    def without_duplicates(self) -> tuple[Interactions, int]:
        """These interactions with exact repeats dropped (the same user, item and timestamp, or
        the same user and item when there are no timestamps; the first row stays, order kept),
        and how many were dropped. A re-rating at another time is not a repeat."""
        columns = [self.users, self.items] if self.times is None else [
            self.users, self.items, self.times]
        keys = np.stack(columns, axis=1)
        _, first = np.unique(keys, axis=0, return_index=True)
        keep = np.sort(first)
        dropped = self.n_interactions - len(keep)
        if not dropped:
            return self, 0
        times = None if self.times is None else self.times[keep]
        kept = Interactions(self.name, self.users[keep], self.items[keep], times,
                            self.user_ids, self.item_ids)
        return kept, dropped

    def fingerprint(self) -> str:
        """A content hash of the interactions (for cache keys): same data, same fingerprint."""
        digest = hashlib.sha256()
        times = self.times if self.times is not None else np.zeros(0)
        for array in (self.users, self.items, times):
            digest.update(np.ascontiguousarray(array).tobytes())
        digest.update(str((self.n_users, self.n_items)).encode())
        return digest.hexdigest()[:16]
