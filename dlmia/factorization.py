"""Implicit matrix factorisation with sampled negatives, trained by minibatched SGD.

One trainer serves the LFM recommender and the adversary's item vectors (method.md section 4):
label 1 for every interaction, label 0 for `negatives` items per interaction drawn uniformly
from the trained catalogue minus the user's own items, fresh every epoch; squared loss with an
L2 term per sample, exactly the per-sample update of the reference `LFM.py`
(`p += lr * (e * q - l2 * p)`, same for `q`), applied to a shuffled minibatch at once.

The per-sample updates are summed over the batch, which is the reference's per-sample SGD as
long as a batch rarely repeats a row. From the reference's large U[0, 1) initialisation
(predictions near 25 against labels 0/1), summing the repeats of a popular row diverges, so
`average_repeats` averages them instead: stable at any batch size, and measured on ML-1M to give
item vectors with the same attack signal as the per-sample reference. Gradients are written by
hand (no autograd): faster, and bit-identical on CPU for a fixed seed.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch

from dlmia.data.histories import Histories

# Rejection rounds for negatives that hit one of the user's own items; what is still a hit after
# them (a user holding nearly the whole catalogue) is kept as a negative.
_NEGATIVE_ROUNDS = 20


@dataclass(frozen=True)
class MFSettings:
    """The trainer's hyper-parameters (the public configs of LFM and item vectors map onto it)."""

    factors: int  # latent dimension
    epochs: int  # passes over the positives, each with fresh negatives
    lr: float  # SGD step of the first epoch, on the per-sample scale
    lr_decay: float  # the step is multiplied by this after every epoch
    l2: float  # L2 weight applied to both factor rows of every sample
    negatives: int  # sampled label-0 items per interaction
    init: Literal["uniform", "normal"]  # uniform [0, init_scale) or normal(0, init_scale)
    init_scale: float  # upper bound (uniform) or standard deviation (normal) of initial factors
    batch_size: int  # samples per SGD step
    average_repeats: bool  # average (not sum) the updates of a row repeated within a batch


@dataclass(frozen=True, eq=False)
class MFModel:
    """Trained factors. `user_factors` rows follow the rows of the training `Histories`.

    Attributes:
        user_factors: (n_users, factors) float32.
        item_factors: (n_items, factors) float32; untrained items keep their initial rows.
        trained_items: (n_items,) bool, the items that occur in the training histories.
    """

    user_factors: torch.Tensor
    item_factors: torch.Tensor
    trained_items: torch.Tensor


def train_mf(histories: Histories, settings: MFSettings, *, generator: torch.Generator) -> MFModel:
    """Fit implicit MF on `histories` (repeated items count as repeated positives).

    Args:
        histories: the training users; their rows index `user_factors`.
        settings: hyper-parameters.
        generator: the source of initialisation, negatives and shuffling; its device is where
            the factors live and train.
    """
    device = generator.device
    users = torch.from_numpy(histories.row_of_entries()).to(device)  # (nnz,)
    items = torch.from_numpy(histories.items).to(device)  # (nnz,)
    n_users, n_items = histories.n_users, histories.n_items
    candidates = torch.unique(items)  # (n_trained,) items negatives are drawn from
    trained = torch.zeros(n_items, dtype=torch.bool, device=device)
    trained[candidates] = True
    user_factors = _init((n_users, settings.factors), settings, generator, device)
    item_factors = _init((n_items, settings.factors), settings, generator, device)
    own_keys = torch.unique(users * n_items + items)  # (n_pairs,) sorted user-item keys
    lr = settings.lr
    for _ in range(settings.epochs):
        neg_users = users.repeat(settings.negatives)  # (nnz * negatives,)
        neg_items = _sample_negatives(neg_users, candidates, own_keys, n_items, generator)
        sample_users = torch.cat([users, neg_users])  # (S,)
        sample_items = torch.cat([items, neg_items])  # (S,)
        labels = torch.cat([torch.ones_like(users), torch.zeros_like(neg_users)]).float()  # (S,)
        order = torch.randperm(len(labels), generator=generator, device=device)  # (S,) shuffle
        for u, i, r in zip(*(torch.split(t.index_select(0, order), settings.batch_size) for t in (
            sample_users, sample_items, labels
        ))):
            _sgd_step(user_factors, item_factors, u, i, r, lr, settings)
        lr *= settings.lr_decay
    return MFModel(user_factors, item_factors, trained)


def _init(
    shape: tuple[int, int], settings: MFSettings, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    if settings.init == "uniform":
        values = torch.rand(shape, generator=generator, device=device)
        return values * settings.init_scale
    return torch.randn(shape, generator=generator, device=device) * settings.init_scale


def _sample_negatives(
    users: torch.Tensor,
    candidates: torch.Tensor,
    own_keys: torch.Tensor,
    n_items: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """(len(users),) items drawn uniformly from `candidates`, redrawn while the user owns them."""
    draw = torch.randint(len(candidates), users.shape, generator=generator, device=users.device)
    items = candidates[draw]
    redo = torch.arange(len(users), device=users.device)
    for _ in range(_NEGATIVE_ROUNDS):
        keys = users[redo] * n_items + items[redo]
        pos = torch.searchsorted(own_keys, keys).clamp_max(len(own_keys) - 1)
        redo = redo[own_keys[pos] == keys]
        if len(redo) == 0:
            break
        draw = torch.randint(len(candidates), redo.shape, generator=generator, device=users.device)
        items[redo] = candidates[draw]
    return items


def _sgd_step(
    user_factors: torch.Tensor,
    item_factors: torch.Tensor,
    users: torch.Tensor,
    items: torch.Tensor,
    labels: torch.Tensor,
    lr: float,
    settings: MFSettings,
) -> None:
    """One SGD step in place from the per-sample updates of a batch (B samples)."""
    # index_select and index_add_ without alpha are the fast paths on CPU.
    p = user_factors.index_select(0, users)  # (B, F)
    q = item_factors.index_select(0, items)  # (B, F)
    error = (labels - (p * q).sum(1)).unsqueeze(1)  # (B, 1)
    for rows, table, own, other in ((users, user_factors, p, q), (items, item_factors, q, p)):
        step = torch.full_like(error, lr)  # (B, 1)
        if settings.average_repeats:
            step /= torch.bincount(rows, minlength=len(table)).index_select(0, rows).unsqueeze(1)
        # step * (error * other - l2 * own), in two (B, F) passes
        update = torch.addcmul(other * (error * step), own, step, value=-settings.l2)  # (B, F)
        table.index_add_(0, rows, update)
