from __future__ import annotations

import numpy as np
import pytest
import torch

from dlmia.data.histories import Histories
from dlmia.data.interactions import Interactions


@pytest.fixture
def hist() -> Histories:
    return Histories.from_lists([[1, 2, 3], [4], [], [5, 6, 5]], n_items=10)


def test_rows_gathers_in_the_given_order(hist: Histories) -> None:
    sub = hist.rows([3, 0])
    assert sub.items.tolist() == [5, 6, 5, 1, 2, 3]
    assert sub.indptr.tolist() == [0, 3, 6]
    assert sub.users.tolist() == [3, 0]
    assert hist.rows(np.array([False, True, True, False])).lengths.tolist() == [1, 0]


def test_drop_last_and_last_items(hist: Histories) -> None:
    assert hist.drop_last().indptr.tolist() == [0, 2, 2, 2, 4]
    assert hist.drop_last().items.tolist() == [1, 2, 5, 6]
    assert hist.drop_last(2).lengths.tolist() == [1, 0, 0, 1]
    assert hist.last_items().tolist() == [3, 4, -1, 5]


def test_to_sparse_is_binary(hist: Histories) -> None:
    dense = hist.to_sparse().toarray()
    assert dense.shape == (4, 10)
    assert dense[3, 5] == 1.0 and dense.sum() == 6


def test_padded_keeps_the_most_recent_items(hist: Histories) -> None:
    padded = hist.padded(2, pad=10)
    assert torch.equal(padded, torch.tensor([[2, 3], [10, 4], [10, 10], [6, 5]]))


def test_interactions_histories_sort_by_time_stably() -> None:
    inter = Interactions(
        name="t",
        users=np.array([1, 0, 1, 1, 0]),
        items=np.array([0, 1, 2, 3, 4]),
        times=np.array([30, 5, 10, 10, 1]),
        user_ids=np.array(["a", "b"]),
        item_ids=np.arange(5),
    )
    hist = inter.histories()
    assert hist.sequence(0).tolist() == [4, 1]
    assert hist.sequence(1).tolist() == [2, 3, 0]
    assert hist.times is not None and hist.times.tolist() == [1, 5, 10, 10, 30]
    assert inter.fingerprint() == inter.fingerprint()
