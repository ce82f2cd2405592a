"""Popularity: every user gets the items with the most interactions in the training histories.

The floor every personalised recommender must beat, and the list the paper's system serves to
users it does not know (method.md section 1; that list is built in `dlmia.nonmember`).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Self

import numpy as np
import torch

from dlmia.data.histories import Histories
from dlmia.recommenders.base import Recommender


@dataclass(frozen=True)
class PopularityConfig:
    """Popularity has no settings."""


class Popularity(Recommender):
    """Scores are the items' interaction counts over the training histories (same for everyone)."""

    name = "popularity"
    Config = PopularityConfig

    def fit(self, histories: Histories) -> Self:
        counts = np.bincount(histories.items, minlength=histories.n_items)  # (n_items,)
        self.counts = torch.from_numpy(counts).float().to(self.device)
        self.n_items = histories.n_items
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        return self.counts.repeat(histories.n_users, 1)  # (B, n_items), writable copy
