"""Non-member list policies: exact popular lists, properties of the randomised ones, errors."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlmia.data.histories import Histories
from dlmia.errors import ConfigError
from dlmia.nonmember import RANDOM_POOL_FACTOR, nonmember_lists
from dlmia.recommenders import make_recommender


def random_histories(n_users: int = 50, n_items: int = 200, seed: int = 0) -> Histories:
    """Histories drawn with a skewed (Zipf-like) item popularity, no repeats within a user."""
    rng = np.random.default_rng(seed)
    popularity = 1 / np.arange(1, n_items + 1)
    popularity /= popularity.sum()
    sequences = [
        rng.choice(n_items, rng.integers(1, 30), replace=False, p=popularity).tolist()
        for _ in range(n_users)
    ]
    return Histories.from_lists(sequences, n_items)


def owned(histories: Histories, lists: torch.Tensor) -> np.ndarray:
    """(n, k) bool: list entry is one of the user's own items."""
    matrix = histories.to_sparse().toarray().astype(bool)
    return matrix[np.arange(histories.n_users)[:, None], lists.numpy()]


def test_popular_exact() -> None:
    # Counts: item 1 three times, items 0, 2, 3 once, items 4 and 5 never.
    histories = Histories.from_lists([[0, 1], [1, 2], [1, 3]], n_items=6)
    lists = nonmember_lists("popular", histories, 3, seed=0)
    assert lists.tolist() == [[2, 3, 4], [0, 3, 4], [0, 2, 4]]


def test_popular_properties() -> None:
    histories = random_histories()
    lists = nonmember_lists("popular", histories, 20, seed=0)
    assert lists.shape == (50, 20) and lists.dtype == torch.long
    assert not owned(histories, lists).any()
    counts = np.bincount(histories.items, minlength=histories.n_items)
    ranks = np.argsort(np.argsort(-counts, kind="stable"))  # rank of each item
    assert (np.diff(ranks[lists.numpy()], axis=1) > 0).all()  # listed in popularity order


def test_popular_random_properties() -> None:
    histories = random_histories()
    k = 10
    lists = nonmember_lists("popular-random", histories, k, seed=3)
    assert lists.shape == (50, k)
    assert all(len(set(row)) == k for row in lists.tolist())
    assert not owned(histories, lists).any()
    counts = np.bincount(histories.items, minlength=histories.n_items)
    pool = np.argsort(-counts, kind="stable")[: RANDOM_POOL_FACTOR * k]
    assert np.isin(lists.numpy(), pool).all()
    assert torch.equal(lists, nonmember_lists("popular-random", histories, k, seed=3))
    assert not torch.equal(lists, nonmember_lists("popular-random", histories, k, seed=4))
    assert len({tuple(sorted(row)) for row in lists.tolist()}) > 40  # users get different draws
    popular = nonmember_lists("popular", histories, k, seed=3).numpy()
    assert (np.isin(lists.numpy(), popular).mean()) < 0.5  # far from the plain popular list


def test_popular_random_fills_past_a_pool_the_user_owns() -> None:
    # 10 items, k = 1, pool = the 8 most popular; user 0 owns all of the pool.
    histories = Histories.from_lists([list(range(8)), [0, 1], [2]], n_items=10)
    lists = nonmember_lists("popular-random", histories, 1, seed=0)
    assert lists[0].item() == 8  # the most popular item outside the pool (ties by id)
    assert not owned(histories, lists).any()


def test_model_policy_uses_the_recommender() -> None:
    histories = random_histories()
    model = make_recommender("itemcf").fit(histories.rows(np.arange(30)))
    others = histories.rows(np.arange(30, 50))
    lists = nonmember_lists("model", others, 5, seed=0, recommender=model)
    assert torch.equal(lists, model.recommend(others, 5))
    lists = nonmember_lists("model", others, 5, seed=0, recommender=model, exclude_seen=True)
    assert torch.equal(lists, model.recommend(others, 5, exclude_seen=True))


def test_errors() -> None:
    histories = Histories.from_lists([[0, 1], [2]], n_items=4)
    with pytest.raises(ConfigError, match="popular, popular-random, model"):
        nonmember_lists("random", histories, 2, seed=0)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="k=5 must be in 1..4"):
        nonmember_lists("popular", histories, 5, seed=0)
    with pytest.raises(ConfigError, match="too large"):
        nonmember_lists("popular", histories, 3, seed=0)  # user 0 has only 2 items left
    with pytest.raises(ConfigError, match="trained recommender"):
        nonmember_lists("model", histories, 2, seed=0)
