"""Registry contract tests (every model) and tests of Popularity, ItemCF and LFM."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import scipy.sparse as sp
import torch

from dlmia.data.histories import Histories
from dlmia.data.sources import load_dataset
from dlmia.errors import ConfigError
from dlmia.recommenders import RECOMMENDERS, Recommender, make_recommender
from dlmia.recommenders import itemcf as itemcf_module
from dlmia.recommenders.itemcf import item_similarity

DETERMINISTIC = {"popularity", "itemcf"}  # every other registered model must depend on its seed
TINY_LFM = {"batch_size": 32, "factors": 16}  # enough SGD steps on a 1,000-interaction dataset



def planted_blocks(n_users: int = 120, n_blocks: int = 4, block: int = 10) -> Histories:
    """Users who each have 8 random items of their own block of items, plus one stray item."""
    rng = np.random.default_rng(0)
    n_items = n_blocks * block
    sequences = []
    for user in range(n_users):
        home = (user % n_blocks) * block
        own = rng.choice(block, size=8, replace=False) + home
        stray = rng.choice(np.setdiff1d(np.arange(n_items), np.arange(home, home + block)))
        sequences.append([int(stray), *map(int, own)])  # the last item is in the block
    return Histories.from_lists(sequences, n_items)


def quick_settings(name: str) -> dict[str, Any]:
    """Settings that keep a contract test fast on the tiny data (small, short neural models)."""
    if name == "lfm":
        return TINY_LFM
    small = {"epochs": 2, "hidden_dim": 16, "embedding_dim": 16}
    fields = {f.name for f in dataclasses.fields(RECOMMENDERS[name].Config)}
    return {key: value for key, value in small.items() if key in fields}


def fitted(name: str, histories: Histories, seed: int = 0) -> Recommender:
    return make_recommender(name, quick_settings(name), device="cpu", seed=seed).fit(histories)


@pytest.fixture(scope="module")
def data() -> Histories:
    return planted_blocks()


@pytest.mark.parametrize("name", sorted(RECOMMENDERS))
def test_contract_shapes_ids_and_exclusion(name: str, data: Histories) -> None:
    model = fitted(name, data)
    assert model.n_items == data.n_items
    scores = model.score(data.rows(np.arange(7)))
    assert scores.shape == (7, data.n_items) and scores.device == model.device
    for exclude_seen in (False, True):
        lists = model.recommend(data, 12, exclude_seen=exclude_seen)
        assert lists.shape == (data.n_users, 12) and lists.dtype == torch.long
        assert lists.min() >= 0 and lists.max() < data.n_items
        assert all(len(set(row.tolist())) == 12 for row in lists)
    own = data.to_sparse().toarray().astype(bool)
    assert not own[np.arange(data.n_users)[:, None], lists.numpy()].any()  # exclude_seen=True


@pytest.mark.parametrize("name", sorted(RECOMMENDERS))
def test_contract_seeding(name: str, data: Histories) -> None:
    first = fitted(name, data, seed=1).recommend(data, 10)
    assert torch.equal(first, fitted(name, data, seed=1).recommend(data, 10))
    other = fitted(name, data, seed=2).recommend(data, 10)
    assert torch.equal(first, other) == (name in DETERMINISTIC)


@pytest.mark.parametrize("name", ["itemcf", "lfm"])
def test_recommends_the_planted_block(name: str, data: Histories) -> None:
    train = data.drop_last(1)
    model = make_recommender(name, TINY_LFM if name == "lfm" else None, device="cpu").fit(train)
    lists = model.recommend(train, 5, exclude_seen=True).numpy()
    hit_rate = (lists == data.last_items()[:, None]).any(1).mean()
    # Each user has 3 unseen items left in their block, so a perfect model hits 5/3 > 1 of them.
    assert hit_rate > 0.9
    popularity = make_recommender("popularity").fit(train).recommend(train, 5, exclude_seen=True)
    assert hit_rate > 2 * (popularity.numpy() == data.last_items()[:, None]).any(1).mean()


def test_lfm_scores_new_users_by_folding_in(data: Histories) -> None:
    members, new = data.rows(np.arange(0, 100)), data.rows(np.arange(100, 120))
    model = make_recommender("lfm", TINY_LFM, device="cpu").fit(members.drop_last(1))
    lists = model.recommend(new.drop_last(1), 3, exclude_seen=True).numpy()
    # A new user has 3 unseen items left in their block: they should make up the list.
    assert ((lists // 10) == (new.users % 4)[:, None]).mean() > 0.9
    known = model.score(members.rows([3]))
    assert torch.equal(known, model.user_factors[3:4] @ model.item_factors.T)


def test_lfm_fold_in_solves_each_user_s_normal_equations(data: Histories) -> None:
    """Folded-in factors, chunked by history length, are each user's ridge solution (a float64
    solve per user), whatever their history's length (0, 1, or long)."""
    model = make_recommender("lfm", TINY_LFM, device="cpu").fit(data.rows(np.arange(100)))
    rng = np.random.default_rng(0)
    lists = [[], [3], *(rng.choice(40, size=n, replace=False).tolist() for n in (2, 7, 33, 40))]
    new = Histories.from_lists(lists * 3, data.n_items)
    factors = model.fold_in(new).double().numpy()
    c, items = model.config, model.item_factors.double().numpy()
    base = c.negatives * model._negative_gram.double().numpy() + (1 + c.negatives) * c.l2 * np.eye(
        c.factors
    )
    for row, history in enumerate(lists * 3):
        if not history:
            assert not factors[row].any()
            continue
        q = items[history]
        expected = np.linalg.solve(q.T @ q / len(history) + base, q.mean(0))
        assert np.allclose(factors[row], expected, rtol=1e-4, atol=1e-5)


def test_fold_in_chunks_cover_every_row_once_within_the_budget() -> None:
    from dlmia.recommenders.lfm import _length_chunks

    lengths = np.random.default_rng(1).integers(0, 3000, 5000)
    chunks = _length_chunks(lengths, budget=1 << 16)
    assert np.array_equal(np.sort(np.concatenate(chunks)), np.arange(5000))
    assert all(len(rows) == 1 or len(rows) * max(1, lengths[rows].max()) <= 1 << 16
               for rows in chunks)  # fmt: skip
    widest = max(lengths[rows].max() / max(1, lengths[rows].min()) for rows in chunks)
    assert widest <= 2  # a chunk's lengths lie within a factor 2: little padding


def test_registry_errors() -> None:
    with pytest.raises(ConfigError, match=", ".join(sorted(RECOMMENDERS))):
        make_recommender("nope")
    with pytest.raises(ConfigError, match=r"recommender\.itemcf\.colour"):
        make_recommender("itemcf", {"colour": 1})
    with pytest.raises(ConfigError, match=r"recommender\.lfm\.epochs"):
        make_recommender("lfm", {"epochs": "many"})
    model = make_recommender("lfm", {"factors": 8}, device="cpu", seed=3)
    assert model.config.factors == 8 and model.seed == 3


# Binary user-item matrix of 4 users over 4 items: item counts 3, 2, 2, 1.
TINY = sp.csr_matrix(
    np.array([[1, 1, 0, 0], [1, 1, 1, 0], [0, 0, 1, 1], [1, 0, 0, 0]], np.float32)
)
R6, R2 = 1 / np.sqrt(6), 1 / np.sqrt(2)
TINY_SIMILARITY = np.array(
    [[0, 2 * R6, R6, 0], [2 * R6, 0, 0.5, 0], [R6, 0.5, 0, R2], [0, 0, R2, 0]], np.float32
)


@pytest.mark.parametrize("dense_share", [0.0, 1.0], ids=["dense-prune", "sparse-prune"])
@pytest.mark.parametrize("block_items", [1, 3, 8])
def test_itemcf_exact_similarity(dense_share: float, block_items: int, monkeypatch) -> None:
    monkeypatch.setattr(itemcf_module, "_DENSE_SHARE", dense_share)
    full = item_similarity(TINY, 0, block_items).toarray()
    np.testing.assert_allclose(full, TINY_SIMILARITY, rtol=1e-6)
    top1 = item_similarity(TINY, 1, block_items).toarray()
    expected = np.zeros_like(TINY_SIMILARITY)
    for row, col in enumerate([1, 0, 3, 2]):
        expected[row, col] = TINY_SIMILARITY[row, col]
    np.testing.assert_allclose(top1, expected, rtol=1e-6)


@pytest.mark.parametrize("dense_share", [0.0, 1.0], ids=["dense-prune", "sparse-prune"])
def test_itemcf_pruning_matches_dense_reference(dense_share: float, monkeypatch) -> None:
    monkeypatch.setattr(itemcf_module, "_DENSE_SHARE", dense_share)
    matrix = sp.random(80, 50, density=0.15, format="csr", random_state=0, dtype=np.float32)
    matrix.data[:] = 1.0
    counts = matrix.toarray()
    reference = counts.T @ counts / np.sqrt(np.outer(counts.sum(0), counts.sum(0)) + 1e-30)
    np.fill_diagonal(reference, 0)
    pruned = item_similarity(matrix, 5, 16).toarray()
    # Each row keeps its 5 largest similarities (which items among ties may differ).
    expected_values = -np.sort(-reference, axis=1)[:, :5]
    kept_values = -np.sort(-pruned, axis=1)[:, :5]
    np.testing.assert_allclose(kept_values, expected_values, rtol=1e-5)
    assert ((pruned > 0).sum(1) <= 5).all()
    assert np.allclose(pruned[pruned > 0], reference[pruned > 0], rtol=1e-5)


def test_itemcf_scores_sum_neighbour_similarities() -> None:
    histories = Histories.from_lists([[0, 1], [1, 2], [3, 0], [0]], 4)
    model = make_recommender("itemcf", {"neighbours": 0}).fit(histories)
    query = Histories.from_lists([[0, 2]], 4)
    expected = model.similarity.toarray()[[0, 2]].sum(0)
    np.testing.assert_allclose(model.score(query).cpu().numpy()[0], expected, rtol=1e-6)


@pytest.mark.shared_data
def test_ml1m_personalised_models_beat_popularity(shared_data: Path) -> None:
    histories = load_dataset("ml-1m", shared_data).histories()
    third = np.random.default_rng(0).permutation(histories.n_users)[: histories.n_users // 3]
    histories = histories.rows(np.sort(third))  # ~1,300 users, about a side's members
    train, last = histories.drop_last(1), histories.last_items()
    hit_rates = {}
    for name in ("popularity", "itemcf", "lfm"):
        model = make_recommender(name, device="cpu").fit(train)
        lists = model.recommend(train, 10, exclude_seen=True)
        hit_rates[name] = (lists.numpy() == last[:, None]).any(1).mean()
    assert hit_rates["itemcf"] > 1.4 * hit_rates["popularity"], hit_rates
    assert hit_rates["lfm"] > 1.4 * hit_rates["popularity"], hit_rates
