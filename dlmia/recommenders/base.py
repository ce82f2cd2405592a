"""The one interface every recommender implements.

Lifecycle: construct with a settings dataclass, a device and a seed; call `fit` once on the
member histories of a side; then call `recommend` (or `score`) on any histories, members and
non-members alike, as often as needed. Each model owns its training loop: there is no shared
trainer, so ItemCF needs no fake loss and neural models need no special casing.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Any, ClassVar, Self

import torch

from dlmia.data.histories import Histories
from dlmia.device import resolve_device
from dlmia.errors import ConfigError

SCORE_BUDGET = 64 * 2**20  # floats in one batch of scores (256 MiB in float32)


class Recommender(ABC):
    """A top-k recommender over a fixed catalogue of `n_items` items.

    Subclasses set `name`, `Config` (a frozen settings dataclass) and `holds_out_last`, and
    implement `fit` and `score`. `recommend` is shared: it scores users in batches on the
    model's device and takes the top k.

    Note:
        `holds_out_last` models train on each member's history minus its last item (kept for
        early stopping); the adversary then sees that same prefix for members and non-members
        (method.md section 2). `training_prefix` applies the rule.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    holds_out_last: ClassVar[bool] = False

    def __init__(self, config: Any = None, *, device: str = "auto", seed: int = 0) -> None:
        self.config = config if config is not None else self.Config()
        self.device = resolve_device(device)
        self.seed = seed
        self.n_items: int | None = None

    def training_prefix(self, histories: Histories) -> Histories:
        """The part of each history this model trains on and the adversary sees."""
        return histories.drop_last(1) if self.holds_out_last else histories

    @abstractmethod
    def fit(self, histories: Histories) -> Self:
        """Train on member histories (full sequences; the model applies `training_prefix`)."""

    @classmethod
    def fit_many(cls, models: Sequence[Recommender], histories: Sequence[Histories]) -> None:
        """Fit each of `models` (instances of `cls` with one config and device, seeds of their
        own) on its own `histories`, as `fit` would one by one. A model that can train many at
        once (a reference pool, `dlmia.pools`) overrides this; the default fits them in turn."""
        for model, train in zip(models, histories, strict=True):
            model.fit(train)

    @abstractmethod
    def score(self, histories: Histories) -> torch.Tensor:
        """(n_users, n_items) float scores on `self.device`, higher = recommend first.

        `histories` are what the model conditions on (already prefixes); called in batches.
        """

    @torch.no_grad()
    def recommend(
        self,
        histories: Histories,
        k: int,
        exclude_seen: bool = False,
        batch_size: int | None = None,
    ) -> torch.Tensor:
        """(n_users, k) LongTensor on the CPU of ranked item ids for every row of `histories`.

        Args:
            histories: the users' visible histories (see `training_prefix`).
            k: list length; must not exceed the catalogue.
            exclude_seen: drop items already in the user's history from the list.
            batch_size: users scored per tensor operation; default: as many as keep one
                (batch, n_items) score matrix near 64M floats, at most 1024.
        """
        if self.n_items is None:
            raise RuntimeError(f"{self.name}: recommend() called before fit()")
        if k > self.n_items:
            raise ConfigError(f"k={k} is larger than the catalogue ({self.n_items} items)")
        batch_size = batch_size or max(1, min(1024, SCORE_BUDGET // self.n_items))
        lists = []
        for start in range(0, histories.n_users, batch_size):
            batch = histories.rows(range(start, min(start + batch_size, histories.n_users)))
            scores = self.score(batch).float()  # (B, n_items)
            if exclude_seen:
                rows = torch.from_numpy(batch.row_of_entries()).to(scores.device)
                cols = torch.from_numpy(batch.items).to(scores.device)
                scores[rows, cols] = float("-inf")
            lists.append(torch.topk(scores, k, dim=1).indices.cpu())
        if not lists:
            return torch.empty((0, k), dtype=torch.long)
        return torch.cat(lists)
