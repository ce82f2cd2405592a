"""LFM: latent factor model (implicit matrix factorisation with sampled negatives).

Follows the general-family LFM of the DL-MIA code (`DL-MIA-RS/Recommender/lfm_recommendations.py`,
reference-implementation.md section 4.3): label 1 for each member interaction, label 0 for
sampled items, squared loss, L2 0.01, SGD, 100 factors, lists from `P Q^T`. The learning rate,
epochs, negatives and initial scale are tuned so that it recommends well on ML-1M (the reference's
lr 0.01 / 20 epochs / stop-when-error-small underfits); the trainer is `dlmia.factorization`.

Users seen in `fit` (matched by `Histories.users`) are scored with their trained factors. Any other
user is folded in: their factors are the ridge solution that minimises the same expected
per-sample loss with the item factors fixed, so the `model` non-member policy gets the list the
trained system would give a new user with that history.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Self

import numpy as np
import torch

from dlmia.config import MAX_DEPTH, MAX_WIDTH, check_domain
from dlmia.data.histories import Histories
from dlmia.factorization import MFModel, MFSettings, train_mf, train_mf_many
from dlmia.recommenders.base import Recommender
from dlmia.seeding import torch_generator

# Padded history entries times factors computed at once when folding users in.
_FOLD_IN_BUDGET = 1 << 24


@dataclass(frozen=True)
class LFMConfig:
    """Settings of LFM."""

    factors: int = 100  # latent dimension
    epochs: int = 10  # passes over the member interactions, fresh negatives each time
    lr: float = 0.05  # SGD step (per sample; updates are summed over a batch)
    lr_decay: float = 0.95  # step multiplier after each epoch
    l2: float = 0.01  # L2 weight per sample on both factor rows
    negatives: int = 2  # sampled label-0 items per interaction
    init_scale: float = 0.1  # standard deviation of the normal initial factors
    batch_size: int = 2048  # samples per SGD step

    def __post_init__(self) -> None:
        check_domain(self, positive=("factors", "epochs", "lr", "lr_decay", "init_scale",
                                     "batch_size"),
                     non_negative=("l2", "negatives"),
                     at_most={"factors": MAX_WIDTH, "negatives": MAX_DEPTH})


class LFM(Recommender):
    """Implicit MF; `user_factors` (members) and `item_factors` are set by `fit`."""

    name = "lfm"
    Config = LFMConfig

    def fit(self, histories: Histories) -> Self:
        generator = torch_generator(self.seed, "lfm", device=self.device)
        return self.adopt(histories, train_mf(histories, self.settings(), generator=generator))

    @classmethod
    def fit_many(cls, models: Sequence[Recommender], histories: Sequence[Histories]) -> None:
        """Train the models side by side on stacked factor tables (`train_mf_many`): each the
        model its own `fit` gives."""
        lfms = [model for model in models if isinstance(model, LFM)]
        if len(lfms) != len(models) or len({(m.config, m.device) for m in lfms}) > 1:
            raise ValueError("LFM.fit_many: LFMs of one config and device expected")
        if not lfms:
            return
        generators = [torch_generator(m.seed, "lfm", device=m.device) for m in lfms]
        trained = train_mf_many(histories, lfms[0].settings(), generators=generators)
        for model, train, factors in zip(lfms, histories, trained, strict=True):
            model.adopt(train, factors)

    def settings(self) -> MFSettings:
        """The trainer's settings for this model's config."""
        c = self.config
        return MFSettings(
            factors=c.factors, epochs=c.epochs, lr=c.lr, lr_decay=c.lr_decay, l2=c.l2,
            negatives=c.negatives, init="normal", init_scale=c.init_scale,
            batch_size=c.batch_size, average_repeats=False,
        )  # fmt: skip

    def adopt(self, histories: Histories, model: MFModel) -> Self:
        """Serve from `model`, the factors trained on `histories`."""
        # Items no member has are never trained: score them 0, below every learnt positive.
        self.item_factors = model.item_factors * model.trained_items.unsqueeze(1)  # (n_items, F)
        self.user_factors = model.user_factors  # (n_members, F)
        order = np.argsort(histories.users, kind="stable")
        self._known_users, self._known_rows = histories.users[order], order
        trained = self.item_factors[model.trained_items]  # (n_trained, F)
        self._negative_gram = trained.T @ trained / len(trained)  # (F, F) E[q q^T] of a negative
        self.n_items = histories.n_items
        return self

    def score(self, histories: Histories) -> torch.Tensor:
        factors = torch.empty(histories.n_users, self.config.factors, device=self.device)  # (B, F)
        known_users = self._known_users
        pos = np.searchsorted(known_users, histories.users).clip(max=len(known_users) - 1)
        known = known_users[pos] == histories.users  # (B,)
        rows = torch.from_numpy(self._known_rows[pos[known]]).to(self.device)
        factors[torch.from_numpy(known).to(self.device)] = self.user_factors[rows]
        if not known.all():
            unknown = np.flatnonzero(~known)
            new_users = self.fold_in(histories.rows(unknown))  # (n_unknown, F)
            factors[torch.from_numpy(unknown).to(self.device)] = new_users
        return factors @ self.item_factors.T  # (B, n_items)

    def fold_in(self, histories: Histories) -> torch.Tensor:
        """(n_users, F) factors of new users, the item factors held fixed.

        Minimises the expected training loss of one user: sum over their items of (1 - p.q_i)^2,
        `negatives` sampled items each of (p.q_j)^2, and l2 |p|^2 per sample, i.e. solves
        (mean_i q_i q_i^T + m E[q q^T] + (1 + m) l2 I) p = mean_i q_i. Empty histories get 0.
        """
        c = self.config
        padded_factors = torch.cat([self.item_factors, self.item_factors.new_zeros(1, c.factors)])
        base = c.negatives * self._negative_gram + (1 + c.negatives) * c.l2 * torch.eye(
            c.factors, device=self.device
        )  # (F, F)
        lengths = torch.from_numpy(histories.lengths).to(self.device).clamp_min(1).float()  # (U,)
        out = torch.zeros(histories.n_users, c.factors, device=self.device)
        for rows in _length_chunks(histories.lengths, _FOLD_IN_BUDGET // c.factors):
            part = histories.rows(rows)
            width = int(part.lengths.max(initial=1))
            seq = part.padded(width, pad=len(self.item_factors)).to(self.device)  # (b, L)
            q = padded_factors[seq]  # (b, L, F), zero rows at padding
            at = torch.from_numpy(rows).to(self.device)
            n = lengths[at].view(-1, 1, 1)  # (b, 1, 1)
            gram = q.transpose(1, 2) @ q / n + base  # (b, F, F)
            mean = q.sum(1, keepdim=True).transpose(1, 2) / n  # (b, F, 1)
            out[at] = torch.linalg.solve(gram, mean).squeeze(2)  # (b, F)
        return out


def _length_chunks(lengths: np.ndarray, budget: int) -> list[np.ndarray]:
    """Row indices in chunks of similar history length (lengths rounded up to a power of two),
    each at most `budget` padded entries: ML-1M's longest history is ~14x its mean, and padding
    every chunk to the longest of all cost most of a fold-in."""
    widths = 2 ** np.ceil(np.log2(np.maximum(lengths, 1))).astype(np.int64)  # (U,)
    chunks: list[np.ndarray] = []
    for width in np.unique(widths):
        rows = np.flatnonzero(widths == width)
        size = max(1, budget // int(width))
        chunks.extend(rows[i : i + size] for i in range(0, len(rows), size))
    return chunks
