"""`Histories`: every user's interactions as one ordered sequence, stored CSR-style.

All models and vector code take `Histories`: general recommenders read them as a sparse
user-item matrix, sequential ones as (padded) item sequences. Order within a user is time order
(ties keep file order), so prefixes and "last item" have their sequential meaning.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch

IntArray = npt.NDArray[np.int64]


@dataclass(frozen=True, eq=False)
class Histories:
    """Ordered item sequences of `n_users` users over a catalogue of `n_items` items.

    Attributes:
        indptr: (n_users + 1,) int64; user row r owns `items[indptr[r]:indptr[r + 1]]`.
        items: (nnz,) int64 item ids in [0, n_items), in time order within each user.
        n_items: catalogue size (item ids are dataset-wide).
        users: (n_users,) int64 dataset-wide user index of each row.
        times: (nnz,) int64 timestamps aligned with `items`, or None when the data has none.
    """

    indptr: IntArray
    items: IntArray
    n_items: int
    users: IntArray
    times: IntArray | None = None

    def __post_init__(self) -> None:
        assert self.indptr.shape == (len(self.users) + 1,), "indptr must have n_users + 1 entries"
        assert self.indptr[-1] == len(self.items), "indptr must end at len(items)"
        assert self.times is None or len(self.times) == len(self.items)

    @classmethod
    def from_lists(cls, sequences: list[list[int]], n_items: int) -> Histories:
        """Build from Python lists (tests and tiny examples); users are numbered 0..n-1."""
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        items = np.array([i for s in sequences for i in s], dtype=np.int64)
        return cls(indptr, items, n_items, np.arange(len(sequences), dtype=np.int64))

    @property
    def n_users(self) -> int:
        return len(self.users)

    @property
    def lengths(self) -> IntArray:
        """(n_users,) number of interactions per user."""
        return np.diff(self.indptr)

    def row_of_entries(self) -> IntArray:
        """(nnz,) the row each entry of `items` belongs to."""
        return np.repeat(np.arange(self.n_users, dtype=np.int64), self.lengths)

    def sequence(self, row: int) -> IntArray:
        """The item sequence of one row (for tests and debugging, not for hot loops)."""
        return self.items[self.indptr[row] : self.indptr[row + 1]]

    def rows(self, index: npt.ArrayLike) -> Histories:
        """The sub-histories of rows `index` (an int array or boolean mask), in that order."""
        index = np.asarray(index)
        if index.dtype == bool:
            index = np.flatnonzero(index)
        index = index.astype(np.int64)
        lengths = self.lengths[index]
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        # Entry j of the result comes from entry (start of its source row) + (its offset in the
        # row).
        offsets = np.arange(indptr[-1], dtype=np.int64) - np.repeat(indptr[:-1], lengths)
        take = np.repeat(self.indptr[index], lengths) + offsets
        times = None if self.times is None else self.times[take]
        return Histories(indptr, self.items[take], self.n_items, self.users[index], times)

    def _keep_entries(self, keep: npt.NDArray[np.bool_]) -> Histories:
        lengths = np.bincount(self.row_of_entries()[keep], minlength=self.n_users)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        times = None if self.times is None else self.times[keep]
        return Histories(indptr, self.items[keep], self.n_items, self.users, times)

    def drop_last(self, n: int = 1) -> Histories:
        """Every user's sequence without its last `n` items (the training prefix of sequential
        models)."""
        position_from_end = np.repeat(self.indptr[1:], self.lengths) - np.arange(len(self.items))
        return self._keep_entries(position_from_end > n)

    def without_first(self, counts: npt.ArrayLike) -> Histories:
        """Every user's sequence without its first `counts[r]` items (r = row): what a user holds
        beyond a prefix of that length."""
        position = np.arange(len(self.items)) - np.repeat(self.indptr[:-1], self.lengths)
        return self._keep_entries(position >= np.repeat(np.asarray(counts), self.lengths))

    def last_items(self) -> IntArray:
        """(n_users,) each user's last item; -1 for an empty history."""
        last = np.full(self.n_users, -1, dtype=np.int64)
        nonempty = self.lengths > 0
        last[nonempty] = self.items[self.indptr[1:][nonempty] - 1]
        return last

    def to_sparse(self) -> sp.csr_matrix:
        """(n_users, n_items) binary CSR matrix (repeats of an item count once)."""
        data = np.ones(len(self.items), dtype=np.float32)
        matrix = sp.csr_matrix(
            (data, self.items, self.indptr), shape=(self.n_users, self.n_items), copy=True
        )
        matrix.sum_duplicates()
        matrix.data[:] = 1.0
        return matrix

    def padded(self, max_len: int, pad: int) -> torch.Tensor:
        """(n_users, max_len) LongTensor of each user's last `max_len` items, right-aligned, `pad`
        before."""
        lengths = np.minimum(self.lengths, max_len)
        out = np.full((self.n_users, max_len), pad, dtype=np.int64)
        rows = np.repeat(np.arange(self.n_users), lengths)
        cols = max_len - np.repeat(lengths, lengths) + (
            np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        )
        take = np.repeat(self.indptr[1:] - lengths, lengths) + (
            np.arange(lengths.sum()) - np.repeat(np.cumsum(lengths) - lengths, lengths)
        )
        out[rows, cols] = self.items[take]
        return torch.from_numpy(out)
