"""The generated dataset: determinism, realistic skew, and structure a recommender can learn."""

from __future__ import annotations

import time

import numpy as np
import pytest

from dlmia.data.filtering import FilterConfig, kcore
from dlmia.data.histories import Histories
from dlmia.data.splits import SplitConfig, member_halves, split_users
from dlmia.data.synthetic import SyntheticConfig, generate
from dlmia.errors import ConfigError

SMALL = SyntheticConfig(n_users=300, n_items=200, n_tastes=8, mean_length=25)


def test_same_seed_same_data_and_other_seed_differs() -> None:
    a, b, c = generate(SMALL, 1), generate(SMALL, 1), generate(SMALL, 2)
    assert a.fingerprint() == b.fingerprint()
    assert np.array_equal(a.item_ids, b.item_ids)
    assert a.fingerprint() != c.fingerprint()


def test_defaults_are_fast_and_shaped_like_the_demo_needs() -> None:
    generate(SyntheticConfig(n_users=5), 0)  # warm up imports
    start = time.perf_counter()
    data = generate(SyntheticConfig(), 0)
    elapsed = time.perf_counter() - start
    assert elapsed < 1.0, f"generate took {elapsed:.2f} s"
    assert data.name == "synthetic"
    assert data.n_users == 1500 and data.n_items == 600
    lengths = np.bincount(data.users)
    assert 30 < lengths.mean() < 45
    assert np.array_equal(np.unique(data.users), np.arange(data.n_users))


def test_timestamps_strictly_increase_within_users_and_no_repeats() -> None:
    data = generate(SMALL, 0)
    histories = data.histories()
    assert histories.times is not None
    same_user = np.diff(histories.row_of_entries()) == 0
    assert (np.diff(histories.times)[same_user] > 0).all()
    pairs = data.users * data.n_items + data.items
    assert len(np.unique(pairs)) == len(pairs)
    assert histories.times.min() >= SMALL.start_time


def test_popularity_is_skewed() -> None:
    counts = np.sort(np.bincount(generate(SyntheticConfig(), 0).items))[::-1]
    top_share = counts[: len(counts) // 10].sum() / counts.sum()
    assert top_share > 0.25  # uniform popularity would give 0.10
    flat = generate(SyntheticConfig(popularity_exponent=0.0, taste_strength=0.0), 0)
    flat_counts = np.sort(np.bincount(flat.items))[::-1]
    assert flat_counts[: len(flat_counts) // 10].sum() / flat_counts.sum() < 0.15


def top_successor_share(histories: Histories) -> float:
    """Share of consecutive pairs whose second item is the first one's most frequent follower."""
    same_user = np.diff(histories.row_of_entries()) == 0
    previous, following = histories.items[:-1][same_user], histories.items[1:][same_user]
    counts = np.zeros((histories.n_items, histories.n_items), dtype=np.int64)
    np.add.at(counts, (previous, following), 1)
    return float(counts.max(axis=1).sum() / counts.sum())


def test_planted_transition_is_detectable() -> None:
    planted = top_successor_share(generate(SMALL, 0).histories())
    absent = top_successor_share(
        generate(SyntheticConfig(**{**SMALL.__dict__, "transition_strength": 0.0}), 0).histories()
    )
    assert planted > 0.2
    assert planted > 2 * absent


def hit_rate(scores: np.ndarray, seen: np.ndarray, held_out: np.ndarray, k: int = 10) -> float:
    """HR@k of the held-out items, seen items excluded."""
    scores = np.where(seen > 0, -np.inf, scores)
    top = np.argsort(-scores, axis=1, kind="stable")[:, :k]
    return float((top == held_out[:, None]).any(axis=1).mean())


def test_demo_members_are_learnable_above_popularity() -> None:
    """After the default filter and split, item-item CF on one member half beats popularity."""
    data = kcore(generate(SyntheticConfig(), 0), FilterConfig())
    parts = split_users(data.n_users, SplitConfig(seed=0))
    members, _ = member_halves(parts["target"], seed=0, role="target")
    histories = data.histories().rows(members)
    train = histories.drop_last(1)
    seen = train.to_sparse().toarray()  # (n_members, n_items)
    held_out = histories.last_items()
    popularity = np.tile(seen.sum(axis=0), (len(members), 1))
    norms = np.sqrt(np.maximum(seen.sum(axis=0), 1))
    similarity = (seen.T @ seen) / np.outer(norms, norms)  # (n_items, n_items) cosine
    np.fill_diagonal(similarity, 0)
    popular = hit_rate(popularity, seen, held_out)
    itemcf = hit_rate(seen @ similarity, seen, held_out)
    assert itemcf > 1.8 * popular, (itemcf, popular)


@pytest.mark.parametrize(
    "values",
    [{"n_users": 0}, {"n_tastes": 700}, {"taste_strength": 1.5}, {"mean_length": 3.0}],
)
def test_config_validation(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=f"data.synthetic: invalid {next(iter(values))}"):
        SyntheticConfig(**values)  # type: ignore[arg-type]
