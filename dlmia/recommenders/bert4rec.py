"""BERT4Rec: a bidirectional transformer trained to fill in masked items.

Sun et al., "BERT4Rec: Sequential Recommendation with Bidirectional Encoder Representations from
Transformer" (CIKM 2019), as in the reference `BERT4Rec-Pytorch`: item + learnt position
embeddings, a `nn.TransformerEncoder` (GELU, padding mask), an output layer (dense, GELU,
LayerNorm) scored against the tied item embeddings plus a bias. Training masks a random
`mask_prob` of the items of each window (at least one), or, in a `mask_last_prob` share of the
windows, only the last item (the paper's extra samples for the next-item task, its section 3.6),
and learns them with a cross-entropy over the catalogue. A user is scored by appending a mask
token after the last `max_len - 1` items of the history and reading the prediction there.

Note:
    The reference exported lists from the final epoch's model; here the best epoch's weights (by
    validation NDCG@10 on the held-out last items) are kept. Its settings (hidden 256, max_len
    100, 100 epochs) are far too slow for a CPU; the defaults below train well in minutes.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass

import torch
from torch import nn

from dlmia.config import MAX_DEPTH, MAX_WIDTH, check_domain
from dlmia.data.histories import Histories
from dlmia.errors import ConfigError
from dlmia.recommenders.neural import (
    NeuralRecommender,
    catalogue_loss,
    row_batches,
)
from dlmia.recommenders.sequential import SequentialConfig, sequence_windows


@dataclass(frozen=True)
class BERT4RecConfig(SequentialConfig):
    """BERT4Rec settings (reference: hidden 256, 2 blocks, 4 heads, dropout 0.1, mask 0.15)."""

    hidden_dim: int = 64  # embedding and transformer width
    layers: int = 2  # transformer blocks
    heads: int = 2  # attention heads (must divide hidden_dim)
    mask_prob: float = 0.3  # share of a window's items masked for training
    mask_last_prob: float = 0.3  # share of windows in which only the last item is masked
    dropout: float = 0.1  # inside the transformer and on the embeddings
    stride: int = 50  # training windows do not overlap (masking differs every epoch anyway)
    batch_size: int = 64  # windows per step
    lr: float = 4e-3  # Adam learning rate
    patience: int = 8  # BERT4Rec improves slowly and its validation curve is noisy

    def __post_init__(self) -> None:
        super().__post_init__()
        check_domain(self, positive=("hidden_dim", "layers", "heads", "mask_prob"),
                     fractions=("mask_prob", "mask_last_prob"),
                     at_most={"hidden_dim": MAX_WIDTH, "layers": MAX_DEPTH, "heads": MAX_DEPTH})
        if self.hidden_dim % self.heads:
            raise ConfigError(
                f"recommender.heads: {self.heads} does not divide hidden_dim {self.hidden_dim}"
            )


def _init(module: nn.Module) -> None:
    """BERT's initialisation: N(0, 0.02) weights, zero biases (unit-variance embeddings would
    start the tied output layer with logits of standard deviation ~sqrt(d))."""
    if isinstance(module, (nn.Linear, nn.Embedding)):
        nn.init.normal_(module.weight, std=0.02)
    if isinstance(module, nn.Linear) and module.bias is not None:
        nn.init.zeros_(module.bias)


class BERT4RecNet(nn.Module):
    """Embeddings -> transformer encoder -> output layer; ids n_items, n_items + 1 = pad, mask."""

    def __init__(self, n_items: int, cfg: BERT4RecConfig) -> None:
        super().__init__()
        d = cfg.hidden_dim
        self.pad, self.mask = n_items, n_items + 1
        self.items = nn.Embedding(n_items + 2, d, padding_idx=n_items)
        self.positions = nn.Embedding(cfg.max_len, d)
        self.norm = nn.LayerNorm(d)
        self.dropout = nn.Dropout(cfg.dropout)
        layer = nn.TransformerEncoderLayer(
            d, cfg.heads, 4 * d, cfg.dropout, activation="gelu", batch_first=True
        )
        self.encoder = nn.TransformerEncoder(layer, cfg.layers, enable_nested_tensor=False)
        self.head = nn.Sequential(nn.Linear(d, d), nn.GELU(), nn.LayerNorm(d))
        self.bias = nn.Parameter(torch.zeros(n_items))
        self.apply(_init)
        with torch.no_grad():
            self.items.weight[self.pad].zero_()

    def forward(self, sequences: torch.Tensor) -> torch.Tensor:
        """(B, max_len) right-aligned ids -> (B, max_len, d) output representations."""
        x = self.items(sequences) + self.positions.weight[None, : sequences.shape[1]]  # (B, L, d)
        x = self.encoder(self.dropout(self.norm(x)), src_key_padding_mask=sequences == self.pad)
        return self.head(x)  # (B, L, d)

    @property
    def output_weight(self) -> torch.Tensor:
        return self.items.weight[: self.pad]  # (n_items, d), pad and mask rows left out


class BERT4Rec(NeuralRecommender[torch.Tensor, torch.Tensor]):
    """BERT4Rec with early stopping on the held-out last items (see `NeuralRecommender`)."""

    name = "bert4rec"
    Config = BERT4RecConfig
    config: BERT4RecConfig
    net: BERT4RecNet

    def build(self, train: Histories) -> nn.Module:
        return BERT4RecNet(train.n_items, self.config)

    def prepare(self, train: Histories) -> torch.Tensor:
        cfg = self.config
        windows, _ = sequence_windows(train, cfg.max_len, cfg.stride, train.n_items)
        return windows.to(self.device)  # (W, max_len)

    def batches(self, data: torch.Tensor, generator: torch.Generator) -> Iterator[torch.Tensor]:
        for (windows,) in row_batches((data,), self.config.batch_size, generator):
            yield windows

    def loss(self, batch: torch.Tensor, generator: torch.Generator) -> torch.Tensor:
        items = batch != self.net.pad  # (B, L)
        draw = torch.rand(batch.shape, generator=generator).to(self.device)  # (B, L)
        masked = items & (draw < self.config.mask_prob)
        last_only = torch.rand(len(batch), generator=generator).to(self.device)  # (B,)
        masked[last_only < self.config.mask_last_prob] = False
        masked[:, -1] |= ~masked.any(1)  # the last item when nothing else is masked
        hidden = self.net(batch.masked_fill(masked, self.net.mask))[masked]  # (N, d)
        weight, bias = self.net.output_weight, self.net.bias
        n_sampled = self.config.n_sampled
        return catalogue_loss(hidden, batch[masked], weight, bias, n_sampled, generator)

    def predict(self, histories: Histories) -> torch.Tensor:
        sequences = histories.padded(self.config.max_len - 1, histories.n_items).to(self.device)
        mask = torch.full((len(sequences), 1), self.net.mask, device=self.device)
        sequences = torch.cat([sequences, mask], 1)  # (B, max_len): the history, then [MASK]
        final = self.net(sequences)[:, -1]  # (B, d)
        return final @ self.net.output_weight.T + self.net.bias  # (B, n_items)
