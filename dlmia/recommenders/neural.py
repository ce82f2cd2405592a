"""Shared training machinery of the neural recommenders (NCF, GRU4Rec, Caser, BERT4Rec).

Every neural model holds out each member's last item (method.md section 2): it trains on
`histories.drop_last(1)` and, after each epoch, ranks the whole catalogue for a fixed, seeded
sample of at most `validation_users` members (0: every member) from that prefix and scores the
held-out item (HR@10, NDCG@10). Training stops after `patience` epochs without a better
NDCG@10, and the best epoch's weights are restored (the published code exported lists from the
last epoch instead; not copied here).

The stopping epoch matters beyond the recommender's quality: a model trained longer hands its
members more of their own items back, so it leaks more. On sparse data (Amazon Beauty, HR@10
about 0.03) a sample of 1,000 users holds some 25 hits an epoch, and NDCG@10 on it is so noisy
that `patience` epochs without a new best come by chance while the model is still improving.

A model subclasses `NeuralRecommender` and supplies `build` (the network), `prepare` (training
tensors, made once), `batches` and `loss` (one minibatch) and `predict` (scores of a batch of
histories). Randomness: parameter initialisation and dropout come from `seed_torch`, batch order,
negatives and masks from one `torch_generator`, both derived from the model's seed, so a fit on
the CPU is bit-identical for the same seed.
"""

from __future__ import annotations

import contextlib
import logging
import math
from abc import abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass
from time import perf_counter
from typing import Any, Generic, Self, TypeVar

import numpy as np
import torch
import torch.nn.functional as F
from torch import nn

from dlmia.config import check_domain
from dlmia.data.histories import Histories, IntArray
from dlmia.errors import TrainingError
from dlmia.optim import adam
from dlmia.recommenders.base import Recommender
from dlmia.seeding import deterministic_kernels, numpy_rng, seed_torch, torch_generator

EVAL_K = 10  # early stopping watches NDCG@10 and HR@10
logger = logging.getLogger(__name__)
Data = TypeVar("Data")  # a model's training tensors, made once per fit
Batch = TypeVar("Batch")  # one minibatch of them


@dataclass(frozen=True)
class NeuralConfig:
    """Settings every neural recommender shares (each model's Config extends these)."""

    epochs: int = 30  # most training epochs (early stopping usually ends sooner)
    batch_size: int = 128  # training examples (sequences, or users for NCF) per step
    lr: float = 1e-3  # Adam learning rate
    weight_decay: float = 0.0  # Adam L2 weight
    patience: int = 5  # epochs without a better validation NDCG@10 before stopping
    validation_users: int = 1000  # members (a fixed, seeded sample) early stopping ranks; 0 = all
    amp: bool = False  # bfloat16 autocast on CUDA (ignored on the CPU)

    def __post_init__(self) -> None:
        check_domain(self, positive=("epochs", "batch_size", "lr", "patience"),
                     non_negative=("weight_decay", "validation_users"))


@dataclass(frozen=True)
class EpochLog:
    """One training epoch: mean loss, validation metrics and seconds spent."""

    epoch: int
    loss: float
    hr: float  # HR@10 of the held-out last items
    ndcg: float  # NDCG@10 of the held-out last items
    train_s: float
    eval_s: float


class NeuralRecommender(Recommender, Generic[Data, Batch]):
    """A recommender trained by minibatch Adam with early stopping on held-out last items.

    A model supplies its network (`build`), its training data (`prepare`, once), one epoch of
    minibatches (`batches`), the loss of one (`loss`) and the scores of a batch of histories
    (`predict`); this class owns the loop, the validation and the best-epoch weights.

    Attributes (after `fit`):
        net: the trained network, holding the best epoch's weights.
        log: one `EpochLog` per epoch run.
        best_epoch: the epoch whose weights were kept (1-based).
    """

    holds_out_last = True
    config: NeuralConfig
    net: nn.Module  # set by `fit`

    def __init__(self, config: Any = None, *, device: str = "auto", seed: int = 0) -> None:
        super().__init__(config, device=device, seed=seed)
        self.log: list[EpochLog] = []
        self.best_epoch = 0

    @abstractmethod
    def build(self, train: Histories) -> nn.Module:
        """The untrained network for the catalogue of `train` (called after seeding)."""

    @abstractmethod
    def prepare(self, train: Histories) -> Data:
        """Training tensors on `self.device`, made once before the first epoch."""

    @abstractmethod
    def batches(self, data: Data, generator: torch.Generator) -> Iterator[Batch]:
        """One epoch of minibatches drawn from `data`."""

    @abstractmethod
    def loss(self, batch: Batch, generator: torch.Generator) -> torch.Tensor:
        """Scalar training loss of one minibatch."""

    @abstractmethod
    def predict(self, histories: Histories) -> torch.Tensor:
        """(n_users, n_items) next-item scores for a batch of visible histories (eval mode)."""

    def fit(self, histories: Histories) -> Self:
        cfg = self.config
        self.n_items = histories.n_items
        train, targets = self.training_prefix(histories), histories.last_items()
        watched = validation_rows(histories.n_users, cfg.validation_users, self.seed, self.name)
        seed_torch(self.seed, self.name, "init")
        self.net = self.build(train).to(self.device)
        data = self.prepare(train)
        generator = torch_generator(self.seed, self.name, "batches")
        optimiser = adam(self.net.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
        stopper = EarlyStopping(cfg.patience)
        self.log = []
        for epoch in range(1, cfg.epochs + 1):
            start = perf_counter()
            with deterministic_kernels(self.device):
                loss = self._train_epoch(data, generator, optimiser)
            middle = perf_counter()
            hr, ndcg = ranking_metrics(self, train.rows(watched), targets[watched], k=EVAL_K)
            seconds = (middle - start, perf_counter() - middle)
            self.log.append(EpochLog(epoch, loss, hr, ndcg, *seconds))
            logger.info("%s %s", self.name, self.log[-1])
            if stopper.update(epoch, ndcg, self.net):
                break
        stopper.restore(self.net)
        self.best_epoch = stopper.best_epoch
        return self

    def _train_epoch(
        self, data: Data, generator: torch.Generator, optimiser: torch.optim.Optimizer
    ) -> float:
        assert self.net is not None
        self.net.train()
        total, steps = torch.zeros((), device=self.device), 0
        for batch in self.batches(data, generator):
            with self.autocast():
                loss = self.loss(batch, generator)
            optimiser.zero_grad(set_to_none=True)
            loss.backward()
            optimiser.step()
            total += loss.detach().float()
            steps += 1
        mean = total.item() / max(steps, 1)
        if not math.isfinite(mean):
            raise TrainingError(f"{self.name}: the training loss became {mean}; lower its lr")
        return mean

    def autocast(self) -> contextlib.AbstractContextManager[Any]:
        """bfloat16 autocast when `amp` is set and the model runs on CUDA; else a no-op."""
        enabled = self.config.amp and self.device.type == "cuda"
        return torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=enabled)

    @torch.no_grad()
    def score(self, histories: Histories) -> torch.Tensor:
        if not hasattr(self, "net"):
            raise RuntimeError(f"{self.name}: score() called before fit()")
        self.net.eval()
        with self.autocast():
            return self.predict(histories).float()  # (B, n_items)


def validation_rows(n_users: int, cap: int, seed: int, name: str) -> IntArray:
    """The rows early stopping watches: all of them (`cap` 0, or at most `cap` rows), or a fixed
    seeded sample of `cap` (in order), so each epoch's check costs at most `cap` users'
    rankings."""
    if cap == 0 or n_users <= cap:
        return np.arange(n_users, dtype=np.int64)
    rng = numpy_rng(seed, name, "validation")
    return np.sort(rng.choice(n_users, cap, replace=False)).astype(np.int64)


class EarlyStopping:
    """Keeps a copy of the best weights and says when `patience` epochs brought nothing better."""

    def __init__(self, patience: int) -> None:
        self.patience = patience
        self.best = -math.inf
        self.best_epoch = 0
        self.state: dict[str, torch.Tensor] | None = None

    def update(self, epoch: int, metric: float, module: nn.Module) -> bool:
        """Record `metric` of `epoch` (higher is better); True when training should stop."""
        if metric > self.best:
            self.best, self.best_epoch = metric, epoch
            self.state = {k: v.detach().clone() for k, v in module.state_dict().items()}
        return epoch - self.best_epoch >= self.patience

    def restore(self, module: nn.Module) -> None:
        """Load the best weights back into `module`."""
        if self.state is not None:
            module.load_state_dict(self.state)


@torch.no_grad()
def ranking_metrics(
    model: Recommender,
    prefixes: Histories,
    targets: IntArray,
    *,
    k: int = 10,
    batch_size: int = 1024,
) -> tuple[float, float]:
    """HR@k and NDCG@k of each user's held-out `targets` item, ranked over the whole catalogue.

    Items of the user's prefix are ranked out (as in RecBole's full-sort evaluation) unless they
    are the target itself; tied scores share their ranks (the mean rank under random tie-breaks).
    Users with target -1 (no held-out item) are skipped.

    Args:
        model: a fitted recommender.
        prefixes: (n_users rows) what the model conditions on.
        targets: (n_users,) the held-out item of each row.
    """
    keep = np.flatnonzero(targets >= 0)
    prefixes, targets = prefixes.rows(keep), targets[keep]
    hits, gains = 0.0, 0.0
    for start in range(0, prefixes.n_users, batch_size):
        batch = prefixes.rows(np.arange(start, min(start + batch_size, prefixes.n_users)))
        scores = model.score(batch).float()  # (B, n_items)
        if torch.isnan(scores).any():
            raise TrainingError(f"{model.name}: scores are NaN; the model diverged")
        target = torch.from_numpy(targets[start : start + batch.n_users]).to(scores.device)
        target_score = scores.gather(1, target[:, None])  # (B, 1)
        rows = torch.from_numpy(batch.row_of_entries()).to(scores.device)
        scores[rows, torch.from_numpy(batch.items).to(scores.device)] = -math.inf
        scores.scatter_(1, target[:, None], target_score)
        above = (scores > target_score).sum(1)
        ties = (scores == target_score).sum(1) - 1
        rank = above.double() + ties.double() / 2  # (B,) 0-based
        hit = rank < k
        hits += hit.sum().item()
        gains += torch.where(hit, 1.0 / torch.log2(rank + 2.0), 0.0).sum().item()
    n = max(len(targets), 1)
    return hits / n, gains / n


def minibatches(n: int, batch_size: int, generator: torch.Generator) -> Iterator[torch.Tensor]:
    """Index tensors (on the CPU) covering a seeded random permutation of range(n)."""
    order = torch.randperm(n, generator=generator)
    yield from order.split(batch_size)


def row_batches(
    tensors: tuple[torch.Tensor, ...], batch_size: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, ...]]:
    """One epoch of minibatches of the aligned rows of `tensors` (all on one device)."""
    for index in minibatches(len(tensors[0]), batch_size, generator):
        index = index.to(tensors[0].device)
        yield tuple(tensor[index] for tensor in tensors)


def catalogue_loss(
    hidden: torch.Tensor,
    targets: torch.Tensor,
    weight: torch.Tensor,
    bias: torch.Tensor | None,
    n_sampled: int,
    generator: torch.Generator,
) -> torch.Tensor:
    """Cross-entropy of the next items over the whole catalogue, or a sampled softmax.

    Args:
        hidden: (N, d) output representations.
        targets: (N,) true next items.
        weight: (n_items, d) output item embeddings; bias: (n_items,) or None.
        n_sampled: 0 for the full softmax, else this many uniform negatives shared by the batch
            (a negative equal to a row's target is masked out for that row).
    """
    if n_sampled == 0:
        logits = F.linear(hidden, weight, bias)  # (N, n_items)
        return F.cross_entropy(logits.float(), targets)
    negatives = torch.randint(len(weight), (n_sampled,), generator=generator).to(hidden.device)
    positive = (hidden * weight[targets]).sum(1, keepdim=True)  # (N, 1)
    negative = F.linear(hidden, weight[negatives])  # (N, S)
    if bias is not None:
        positive, negative = positive + bias[targets, None], negative + bias[negatives]
    negative = negative.masked_fill(negatives[None, :] == targets[:, None], -math.inf)
    logits = torch.cat([positive, negative], 1)  # (N, 1 + S), the true item first
    return F.cross_entropy(logits.float(), torch.zeros_like(targets))
