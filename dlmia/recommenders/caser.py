"""Caser: horizontal and vertical convolutions over the last L items, plus a user representation.

Tang and Wang, "Personalized Top-N Sequential Recommendation via Convolutional Sequence
Embedding" (WSDM 2018), following `caser_pytorch/caser.py`: the L x d embedding matrix of the last
L items goes through `n_v` vertical filters (L x 1) and `n_h` horizontal filters of each height
1..L (ReLU, max-pooled over time), a dropout and a dense layer (ReLU) give z; scores are
`W2 [z; p_u] + b2`.

Note:
    * The user embedding `p_u` of the paper is a free parameter per training user, which cannot
      serve a user outside the training set (non-members). Here `p_u` is a function of the
      history instead: the mean of a second item embedding table over the user's visible items
      (the last `max_len`; at training time, the items before the predicted position), in the
      manner of FISM. Members and non-members are thus treated alike.
    * Training is sequence-to-sequence: one pass over a window computes the convolution features
      at every position (the same numbers as the paper's per-position examples) and learns every
      next item with a cross-entropy over the catalogue (the reference: 3 targets, 3 sampled
      negatives, binary cross-entropy).
    * The reference exported item `x + 1` for score column `x` (an off-by-one): not copied.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from dlmia.config import MAX_WIDTH, check_domain
from dlmia.data.histories import Histories
from dlmia.recommenders.sequential import NextItemRecommender, SequenceNet, SequentialConfig


@dataclass(frozen=True)
class CaserConfig(SequentialConfig):
    """Caser settings (reference: L 5, d 50, n_v 4, n_h 16, dropout 0.5, Adam 1e-3, l2 1e-6)."""

    embedding_dim: int = 64  # d: item embedding size (the user representation has the same)
    window: int = 5  # L: the convolutions see this many most recent items
    n_v: int = 4  # vertical filters
    n_h: int = 16  # horizontal filters of each height 1..L
    dropout: float = 0.3  # before the dense layer
    max_len: int = 100  # items the user representation averages over
    stride: int = 50  # training windows start this many items apart
    n_sampled: int = 1024  # sampled softmax (full softmax: 0; ~1.7x slower per CPU epoch)
    weight_decay: float = 1e-6  # Adam L2 weight
    batch_size: int = 32  # windows per step
    lr: float = 3e-3  # Adam learning rate

    def __post_init__(self) -> None:
        super().__post_init__()
        sizes = ("embedding_dim", "window", "n_v", "n_h")
        check_domain(self, positive=sizes, at_most=dict.fromkeys(sizes, MAX_WIDTH))


class CaserNet(SequenceNet):
    """Caser over every position of a right-aligned window (pads lead, embed to zero)."""

    def __init__(self, n_items: int, cfg: CaserConfig) -> None:
        super().__init__()
        d, L = cfg.embedding_dim, cfg.window
        self.L, self.pad = L, n_items
        self.items = nn.Embedding(n_items + 1, d, padding_idx=n_items)
        self.user_items = nn.Embedding(n_items + 1, d, padding_idx=n_items)  # p_u = mean of these
        self.vertical = nn.Conv1d(1, cfg.n_v, L)  # over time, shared by the d embedding dims
        self.horizontal = nn.ModuleList(nn.Conv1d(d, cfg.n_h, h) for h in range(1, L + 1))
        self.dense = nn.Linear(cfg.n_v * d + cfg.n_h * L, d)
        self.dropout = nn.Dropout(cfg.dropout)
        self.output = nn.Embedding(n_items, 2 * d)  # W2
        self.bias = nn.Parameter(torch.zeros(n_items))  # b2
        nn.init.normal_(self.output.weight, std=1.0 / (2 * d))

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, T) item ids -> (B, T, 2d): [z; p_u] after each position, from the items up to it."""
        B, T = sequences.shape
        e = self.items(sequences)  # (B, T, d)
        d = e.shape[-1]
        x = F.pad(e.transpose(1, 2), (self.L - 1, 0))  # (B, d, T + L - 1): zeros before the start
        vertical = self.vertical(x.reshape(B * d, 1, -1))  # (B * d, n_v, T)
        vertical = vertical.reshape(B, d, -1, T).permute(0, 3, 2, 1)  # (B, T, n_v, d)
        vertical = vertical.reshape(B, T, -1)  # (B, T, n_v * d)
        horizontal = [
            F.max_pool1d(F.relu(conv(x)), self.L - h, stride=1)  # (B, n_h, T): best (h+1)-gram
            for h, conv in enumerate(self.horizontal)
        ]
        features = torch.cat([vertical, torch.cat(horizontal, 1).transpose(1, 2)], 2)  # (B, T, F)
        z = F.relu(self.dense(self.dropout(features)))  # (B, T, d)
        seen = (sequences != self.pad).cumsum(1).clamp(min=1)  # (B, T) items so far
        user = self.user_items(sequences).cumsum(1) / seen[..., None]  # (B, T, d), causal mean
        return torch.cat([z, user], 2)  # (B, T, 2d)

    @property
    def output_weight(self) -> torch.Tensor:
        return self.output.weight  # (n_items, 2d)


class Caser(NextItemRecommender):
    """Caser with a history-derived user representation (see the module note)."""

    name = "caser"
    Config = CaserConfig
    config: CaserConfig
    left_aligned = False  # pads lead and embed to zero, as the reference pads

    def build(self, train: Histories) -> nn.Module:
        return CaserNet(train.n_items, self.config)
