"""ItemCF: item-based collaborative filtering with cosine similarity on co-occurrence.

The classic item-based CF the baseline paper (Zhang et al., CCS 2021) describes for its
"ItemBase" target, written from scratch (its code was never published): the similarity of items
i and j is |U_i & U_j| / sqrt(|U_i| |U_j|) over the training users (binary interactions, an
item is not its own neighbour), each item keeps its `neighbours` most similar items, and a
user's score for item j is the sum of the similarities to j of the items in the user's history.

Everything is sparse (scipy): the similarity is built a block of item rows at a time and pruned
per row, so a 200k-item catalogue never needs a dense n_items^2 matrix.
"""

from __future__ import annotations

from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Self

import numpy as np
import scipy.sparse as sp
import torch

from dlmia.config import check_domain
from dlmia.data.histories import Histories
from dlmia.recommenders.base import Recommender

# A block of the similarity with more than this share of non-zeros, and at most _DENSE_CELLS
# cells, is pruned as a dense matrix (faster); others by sorting their entries.
_DENSE_SHARE = 0.1
_DENSE_CELLS = 1 << 25


@dataclass(frozen=True)
class ItemCFConfig:
    """Settings of ItemCF."""

    neighbours: int = 10  # most similar items kept per item (0 keeps all); 5-10 is best on ML-1M
    block_items: int = 1024  # item rows of the similarity built at once (bounds memory)

    def __post_init__(self) -> None:
        check_domain(self, positive=("block_items",), non_negative=("neighbours",))


class ItemCF(Recommender):
    """Item-based CF; `similarity` is the pruned (n_items, n_items) CSR matrix after `fit`."""

    name = "itemcf"
    Config = ItemCFConfig

    def fit(self, histories: Histories) -> Self:
        self.similarity = item_similarity(
            histories.to_sparse(), self.config.neighbours, self.config.block_items
        )
        self.n_items = histories.n_items
        return self

    @classmethod
    def fit_many(cls, models: Sequence[Recommender], histories: Sequence[Histories]) -> None:
        """Fit the models at once: each half's similarity is its own sparse products and pruning
        (exactly `fit`'s, so the lists are identical), the halves spread over as many threads as
        torch uses, one torch thread each (scipy's products and torch's top-k release the GIL):
        a pool of ItemCFs uses every core, which one `fit` (single-threaded scipy) cannot."""
        if not all(isinstance(model, ItemCF) for model in models):
            raise ValueError("ItemCF.fit_many: ItemCFs expected")
        pairs = list(zip(models, histories, strict=True))
        threads = torch.get_num_threads()
        torch.set_num_threads(1)  # one thread per half: no half's pruning waits on another's
        try:
            with ThreadPoolExecutor(threads) as pool:
                list(pool.map(lambda pair: pair[0].fit(pair[1]), pairs))
        finally:
            torch.set_num_threads(threads)

    def score(self, histories: Histories) -> torch.Tensor:
        scores = (histories.to_sparse() @ self.similarity).toarray()  # (B, n_items)
        return torch.from_numpy(scores).to(self.device)


def item_similarity(matrix: sp.csr_matrix, neighbours: int, block_items: int) -> sp.csr_matrix:
    """Cosine similarity of the columns of a binary user-item matrix, top `neighbours` per row.

    Args:
        matrix: (n_users, n_items) binary CSR.
        neighbours: entries kept per row, largest first; 0 keeps all. Ties at the cut-off are
            broken in a fixed but unspecified order.
        block_items: rows computed per sparse product.

    Returns:
        (n_items, n_items) float32 CSR; row i holds i's neighbours, the diagonal is empty.
    """
    n_items = matrix.shape[1]
    norms = np.sqrt(np.asarray(matrix.sum(axis=0)).ravel())  # (n_items,)
    inverse = np.divide(1.0, norms, out=np.zeros_like(norms), where=norms > 0)
    by_item = matrix.T.tocsr()  # (n_items, n_users)
    blocks = []
    for start in range(0, n_items, block_items):
        stop = min(start + block_items, n_items)
        block = (by_item[start:stop] @ matrix).tocoo()  # (b, n_items) co-occurrence counts
        off_diagonal = block.col != block.row + start
        rows, cols = block.row[off_diagonal], block.col[off_diagonal]
        values = block.data[off_diagonal] * inverse[rows + start] * inverse[cols]
        values = values.astype(np.float32)
        if neighbours > 0:
            cells = (stop - start) * n_items
            dense = len(values) > _DENSE_SHARE * cells and cells <= _DENSE_CELLS
            top = _dense_top if dense else _sparse_top
            rows, cols, values = top(rows, cols, values, stop - start, n_items, neighbours)
        blocks.append(sp.csr_matrix((values, (rows, cols)), shape=(stop - start, n_items)))
    return sp.vstack(blocks, format="csr")


Entries = tuple[np.ndarray, np.ndarray, np.ndarray]  # (rows, cols, values) of a sparse block


def _dense_top(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int, keep: int
) -> Entries:
    """The entries among the `keep` largest of their row, by `torch.topk` on a dense copy."""
    dense = np.zeros((n_rows, n_cols), dtype=np.float32)  # (b, n_items)
    dense.ravel()[rows.astype(np.int64) * n_cols + cols] = values
    top = torch.topk(torch.from_numpy(dense), min(keep, n_cols), dim=1)
    top_values, top_cols = top.values, top.indices  # (b, keep)
    top_rows = torch.arange(n_rows).unsqueeze(1).expand_as(top_cols)  # (b, keep)
    found = top_values > 0  # rows with fewer than `keep` neighbours pad with zeros
    return top_rows[found].numpy(), top_cols[found].numpy(), top_values[found].numpy()


def _sparse_top(
    rows: np.ndarray, cols: np.ndarray, values: np.ndarray, n_rows: int, n_cols: int, keep: int
) -> Entries:
    """The entries among the `keep` largest of their row, by one sort of the entries."""
    # Sort by row, then value descending: the bits of a positive float32 order like the float.
    descending = ~values.view(np.uint32)
    order = np.argsort((rows.astype(np.int64) << 32) | descending, kind="stable")
    rows, cols, values = rows[order], cols[order], values[order]
    starts = np.searchsorted(rows, np.arange(n_rows))  # (n_rows,) first entry of each row
    kept = np.arange(len(rows)) - starts[rows] < keep  # position within its row < keep
    return rows[kept], cols[kept], values[kept]
