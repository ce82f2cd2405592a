"""NCF (NeuMF): a GMF and an MLP tower over user and item embeddings, fused by one output layer.

He et al., "Neural Collaborative Filtering" (WWW 2017), following `neural_cf` (NeuMF): the GMF
tower takes the element-wise product of user and item vectors, the MLP tower their concatenation;
the two last layers are concatenated into a logit, trained with binary cross-entropy on each
observed (user, item) pair and `negatives` uniformly sampled unobserved items. Scores rank the
whole catalogue (the reference ranked 1 held-out item against 1,999 sampled ones).

Note:
    A free user embedding (the paper's) cannot serve users outside training, and the attack needs
    lists for non-members too. So the user vector is *folded in* from the history, as in FISM
    (Kabbur et al., KDD 2013): the mean of a learnt "history" embedding over the user's items.
    When the scored item is itself in the history it is left out of that mean (FISM's rule; else
    the model would learn to echo the history). Members and non-members are treated alike.
    GMF and MLP are trained jointly by Adam from scratch, not pre-trained separately.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlmia.config import MAX_DEPTH, MAX_WIDTH, check_domain
from dlmia.data.histories import Histories
from dlmia.recommenders import ncf_stack
from dlmia.recommenders.base import Recommender
from dlmia.recommenders.neural import (
    NeuralConfig,
    NeuralRecommender,
    minibatches,
)

SCORE_BLOCK = (1 << 18, 1 << 24)  # (user, item) pairs x first MLP width per block: CPU, CUDA


@dataclass(frozen=True)
class NCFConfig(NeuralConfig):
    """NeuMF settings (reference: 32 factors, MLP [128, 64, 32], 4 negatives, batch 1024 pairs)."""

    gmf_dim: int = 32  # GMF factors
    mlp_dim: int = 32  # MLP embedding size per side (the MLP input is twice this)
    layers: tuple[int, ...] = (32, 16, 8)  # MLP tower widths (the paper's tower for 8 factors)
    negatives: int = 4  # sampled unobserved items per observed pair
    dropout: float = 0.0  # after each MLP layer
    batch_size: int = 4  # users per step, with all their pairs (~800 pairs on ML-1M)
    lr: float = 5e-3  # Adam learning rate
    patience: int = 10  # NCF's validation curve on a few hundred users is noisy early on
    validation_users: int = 500  # ranking a user is an MLP pass over the catalogue: half the cap

    def __post_init__(self) -> None:
        super().__post_init__()
        sizes = ("gmf_dim", "mlp_dim", "layers")
        check_domain(self, positive=(*sizes, "negatives"), fractions=("dropout",),
                     at_most={**dict.fromkeys(sizes, MAX_WIDTH), "negatives": MAX_DEPTH})


class NeuMFNet(nn.Module):
    """GMF + MLP towers; user vectors are given (folded in from histories), item vectors learnt."""

    def __init__(self, n_items: int, cfg: NCFConfig) -> None:
        super().__init__()
        self.gmf_dim = cfg.gmf_dim
        width = cfg.gmf_dim + cfg.mlp_dim
        self.items = nn.Embedding(n_items, width)  # [GMF | MLP] item vectors
        self.history = nn.Embedding(n_items, width)  # a user vector is the mean of these
        for table in (self.items, self.history):
            nn.init.normal_(table.weight, std=0.01)
        self.user_in = nn.Linear(cfg.mlp_dim, cfg.layers[0])  # first MLP layer, user half
        self.item_in = nn.Linear(cfg.mlp_dim, cfg.layers[0], bias=False)  # ... and item half
        tower: list[nn.Module] = []
        for wide, narrow in zip(cfg.layers, cfg.layers[1:]):
            tower += [nn.ReLU(), nn.Dropout(cfg.dropout), nn.Linear(wide, narrow)]
        self.tower = nn.Sequential(*tower, nn.ReLU(), nn.Dropout(cfg.dropout))
        self.head = nn.Linear(cfg.gmf_dim + cfg.layers[-1], 1)

    def user_vectors(self, histories: Histories) -> tuple[torch.Tensor, torch.Tensor]:
        """Sums of history vectors and item counts of each row: (B, width) and (B, 1)."""
        device = self.items.weight.device
        items = torch.from_numpy(histories.items).to(device)
        offsets = torch.from_numpy(histories.indptr[:-1]).to(device)
        sums = F.embedding_bag(items, self.history.weight, offsets, mode="sum")  # (B, width)
        counts = torch.from_numpy(histories.lengths).to(device, sums.dtype)[:, None]  # (B, 1)
        return sums, counts

    def pairs(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        """(N,) logits of user vectors (N, width) with items (N,)."""
        q = self.items(items)  # (N, width)
        g = self.gmf_dim
        mlp = self.tower(self.user_in(users[:, g:]) + self.item_in(q[:, g:]))  # (N, last)
        return self.head(torch.cat([users[:, :g] * q[:, :g], mlp], 1))[:, 0]

    def catalogue(self, users: torch.Tensor) -> torch.Tensor:
        """(B, n_items) logits of user vectors (B, width) against every item.

        The MLP tower runs over blocks of (user, item) pairs: cache-sized on the CPU, where one
        pass over a (users x catalogue x width) tensor was memory-bound (2x slower), large on a
        GPU."""
        g, q = self.gmf_dim, self.items.weight
        w_gmf, w_mlp = self.head.weight[0, :g], self.head.weight[0, g:]
        gmf = users[:, :g] @ (q[:, :g] * w_gmf).T  # (B, n_items)
        user_part, item_part = self.user_in(users[:, g:]), self.item_in(q[:, g:])  # (., first)
        block = max(1, SCORE_BLOCK[q.device.type == "cuda"] // item_part.shape[1])  # pairs
        n_items, mlp = len(item_part), torch.empty_like(gmf)
        n_users = max(1, block // n_items)  # whole rows of users when the catalogue is small
        for i in range(0, len(users), n_users):
            for j in range(0, n_items, block):
                pairs = user_part[i : i + n_users, None] + item_part[None, j : j + block]
                mlp[i : i + n_users, j : j + block] = self.tower(pairs) @ w_mlp
        return gmf + mlp + self.head.bias


PairBatch = tuple[Histories, tuple[torch.Tensor, torch.Tensor]]  # users, (negative rows, items)


class NCF(NeuralRecommender[Histories, PairBatch]):
    """NeuMF with history-folded user vectors (see the module note)."""

    name = "ncf"
    Config = NCFConfig
    config: NCFConfig
    net: NeuMFNet

    @classmethod
    def fit_many(cls, models: Sequence[Recommender], histories: Sequence[Histories]) -> None:
        """Train the models at once on stacked parameters where that pays (CUDA; `ncf_stack`:
        each model's own initialisation, minibatches and early stopping, not bit-identical
        weights); on a CPU, with dropout, or with bfloat16 autocast, one by one (dropout's
        randomness and autocast's rounding are not the stacked step's)."""
        ncfs = [model for model in models if isinstance(model, NCF)]
        if len(ncfs) != len(models) or len({(m.config, m.device) for m in ncfs}) > 1:
            raise ValueError("NCF.fit_many: NCFs of one config and device expected")
        if not ncfs:
            return
        first = ncfs[0]
        if (not ncf_stack.stacking_pays(first.device) or first.config.dropout > 0
                or (first.config.amp and first.device.type == "cuda")):  # fmt: skip
            super().fit_many(models, histories)
            return
        ncf_stack.train_stacked(ncfs, histories)

    def build(self, train: Histories) -> nn.Module:
        return NeuMFNet(train.n_items, self.config)

    def prepare(self, train: Histories) -> Histories:
        return train

    def batches(self, data: Histories, generator: torch.Generator) -> Iterator[PairBatch]:
        for index in minibatches(data.n_users, self.config.batch_size, generator):
            batch = data.rows(np.sort(index.numpy()))
            if len(batch.items):
                yield batch, self._negatives(batch, generator)

    def _negatives(
        self, batch: Histories, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Rows (N * negatives,) and uniformly drawn items outside each row's history."""
        rows = torch.from_numpy(batch.row_of_entries()).repeat_interleave(self.config.negatives)
        seen = torch.from_numpy(np.unique(batch.row_of_entries() * batch.n_items + batch.items))
        items = torch.randint(batch.n_items, rows.shape, generator=generator)
        for _ in range(3):  # redraw the (few) items the user has; a rare leftover stays negative
            hit = torch.isin(rows * batch.n_items + items, seen)
            if not hit.any():
                break
            items[hit] = torch.randint(batch.n_items, (int(hit.sum()),), generator=generator)
        return rows.to(self.device), items.to(self.device)

    def loss(self, batch: PairBatch, generator: torch.Generator) -> torch.Tensor:
        histories, (neg_rows, neg_items) = batch
        sums, counts = self.net.user_vectors(histories)
        rows = torch.from_numpy(histories.row_of_entries()).to(self.device)
        items = torch.from_numpy(histories.items).to(self.device)
        positive = self.net.pairs(self._leave_out(sums, counts, rows, items), items)  # (N,)
        negative = self.net.pairs(sums[neg_rows] / counts[neg_rows].clamp(min=1), neg_items)
        logits = torch.cat([positive, negative])
        labels = torch.cat([torch.ones_like(positive), torch.zeros_like(negative)])
        return F.binary_cross_entropy_with_logits(logits.float(), labels.float())

    def _leave_out(
        self, sums: torch.Tensor, counts: torch.Tensor, rows: torch.Tensor, items: torch.Tensor
    ) -> torch.Tensor:
        """(N, width) user vectors of rows `rows`, their own item `items` left out of the mean."""
        return (sums[rows] - self.net.history(items)) / (counts[rows] - 1).clamp(min=1)

    def predict(self, histories: Histories) -> torch.Tensor:
        sums, counts = self.net.user_vectors(histories)
        scores = self.net.catalogue(sums / counts.clamp(min=1))  # (B, n_items)
        rows = torch.from_numpy(histories.row_of_entries()).to(self.device)
        items = torch.from_numpy(histories.items).to(self.device)
        own = self.net.pairs(self._leave_out(sums, counts, rows, items), items)  # (nnz,)
        scores[rows, items] = own.to(scores.dtype)  # a history item is scored as if held out
        return scores
