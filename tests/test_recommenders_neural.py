"""NCF and the shared neural machinery: block structure, fold-in users, ranking metrics,
best-epoch restore, windows, the catalogue loss, and the CUDA path where there is one."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest
import torch
import torch.nn.functional as F
from torch import nn

import dlmia.recommenders.ncf as ncf_module
from dlmia.data.histories import Histories
from dlmia.errors import ConfigError
from dlmia.recommenders import make_recommender
from dlmia.recommenders.base import Recommender
from dlmia.recommenders.gru4rec import GRU4RecConfig
from dlmia.recommenders.neural import (
    EarlyStopping,
    NeuralRecommender,
    catalogue_loss,
    ranking_metrics,
    validation_rows,
)
from dlmia.recommenders.sequential import left_align, sequence_windows
from dlmia.seeding import deterministic_kernels

N_ITEMS, BLOCKS = 60, 4
BLOCK = N_ITEMS // BLOCKS
FAST_NCF: dict[str, Any] = dict(
    gmf_dim=8, mlp_dim=8, layers=[16, 8], batch_size=8, lr=0.01, epochs=25, patience=25
)



def blocks(n_users: int, seed: int) -> Histories:
    """User u takes 8 random items of block u % BLOCKS only (planted co-occurrence structure)."""
    rng = np.random.default_rng(seed)
    return Histories.from_lists(
        [list(rng.choice(BLOCK, 8, replace=False) + BLOCK * (u % BLOCKS)) for u in range(n_users)],
        N_ITEMS,
    )


def fit_ncf(histories: Histories, seed: int = 0, **overrides: Any) -> NeuralRecommender:
    model = make_recommender("ncf", {**FAST_NCF, **overrides}, device="cpu", seed=seed)
    assert isinstance(model, NeuralRecommender)
    return model.fit(histories)


@pytest.fixture(scope="module")
def ncf() -> tuple[NeuralRecommender, Histories]:
    members = blocks(160, seed=1)
    return fit_ncf(members), members


def test_ncf_recovers_blocks_for_members_and_unseen_users(ncf: Any) -> None:
    model, members = ncf
    for users in (members, blocks(40, seed=2)):  # the second set was never trained on
        lists = model.recommend(model.training_prefix(users), k=5, exclude_seen=True).numpy()
        own_block = np.arange(users.n_users) % BLOCKS
        assert ((lists // BLOCK) == own_block[:, None]).mean() >= 0.95


def test_ncf_shapes_exclude_seen_and_best_epoch(ncf: Any) -> None:
    model, members = ncf
    users = members.rows(np.arange(6))
    lists = model.recommend(users, k=10, exclude_seen=True)
    assert lists.shape == (6, 10)
    for row in range(6):
        assert len(set(lists[row].tolist())) == 10
        assert not set(lists[row].tolist()) & set(users.sequence(row).tolist())
    odd = Histories.from_lists([[], [1]], N_ITEMS)
    assert model.score(odd).shape == (2, N_ITEMS) and torch.isfinite(model.score(odd)).all()
    best = max(model.log, key=lambda e: e.ndcg)
    assert model.best_epoch == best.epoch
    _, ndcg = ranking_metrics(model, model.training_prefix(members), members.last_items())
    assert ndcg == pytest.approx(best.ndcg, abs=1e-12)


def test_ncf_same_seed_same_lists_other_seed_other_lists() -> None:
    members = blocks(40, seed=3)
    lists = [fit_ncf(members, seed=s, epochs=2).recommend(members, k=5) for s in (4, 4, 5)]
    assert torch.equal(lists[0], lists[1])
    assert not torch.equal(lists[0], lists[2])


@pytest.mark.parametrize("block", [(1 << 18, 1 << 24), (40, 40), (4 * 16, 4 * 16)])
def test_ncf_catalogue_scores_are_its_pair_scores(
    ncf: Any, block: tuple[int, int], monkeypatch: pytest.MonkeyPatch
) -> None:
    """Blocked catalogue scoring (blocks inside a row, whole rows, the default) gives the score
    `pairs` gives each (user, item) on its own."""
    model, members = ncf
    monkeypatch.setattr(ncf_module, "SCORE_BLOCK", block)
    users = torch.randn(7, model.net.items.weight.shape[1])
    with torch.no_grad():
        scores = model.net.catalogue(users)
        rows, items = torch.meshgrid(torch.arange(7), torch.arange(N_ITEMS), indexing="ij")
        pairs = model.net.pairs(users[rows.reshape(-1)], items.reshape(-1)).reshape(7, N_ITEMS)
    torch.testing.assert_close(scores, pairs, rtol=0, atol=1e-5)


class Fixed(Recommender):
    """Returns the same given scores for every user (for exact metric checks)."""

    name = "fixed"
    Config = dict

    def __init__(self, scores: list[float]) -> None:
        super().__init__({}, device="cpu")
        self.scores, self.n_items = torch.tensor(scores), len(scores)

    def fit(self, histories: Histories) -> Fixed:
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        return self.scores.repeat(histories.n_users, 1)


def test_ranking_metrics_exact_values() -> None:
    model = Fixed([5.0, 4.0, 3.0, 3.0, 1.0])
    prefixes = Histories.from_lists([[], [0], [0, 3], [4]], 5)
    targets = np.array([1, 2, 4, 4])
    # 0-based ranks: 1 | item 0 seen and ranked out, item 2 ties with item 3 -> 1.5 | items 0 and
    # 3 seen, items 1 and 2 above -> 2 | the target was seen before: it stays ranked -> 4, a miss
    hr, ndcg = ranking_metrics(model, prefixes, targets, k=3)
    assert hr == pytest.approx(3 / 4)
    assert ndcg == pytest.approx((1 / np.log2(3) + 1 / np.log2(3.5) + 1 / np.log2(4)) / 4)
    only_first = ranking_metrics(model, prefixes, np.array([1, -1, -1, -1]), k=3)
    assert only_first == pytest.approx((1.0, 1 / np.log2(3)))  # rows with target -1 are skipped


def test_early_stopping_restores_the_best_weights() -> None:
    layer = nn.Linear(1, 1)
    stopper = EarlyStopping(patience=2)
    stops = []
    for epoch, metric in enumerate([0.1, 0.5, 0.3, 0.2], start=1):
        with torch.no_grad():
            layer.weight.fill_(epoch)
        stops.append(stopper.update(epoch, metric, layer))
    assert stops == [False, False, False, True]
    stopper.restore(layer)
    assert layer.weight.item() == 2.0 and stopper.best_epoch == 2


def test_sequence_windows_own_each_position_once() -> None:
    lengths = [0, 1, 4, 7, 23]
    histories = Histories.from_lists([list(range(n)) for n in lengths], 30)
    windows, owned = sequence_windows(histories, length=6, stride=4, pad=30)
    assert owned.sum().item() == sum(lengths)
    before = torch.arange(6) - (windows == 30).sum(1, keepdim=True)  # (W, 6) real items before
    assert (before[owned] >= torch.clamp(windows[owned], max=6 - 4)).all()  # item value = position
    items = sorted(windows[owned].tolist())
    assert items == sorted(i for n in lengths for i in range(n))
    assert windows[0].tolist() == [30, 30, 30, 30, 30, 0]  # the 1-item user: padded on the left
    (moved,) = left_align(windows[:1], 30)
    assert moved[0].tolist() == [0, 30, 30, 30, 30, 30]


def test_catalogue_loss_full_and_sampled() -> None:
    generator = torch.Generator().manual_seed(0)
    hidden, weight, bias = torch.randn(5, 3), torch.randn(12, 3), torch.randn(12)
    targets = torch.tensor([0, 3, 3, 7, 11])
    full = catalogue_loss(hidden, targets, weight, bias, 0, generator)
    assert full.item() == pytest.approx(F.cross_entropy(hidden @ weight.T + bias, targets).item())
    sampled = catalogue_loss(hidden, targets, weight, bias, 64, generator)  # every item drawn
    assert torch.isfinite(sampled) and 0 < sampled.item() < full.item() + np.log(64)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
@pytest.mark.parametrize("name", ["ncf", "gru4rec", "caser", "bert4rec"])
def test_cuda_with_mixed_precision(name: str) -> None:
    histories = blocks(40, seed=4)
    settings = {"epochs": 2, "amp": True} | ({} if name == "ncf" else {"max_len": 10, "stride": 5})
    model = make_recommender(name, settings, device="cuda").fit(histories)
    scores = model.score(histories)
    assert scores.device.type == "cuda" and scores.dtype == torch.float32
    assert model.recommend(histories, k=5, exclude_seen=True).shape == (40, 5)


def test_validation_watches_a_fixed_sample_or_every_member() -> None:
    sample = validation_rows(5000, 1000, seed=3, name="gru4rec")
    assert len(sample) == 1000 and np.array_equal(sample, np.unique(sample))
    assert np.array_equal(sample, validation_rows(5000, 1000, seed=3, name="gru4rec"))
    assert np.array_equal(validation_rows(5000, 0, seed=3, name="gru4rec"), np.arange(5000))
    assert np.array_equal(validation_rows(800, 1000, seed=3, name="gru4rec"), np.arange(800))
    assert GRU4RecConfig().validation_users == 0  # every member: see GRU4RecConfig
    with pytest.raises(ConfigError, match="validation_users"):
        GRU4RecConfig(validation_users=-1)


def _index_backward() -> torch.Tensor:
    """The gradient of x[rows] for 200k rows of a (500, 64) x: an accumulating index_put_,
    which torch runs on both threads (NCF's loss gathers user vectors this way)."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(500, 64, generator=g, requires_grad=True)
    rows = torch.randint(0, 500, (200_000,), generator=g)
    x[rows].backward(torch.randn(200_000, 64, generator=g))
    assert x.grad is not None
    return x.grad


def test_training_kernels_are_deterministic_on_two_cpu_threads() -> None:
    threads = torch.get_num_threads()
    torch.set_num_threads(2)
    try:
        with deterministic_kernels(torch.device("cpu")):
            assert torch.are_deterministic_algorithms_enabled()
            first = _index_backward()
            assert all(torch.equal(first, _index_backward()) for _ in range(4))
        assert not torch.are_deterministic_algorithms_enabled()  # put back as it was
        with deterministic_kernels(torch.device("cuda")):  # not there: cuBLAS needs more
            assert not torch.are_deterministic_algorithms_enabled()
    finally:
        torch.set_num_threads(threads)
