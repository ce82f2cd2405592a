"""GRU4Rec, Caser and BERT4Rec: each learns a planted sequential rule, serves unseen users, keeps
its best epoch, honours `exclude_seen` and is bit-identical for a seed on the CPU."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch

from dlmia.data.histories import Histories
from dlmia.errors import ConfigError
from dlmia.recommenders import make_recommender
from dlmia.recommenders.neural import NeuralRecommender, ranking_metrics
from dlmia.recommenders.sequential import NextItemRecommender, without_pad_columns

N_ITEMS = 30
# Small, fast settings: the planted rule needs little capacity.
FAST: dict[str, dict[str, Any]] = {
    "gru4rec": dict(embedding_dim=16, hidden_dim=32, max_len=10, stride=5, batch_size=16, lr=0.01),
    "caser": dict(
        embedding_dim=16, window=3, n_v=2, n_h=4, max_len=10, stride=5, batch_size=16, lr=0.01
    ),
    "bert4rec": dict(
        hidden_dim=32, heads=2, dropout=0.0, max_len=10, stride=5, batch_size=16, lr=0.003,
        mask_last_prob=0.5,
    ),
}
EPOCHS = {"gru4rec": 15, "caser": 15, "bert4rec": 40}



def planted(n_users: int, seed: int) -> Histories:
    """Sequences that walk the catalogue: item i is always followed by item i + 1 (mod N_ITEMS)."""
    rng = np.random.default_rng(seed)
    starts, lengths = rng.integers(0, N_ITEMS, n_users), rng.integers(6, 16, n_users)
    return Histories.from_lists(
        [[(s + t) % N_ITEMS for t in range(n)] for s, n in zip(starts, lengths)], N_ITEMS
    )


def fit(name: str, histories: Histories, seed: int = 0, **overrides: Any) -> NeuralRecommender:
    settings = {**FAST[name], "epochs": EPOCHS[name], "patience": EPOCHS[name], **overrides}
    model = make_recommender(name, settings, device="cpu", seed=seed)
    assert isinstance(model, NeuralRecommender)
    return model.fit(histories)


@pytest.fixture(scope="module", params=sorted(FAST))
def trained(request: pytest.FixtureRequest) -> tuple[NeuralRecommender, Histories]:
    members = planted(120, seed=1)
    return fit(request.param, members), members


def test_learns_the_planted_rule_for_members_and_unseen_users(trained: Any) -> None:
    model, members = trained
    strangers = planted(60, seed=2)  # never trained on
    for users in (members, strangers):
        hr1, _ = ranking_metrics(model, model.training_prefix(users), users.last_items(), k=1)
        assert hr1 >= 0.9, f"{model.name}: HR@1 {hr1:.2f}"


def test_dropping_pad_columns_changes_no_output_at_an_item(trained: Any) -> None:
    """Training batches lose their all-pad columns (`without_pad_columns`): the network's
    outputs at the items of the cut batch are its outputs on the full windows."""
    model, members = trained
    if not isinstance(model, NextItemRecommender):
        pytest.skip("BERT4Rec trains on full windows (cut ones trained it worse on Beauty)")
    data = model.prepare(model.training_prefix(members))
    windows = data.inputs  # (W, max_len)
    pad, left = model.n_items, model.left_aligned
    short = windows[(windows == pad).sum(1) >= 3]  # every row has 3+ pads
    (cut,) = without_pad_columns(short, pad=pad, left_aligned=left)
    assert 0 < cut.shape[1] < short.shape[1]
    model.net.eval()
    with torch.no_grad():
        full, part = model.net(short), model.net(cut)  # (B, L, d), (B, L', d)
    full = full[:, : cut.shape[1]] if left else full[:, -cut.shape[1] :]
    items = cut != pad
    torch.testing.assert_close(part[items], full[items], rtol=1e-5, atol=1e-5)


def test_keeps_the_best_epoch(trained: Any) -> None:
    model, members = trained
    best = max(model.log, key=lambda e: e.ndcg)
    assert model.best_epoch == best.epoch
    _, ndcg = ranking_metrics(model, model.training_prefix(members), members.last_items(), k=10)
    assert ndcg == pytest.approx(best.ndcg, abs=1e-12)


def test_recommend_shapes_and_exclude_seen(trained: Any) -> None:
    model, members = trained
    users = members.rows(np.arange(7))
    lists = model.recommend(users, k=8, exclude_seen=True)
    assert lists.shape == (7, 8) and lists.dtype == torch.long
    for row in range(7):
        assert len(set(lists[row].tolist())) == 8
        assert not set(lists[row].tolist()) & set(users.sequence(row).tolist())
    scores = model.score(users)
    assert scores.shape == (7, N_ITEMS) and torch.isfinite(scores).all()


def test_scores_short_and_empty_histories(trained: Any) -> None:
    model, _ = trained
    odd = Histories.from_lists([[], [3], list(range(25))], N_ITEMS)  # 25 > every max_len here
    scores = model.score(odd)
    assert scores.shape == (3, N_ITEMS) and torch.isfinite(scores).all()
    assert scores[2].argmax().item() == 25  # the long history still follows the rule


@pytest.mark.parametrize("name", sorted(FAST))
def test_same_seed_same_lists_other_seed_other_lists(name: str) -> None:
    members = planted(40, seed=3)
    lists = [
        fit(name, members, seed=seed, epochs=2).recommend(members, k=5) for seed in (7, 7, 8)
    ]
    assert torch.equal(lists[0], lists[1])
    assert not torch.equal(lists[0], lists[2])


def test_bad_settings_raise_config_errors() -> None:
    with pytest.raises(ConfigError, match="heads"):
        make_recommender("bert4rec", {"hidden_dim": 10, "heads": 4})
    with pytest.raises(ConfigError, match="max_len"):
        make_recommender("gru4rec", {"max_len": 0})
    with pytest.raises(ConfigError, match="unknown key"):
        make_recommender("caser", {"kernel": 3})
