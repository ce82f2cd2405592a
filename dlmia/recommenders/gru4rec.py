"""GRU4Rec: a GRU over the user's item sequence predicts the next item.

Hidasi et al., "Session-based Recommendations with Recurrent Neural Networks" (ICLR 2016), in the
form RecBole's `gru4rec.py` uses for next-item prediction: item embedding, GRU, a projection back
to the embedding space, scores = dot product with the (tied) item embeddings. Training is
sequence-to-sequence over windows of each member's training prefix: every position predicts the
next item with a cross-entropy over the whole catalogue (or a sampled softmax).

Note:
    The reference (`GRU4REC-pytorch`) trained session-parallel with TOP1-max and, when exporting
    lists, never reset the hidden state between users. Here every window and every scored user
    starts from a zero state: sequences are independent rows.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from dlmia.config import MAX_DEPTH, MAX_WIDTH, check_domain
from dlmia.data.histories import Histories
from dlmia.recommenders.sequential import NextItemRecommender, SequenceNet, SequentialConfig


@dataclass(frozen=True)
class GRU4RecConfig(SequentialConfig):
    """GRU4Rec settings (reference: hidden 100, 3 layers, dropout 0.5, Adagrad; tuned here)."""

    embedding_dim: int = 64  # item embedding size (input and output, tied)
    hidden_dim: int = 64  # GRU state size
    layers: int = 1  # stacked GRU layers
    stride: int = 40  # windows of a long training sequence start this many items apart
    n_sampled: int = 1024  # sampled softmax (full softmax: 0; ~1.8x slower per CPU epoch)
    batch_size: int = 32  # windows per step
    lr: float = 5e-3  # Adam learning rate
    # Early stopping watches every member: on Amazon Beauty a 1,000-user sample's NDCG@10 ended
    # training after 5-9 epochs of a curve still rising at 30 (HR@10 0.022-0.027 against
    # 0.030-0.034), and the Biased cell swung with it (bench/side_cells.py).
    validation_users: int = 0

    def __post_init__(self) -> None:
        super().__post_init__()
        check_domain(self, positive=("embedding_dim", "hidden_dim", "layers"),
                     at_most={"embedding_dim": MAX_WIDTH, "hidden_dim": MAX_WIDTH,
                              "layers": MAX_DEPTH})


class GRU4RecNet(SequenceNet):
    """Embedding -> GRU -> projection; logits against the tied item embeddings."""

    def __init__(self, n_items: int, cfg: GRU4RecConfig) -> None:
        super().__init__()
        self.items = nn.Embedding(n_items + 1, cfg.embedding_dim, padding_idx=n_items)  # pad last
        self.gru = nn.GRU(
            cfg.embedding_dim,
            cfg.hidden_dim,
            cfg.layers,
            batch_first=True,
            dropout=cfg.dropout if cfg.layers > 1 else 0.0,
        )
        self.dropout = nn.Dropout(cfg.dropout)
        self.project = nn.Linear(cfg.hidden_dim, cfg.embedding_dim)
        self.bias = nn.Parameter(torch.zeros(n_items))

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, L) left-aligned item ids -> (B, L, embedding_dim) output after each position."""
        states, _ = self.gru(self.dropout(self.items(sequences)))  # (B, L, hidden), from zero
        return self.project(self.dropout(states))  # (B, L, d)

    @property
    def output_weight(self) -> torch.Tensor:
        return self.items.weight[:-1]  # (n_items, d), the pad row left out


class GRU4Rec(NextItemRecommender):
    """GRU4Rec with early stopping on the held-out last items (see `NeuralRecommender`)."""

    name = "gru4rec"
    Config = GRU4RecConfig
    config: GRU4RecConfig
    left_aligned = True  # the GRU state runs from the first item; pads trail

    def build(self, train: Histories) -> nn.Module:
        return GRU4RecNet(train.n_items, self.config)
