"""A recommender restricted to the items its training data holds.

Items that never occur in a side's member histories have untrained parameters (an LFM or NCF
embedding at its random initialisation, a sequential model's input and output rows): ranking
them adds noise to the lists and costs time in proportion to the catalogue, which on Amazon
Digital Music (about 1.3 interactions per item) is several times the items any side trains on.
`KnownItems` wraps any recommender: it fits the model on a compact catalogue of the training
data's items, conditions it on the known items of any history (members' and non-members'
alike), and maps the lists back to dataset-wide item ids.
"""

from __future__ import annotations

from typing import Self

import numpy as np
import torch

from dlmia.data.histories import Histories, IntArray
from dlmia.errors import ConfigError
from dlmia.recommenders.base import Recommender


class KnownItems(Recommender):
    """`model`, fitted and queried over the items of its training data only (`model` keeps
    the fitted state: its log, best epoch, network)."""

    name = "known-items"

    def __init__(self, model: Recommender) -> None:
        self.model = model
        self.config, self.device, self.seed = model.config, model.device, model.seed
        self.n_items: int | None = None
        self.catalogue: IntArray = np.empty(0, dtype=np.int64)  # compact id -> dataset id
        self.index: IntArray = np.empty(0, dtype=np.int64)  # dataset id -> compact id or -1

    def fit(self, histories: Histories) -> Self:
        """Fit the model on `histories` (member histories, held-out items included) over the
        items they hold."""
        self.model.fit(self.adopt(histories))
        return self

    def adopt(self, histories: Histories) -> Histories:
        """Take the items of `histories` as the catalogue; `histories` over it, for the model to
        fit on (`fit`, or a batched fit of many models, `Recommender.fit_many`)."""
        self.n_items = histories.n_items
        self.catalogue = np.unique(histories.items)
        self.index = np.full(histories.n_items, -1, dtype=np.int64)
        self.index[self.catalogue] = np.arange(len(self.catalogue))
        return self.compact(histories)

    def compact(self, histories: Histories) -> Histories:
        """`histories` over the compact catalogue: items outside it are left out (the model
        knows nothing of them), the order of the rest kept."""
        ids = self.index[histories.items]
        known = ids >= 0
        lengths = np.bincount(histories.row_of_entries()[known], minlength=histories.n_users)
        indptr = np.concatenate([[0], np.cumsum(lengths)]).astype(np.int64)
        times = None if histories.times is None else histories.times[known]
        return Histories(indptr, ids[known], len(self.catalogue), histories.users, times)

    def training_prefix(self, histories: Histories) -> Histories:
        return self.model.training_prefix(histories)

    def score(self, histories: Histories) -> torch.Tensor:
        """(n_users, n_items) scores over the whole catalogue: -inf for an item the model never
        trained on."""
        inner = self.model.score(self.compact(histories))  # (B, n_known)
        full = torch.full((histories.n_users, self._n_items()), -torch.inf, device=inner.device)
        full[:, torch.from_numpy(self.catalogue).to(inner.device)] = inner.float()
        return full

    @torch.no_grad()
    def recommend(
        self,
        histories: Histories,
        k: int,
        exclude_seen: bool = False,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """(n_users, k) ranked dataset-wide item ids, among the items the model trained on."""
        self._n_items()
        if k > len(self.catalogue):
            raise ConfigError(
                f"k={k} is larger than the {len(self.catalogue)} items {self.model.name} "
                "trained on; use a smaller k or more data"
            )
        lists = self.model.recommend(self.compact(histories), k, exclude_seen, batch_size)
        return torch.from_numpy(self.catalogue)[lists]

    def _n_items(self) -> int:
        if self.n_items is None:
            raise RuntimeError(f"{self.model.name}: used before fit()")
        return self.n_items
