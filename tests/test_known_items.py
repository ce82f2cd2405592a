"""KnownItems: a side's recommender ranks only the items its training data holds, and its lists
come back in dataset-wide item ids."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dlmia.data.histories import Histories
from dlmia.errors import ConfigError
from dlmia.recommenders import make_recommender
from dlmia.recommenders.known import KnownItems

TRAIN = Histories.from_lists([[2, 5, 7], [5, 7], [2, 7, 5], [7, 2]], n_items=12)


@pytest.mark.parametrize("name", ["popularity", "itemcf", "lfm", "gru4rec"])
def test_lists_hold_only_items_of_the_training_data(name: str) -> None:
    settings = {"epochs": 2} if name in ("lfm", "gru4rec") else {}
    model = KnownItems(make_recommender(name, settings, device="cpu")).fit(TRAIN)
    assert model.catalogue.tolist() == [2, 5, 7]
    others = Histories.from_lists([[9, 2], [11], []], n_items=12)  # unknown items, an empty one
    lists = model.recommend(others, 3)
    assert lists.shape == (3, 3) and set(lists.flatten().tolist()) == {2, 5, 7}
    scores = model.score(others)
    assert scores.shape == (3, 12) and torch.isinf(scores[:, [0, 9, 11]]).all()


def test_compact_keeps_the_known_items_in_order() -> None:
    model = KnownItems(make_recommender("popularity")).fit(TRAIN)
    compact = model.compact(Histories.from_lists([[9, 7, 3, 2], [11]], n_items=12))
    assert compact.n_items == 3 and compact.sequence(0).tolist() == [2, 0]  # 7 -> 2, 2 -> 0
    assert compact.sequence(1).tolist() == []


def test_with_every_item_known_the_lists_are_the_models() -> None:
    rng = np.random.default_rng(0)
    full = Histories.from_lists([list(rng.choice(30, 8, replace=False)) for _ in range(40)], 30)
    assert len(np.unique(full.items)) == 30
    plain = make_recommender("itemcf").fit(full).recommend(full, 10)
    known = KnownItems(make_recommender("itemcf")).fit(full).recommend(full, 10)
    assert torch.equal(plain, known)


def test_k_above_the_known_items_is_refused() -> None:
    model = KnownItems(make_recommender("popularity")).fit(TRAIN)
    with pytest.raises(ConfigError, match="k=4 is larger than the 3 items popularity trained on"):
        model.recommend(TRAIN, 4)
