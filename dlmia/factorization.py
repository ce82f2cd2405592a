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

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import torch

from dlmia.data.histories import Histories

# Rejection rounds for negatives that hit one of the user's own items; what is still a hit after
# them (a user holding nearly the whole catalogue) is kept as a negative.
_NEGATIVE_ROUNDS = 20
# Samples (positives and negatives) of the models trained at once by `train_mf_many`, an epoch.
_STACK_SAMPLES = 1 << 24


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
    return train_mf_many([histories], settings, generators=[generator])[0]


def train_mf_many(
    histories: Sequence[Histories], settings: MFSettings, *, generators: Sequence[torch.Generator]
) -> list[MFModel]:
    """`train_mf` of each `histories[r]` with `generators[r]`, the models trained side by side.

    The models' factor tables are stacked into one user and one item table (model r's rows at
    an offset of their own), and every SGD step updates the r-th batch of every model at once:
    each model draws its initialisation, negatives and shuffles from its own generator in the
    order `train_mf` would, takes the same batches in the same order, and no step touches two
    models' rows together, so each model is the one `train_mf` alone would give (bit-identical
    on the CPU, where `index_add_` adds a row's updates in index order). A model with fewer
    batches in an epoch sits out the last steps. Models are trained in groups of at most
    `_STACK_SAMPLES` samples an epoch (bounds memory), or one by one where stacking does not
    pay (`stacks`); each model is the same either way.

    All generators must be on one device, where the factors live and train.
    """
    if len(histories) != len(generators):
        raise ValueError("train_mf_many: one generator per histories expected")
    problems = [_Problem.of(h, g.device) for h, g in zip(histories, generators)]
    models: list[MFModel] = []
    start = 0
    while start < len(problems):
        stop, samples = start + 1, problems[start].samples(settings)
        while stop < len(problems) and stacks(generators[0].device):
            samples += problems[stop].samples(settings)
            if samples > _STACK_SAMPLES:
                break
            stop += 1
        models += _train_stacked(problems[start:stop], settings, generators[start:stop])
        start = stop
    return models


@dataclass(frozen=True, eq=False)
class _Problem:
    """One model's training data: its interactions as (user row, item) pairs."""

    users: torch.Tensor  # (nnz,) row of each interaction
    items: torch.Tensor  # (nnz,) its item
    n_users: int
    n_items: int
    candidates: torch.Tensor  # (n_trained,) items negatives are drawn from
    own_keys: torch.Tensor  # (n_pairs,) sorted user * n_items + item keys

    @classmethod
    def of(cls, histories: Histories, device: torch.device) -> _Problem:
        users = torch.from_numpy(histories.row_of_entries()).to(device)
        items = torch.from_numpy(histories.items).to(device)
        own_keys = torch.unique(users * histories.n_items + items)
        return cls(users, items, histories.n_users, histories.n_items, torch.unique(items),
                   own_keys)  # fmt: skip

    def samples(self, settings: MFSettings) -> int:
        """Samples of one epoch: every interaction and its negatives."""
        return len(self.users) * (1 + settings.negatives)

    def epoch(
        self, settings: MFSettings, generator: torch.Generator
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """One epoch's shuffled (users, items, labels), each (S,), fresh negatives drawn."""
        neg_users = self.users.repeat(settings.negatives)  # (nnz * negatives,)
        neg_items = _sample_negatives(
            neg_users, self.candidates, self.own_keys, self.n_items, generator
        )
        sample_users = torch.cat([self.users, neg_users])  # (S,)
        sample_items = torch.cat([self.items, neg_items])  # (S,)
        labels = torch.cat([torch.ones_like(self.users), torch.zeros_like(neg_users)]).float()
        order = torch.randperm(len(labels), generator=generator, device=labels.device)
        return (
            sample_users.index_select(0, order),
            sample_items.index_select(0, order),
            labels.index_select(0, order),
        )


def _train_stacked(
    problems: Sequence[_Problem], settings: MFSettings, generators: Sequence[torch.Generator]
) -> list[MFModel]:
    """Train `problems` side by side on stacked tables (see `train_mf_many`)."""
    device = generators[0].device
    user_tables, item_tables = [], []
    for problem, generator in zip(problems, generators):  # each model's init, in train_mf's order
        user_tables.append(_init((problem.n_users, settings.factors), settings, generator, device))
        item_tables.append(_init((problem.n_items, settings.factors), settings, generator, device))
    user_factors, item_factors = torch.cat(user_tables), torch.cat(item_tables)
    user_offsets = _offsets([p.n_users for p in problems])  # where each model's rows start
    item_offsets = _offsets([p.n_items for p in problems])
    lr = settings.lr
    for _ in range(settings.epochs):
        epochs = [problem.epoch(settings, g) for problem, g in zip(problems, generators)]
        at, sizes = _step_major([len(labels) for *_, labels in epochs], settings.batch_size)
        stacked = [torch.empty(sum(sizes), dtype=t.dtype, device=device) for t in epochs[0]]
        for (users, items, labels), where, u_off, i_off in zip(
            epochs, at, user_offsets, item_offsets
        ):
            where = where.to(device)
            stacked[0][where] = users + u_off
            stacked[1][where] = items + i_off
            stacked[2][where] = labels
        for u, i, r in zip(*(torch.split(t, sizes) for t in stacked)):
            _sgd_step(user_factors, item_factors, u, i, r, lr, settings)
        lr *= settings.lr_decay
    return [
        MFModel(u.clone(), i.clone(), _trained(p))
        for p, u, i in zip(
            problems,
            torch.split(user_factors, [p.n_users for p in problems]),
            torch.split(item_factors, [p.n_items for p in problems]),
        )
    ]


def stacks(device: torch.device) -> bool:
    """Whether stacking models pays on `device`: on CUDA, where one model's small steps leave the
    device idle. Not on a CPU: on this project's quiet 2-core machine the 16 LFMs of an ML-1M
    reference pool took 57 s stacked against 48 s one by one (both on 2 threads; `dlmia cell
    --attack reference`, seed 0), and 8 of them 25 s against 23 s on one thread."""
    return device.type == "cuda"


def _offsets(sizes: list[int]) -> list[int]:
    """Where each block of `sizes` rows starts in the stacked table."""
    return [sum(sizes[:i]) for i in range(len(sizes))]


def _step_major(samples: list[int], batch_size: int) -> tuple[list[torch.Tensor], list[int]]:
    """Where each model's shuffled samples go in one epoch laid out step by step: step t holds
    the t-th batch of every model that has one, in model order.

    Returns:
        (one (samples[m],) position tensor per model, the samples of each step).
    """
    steps = max(-(-n // batch_size) for n in samples)
    sizes = torch.tensor([
        [min(batch_size, max(0, n - t * batch_size)) for n in samples] for t in range(steps)
    ])  # (steps, models) samples of model m in step t
    starts = (sizes.flatten().cumsum(0) - sizes.flatten()).view(steps, len(samples))
    at = []
    for m, n in enumerate(samples):
        position = torch.arange(n)
        at.append(starts[position // batch_size, m] + position % batch_size)
    return at, sizes.sum(1).tolist()


def _trained(problem: _Problem) -> torch.Tensor:
    """(n_items,) bool: the items that occur in the problem's interactions."""
    trained = torch.zeros(problem.n_items, dtype=torch.bool, device=problem.items.device)
    trained[problem.candidates] = True
    return trained


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
