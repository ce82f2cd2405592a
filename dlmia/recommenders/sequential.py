"""Shared parts of the sequential recommenders (GRU4Rec, Caser, BERT4Rec): windows over the
item sequences, and the next-item training scheme of GRU4Rec and Caser.

Sequences are independent rows: each window starts from nothing (no state carried between
users or windows), and a scored user is conditioned on the last `max_len` items of its visible
history only. Item ids are `0..n_items-1`; `n_items` is the padding id.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import ClassVar, NamedTuple

import numpy as np
import torch
from torch import nn

from dlmia.config import MAX_SAMPLED, MAX_WIDTH, check_domain
from dlmia.data.histories import Histories
from dlmia.errors import ConfigError
from dlmia.recommenders.neural import (
    NeuralConfig,
    NeuralRecommender,
    catalogue_loss,
    row_batches,
)


@dataclass(frozen=True)
class SequentialConfig(NeuralConfig):
    """Settings every sequential model shares."""

    max_len: int = 50  # items of context a window (and a scored user) holds
    stride: int = 25  # windows of a long training sequence start this many items apart
    n_sampled: int = 0  # 0: softmax over the whole catalogue; else this many sampled negatives
    dropout: float = 0.2  # dropout rate inside the network

    def __post_init__(self) -> None:
        super().__post_init__()
        check_domain(self, positive=("max_len", "stride"), non_negative=("n_sampled",),
                     fractions=("dropout",),
                     at_most={"max_len": MAX_WIDTH, "n_sampled": MAX_SAMPLED})
        if self.stride > self.max_len:
            raise ConfigError(
                f"recommender.stride: {self.stride} must not exceed max_len {self.max_len}"
            )


class SequenceNet(nn.Module):
    """A network over (B, L) item ids (`n_items` = pad) with output item embeddings: `forward`
    gives (B, L, d) outputs, one after each position; next-item logits are
    `outputs @ output_weight.T + bias`."""

    bias: torch.Tensor  # (n_items,)

    @property
    def output_weight(self) -> torch.Tensor:
        """(n_items, d) the output item embeddings."""
        raise NotImplementedError


class Windows(NamedTuple):
    """Training windows of a next-item model: inputs, next items, and where one is learnt."""

    inputs: torch.Tensor  # (W, max_len) item ids
    targets: torch.Tensor  # (W, max_len) the item after each input position
    learn: torch.Tensor  # (W, max_len) bool: the target is learnt here


class NextItemRecommender(NeuralRecommender[Windows, Windows]):
    """Trains a network sequence-to-sequence: every window position predicts the next item.

    The network maps (B, L) item ids (`n_items` = pad) to (B, L, d) outputs, one after each
    position, and has `output_weight` (n_items, d) and `bias` (n_items,): next-item logits are
    `output @ output_weight.T + bias`. Each position of a training sequence is learnt once per
    epoch, in the window where it has the most context (see `sequence_windows`). A history is
    scored by the output after its last item.
    """

    left_aligned: ClassVar[bool]  # True: pads after the items (a recurrent state runs from item 1)
    config: SequentialConfig
    net: SequenceNet

    def prepare(self, train: Histories) -> Windows:
        pad = train.n_items
        windows, owned = sequence_windows(train, self.config.max_len + 1, self.config.stride, pad)
        inputs, targets = windows[:, :-1], windows[:, 1:]  # (W, max_len) each
        learn = owned[:, 1:] & (inputs != pad)  # a target needs at least one item before it
        if self.left_aligned:
            inputs, targets, learn = left_align(inputs, pad, targets, learn)
        keep = learn.any(1)
        return Windows(*(value[keep].to(self.device) for value in (inputs, targets, learn)))

    def batches(self, data: Windows, generator: torch.Generator) -> Iterator[Windows]:
        pad = len(self.net.output_weight)  # the pad id: n_items
        for batch in row_batches(data, self.config.batch_size, generator):
            yield Windows(*without_pad_columns(*batch, pad=pad, left_aligned=self.left_aligned))

    def loss(self, batch: Windows, generator: torch.Generator) -> torch.Tensor:
        inputs, targets, learn = batch
        hidden = self.net(inputs)[learn]  # (N, d) where the next item is learnt
        weight, bias = self.net.output_weight, self.net.bias
        n_sampled = self.config.n_sampled
        return catalogue_loss(hidden, targets[learn], weight, bias, n_sampled, generator)

    def predict(self, histories: Histories) -> torch.Tensor:
        pad, max_len = histories.n_items, self.config.max_len
        sequences = histories.padded(max_len, pad).to(self.device)  # (B, L), right-aligned
        last = torch.full((histories.n_users,), max_len - 1, device=self.device)
        if self.left_aligned:
            (sequences,) = left_align(sequences, pad)
            lengths = torch.from_numpy(histories.lengths).clamp(1, max_len).to(self.device)
            last = lengths - 1  # (B,); an empty history reads the output after a pad
        rows = torch.arange(len(sequences), device=self.device)
        final = self.net(sequences)[rows, last]  # (B, d)
        return final @ self.net.output_weight.T + self.net.bias  # (B, n_items)


def sequence_windows(
    histories: Histories, length: int, stride: int, pad: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Cut each sequence into right-aligned windows of `length` items, `stride` apart from its end.

    Each position of a sequence is *owned* by exactly one window: the one in which it has the most
    items before it (so a model predicting position t from the items before it sees at least
    `length - stride` of them whenever the sequence has them). Short sequences give one window,
    padded with `pad` on the left.

    Returns:
        windows: (W, length) LongTensor of item ids, `pad` before the first item.
        owned: (W, length) bool, True where the window owns that position.
    """
    assert 0 < stride <= length, "stride must be in 1..length"
    n = histories.lengths  # (U,)
    earliest = np.where(n > length, -(-(n - length) // stride), 0)  # each user's first window
    n_windows = np.where(n > 0, earliest + 1, 0)
    row = np.repeat(np.arange(histories.n_users), n_windows)  # (W,)
    j = np.arange(len(row)) - np.repeat(np.cumsum(n_windows) - n_windows, n_windows)
    size = n[row]
    hi = size - j * stride  # owned positions are [lo, hi)
    lo = np.where(j == earliest[row], 0, hi - stride)
    end = np.maximum(hi, np.minimum(size, length))  # the first window is filled up to `length`
    position = end[:, None] - length + np.arange(length)[None, :]  # (W, length) in the sequence
    valid = position >= 0
    flat = histories.indptr[row][:, None] + position  # (W, length) index in `items`
    windows = np.where(valid, histories.items[np.where(valid, flat, 0)], pad)
    owned = valid & (position >= lo[:, None]) & (position < hi[:, None])
    return torch.from_numpy(windows), torch.from_numpy(owned)


def without_pad_columns(
    sequences: torch.Tensor, *alongside: torch.Tensor, pad: int, left_aligned: bool = False
) -> tuple[torch.Tensor, ...]:
    """A batch of windows without the columns that hold `pad` in every row (those leading
    right-aligned windows, or trailing left-aligned ones), and the (B, L) tensors `alongside`
    cut the same way; `sequences` first.

    No output at an item changes (a recurrent state runs from item 1, a convolution sees zeros
    before the start), but each step costs the batch's longest window instead of `max_len`: on
    Amazon Beauty (about 9 items a user) most of Caser's 100-item window is padding. BERT4Rec
    keeps full windows: cut ones (positions counted from the right) gave it fewer distinct
    lists and a lower HR@10 on Beauty on both seeds tried, for a 1.03x faster fit.
    """
    filled = torch.nonzero((sequences != pad).any(0))[:, 0]  # (columns holding an item,)
    if not len(filled):
        return (sequences, *alongside)
    cut = slice(0, int(filled[-1]) + 1) if left_aligned else slice(int(filled[0]), None)
    return tuple(t[:, cut] for t in (sequences, *alongside))


def left_align(
    sequences: torch.Tensor, pad: int, *alongside: torch.Tensor
) -> tuple[torch.Tensor, ...]:
    """Move each row's leading `pad` entries to its end (right- to left-aligned), and shift the
    (B, L) tensors `alongside` the same way; returns the shifted `sequences` first."""
    length = sequences.shape[1]
    n_pad = (sequences == pad).sum(1, keepdim=True)  # (B, 1); pads only lead
    index = (torch.arange(length, device=sequences.device) + n_pad) % length  # (B, L)
    return tuple(t.gather(1, index) for t in (sequences, *alongside))  # each (B, L)
