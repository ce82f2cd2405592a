"""Item vectors and difference vectors: exact values on a hand-built case, training properties."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
import torch

from dlmia.data.histories import Histories
from dlmia.errors import ConfigError
from dlmia.vectors import (
    ItemVectorConfig,
    ItemVectors,
    difference_vectors,
    fit_item_vectors,
)

# Five items in 2-d; item 3 has no vector.
VECTORS = ItemVectors(
    vectors=np.array([[1, 0], [0, 1], [2, 2], [0, 0], [4, 0]], np.float32),
    has_vector=np.array([True, True, True, False, True]),
)
HISTORIES = Histories.from_lists([[0, 1], [3, 2], [3], [3]], n_items=5)
LISTS = torch.tensor([[2, 4], [3, 0], [3, 3], [1, 3]])



def test_uniform_centre_exact() -> None:
    d, n_zero = difference_vectors(VECTORS, HISTORIES, LISTS, "uniform")
    expected = [
        [0.5 - 3, 0.5 - 1],  # history mean (0.5, 0.5), list mean (3, 1)
        [2 - 1, 2 - 0],  # item 3 skipped on both sides
        [0, 0],  # no vector on either side: the zero vector, counted
        [0 - 0, 0 - 1],  # empty history side contributes 0; the list still counts
    ]
    np.testing.assert_allclose(d, expected, rtol=1e-6)
    assert d.dtype == np.float32 and n_zero == 1


def test_rank_weighted_centre_exact() -> None:
    d, n_zero = difference_vectors(VECTORS, HISTORIES, LISTS, "rank")
    # k = 2: ranks weigh 2 and 1. User 0: (2 * (2, 2) + 1 * (4, 0)) / 3 = (8/3, 4/3).
    expected = [[0.5 - 8 / 3, 0.5 - 4 / 3], [1, 2], [0, 0], [0, -1]]
    np.testing.assert_allclose(d, expected, rtol=1e-6)
    assert n_zero == 1


def test_rank_weights_renormalise_over_items_with_vectors() -> None:
    histories = Histories.from_lists([[0]], n_items=5)
    d, _ = difference_vectors(VECTORS, histories, torch.tensor([[3, 1, 4]]), "rank")
    # Rank 1 (weight 3) has no vector; ranks 2 and 3 weigh 2 and 1 over a total of 3.
    expected = np.array([1, 0]) - (2 * np.array([0, 1]) + np.array([4, 0])) / 3
    np.testing.assert_allclose(d[0], expected, rtol=1e-6)


def test_difference_vector_errors() -> None:
    with pytest.raises(ConfigError, match="uniform or rank"):
        difference_vectors(VECTORS, HISTORIES, LISTS, "median")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="3 recommendation lists for 4 users"):
        difference_vectors(VECTORS, HISTORIES, LISTS[:3])


def block_histories(n_users: int = 120, seed: int = 0) -> Histories:
    """Users of two blocks of 10 items (items 0-9 and 10-19); items 20-24 never occur."""
    rng = np.random.default_rng(seed)
    sequences = [
        (rng.choice(10, 6, replace=False) + 10 * (user % 2)).tolist() for user in range(n_users)
    ]
    return Histories.from_lists(sequences, n_items=25)


# batch << catalogue, as in use
CONFIG = ItemVectorConfig(factors=8, batch_size=16, seed=0, device="cpu")


def test_item_vectors_shape_mask_and_seed() -> None:
    histories = block_histories()
    first = fit_item_vectors(histories, CONFIG)
    assert first.vectors.shape == (25, 8) and first.vectors.dtype == np.float32
    np.testing.assert_array_equal(first.has_vector, np.arange(25) < 20)
    assert not first.vectors[20:].any() and np.isfinite(first.vectors).all()
    again = fit_item_vectors(histories, CONFIG)
    assert np.array_equal(first.vectors, again.vectors)
    other = fit_item_vectors(histories, replace(CONFIG, seed=1))
    assert not np.array_equal(first.vectors, other.vectors)


def test_item_vectors_separate_the_blocks() -> None:
    vectors = fit_item_vectors(block_histories(), CONFIG).vectors[:20]
    unit = vectors / np.linalg.norm(vectors, axis=1, keepdims=True)
    cosine = unit @ unit.T  # (20, 20)
    block = np.arange(20) // 10
    same = np.equal.outer(block, block)
    assert cosine[same & ~np.eye(20, dtype=bool)].mean() > cosine[~same].mean() + 0.2


def test_member_lists_give_shorter_difference_vectors() -> None:
    histories = block_histories()
    item_vectors = fit_item_vectors(histories, CONFIG)
    own_block = torch.from_numpy((histories.users % 2)[:, None] * 10 + np.arange(5))  # (120, 5)
    other_block = (own_block + 10) % 20  # the same ranks in the other block
    near, _ = difference_vectors(item_vectors, histories, own_block)
    far, _ = difference_vectors(item_vectors, histories, other_block)
    assert (np.linalg.norm(near, axis=1) < np.linalg.norm(far, axis=1)).all()
