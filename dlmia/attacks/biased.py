"""The "Biased" baseline attack of Zhang et al., "Membership Inference Attacks Against Recommender
Systems" (CCS 2021), as specified in method.md section 5.

An MLP d -> 32 -> 8 -> 2 on the difference vectors, trained on all labelled shadow users with SGD
(lr 0.01, momentum 0.9, 20 epochs, one sample per step, reshuffled every epoch), applied to the
target users. Unlike the published code (MIARS `attack_model.py`), the loss is cross-entropy on
logits, not on softmax outputs (no double softmax), and gradients are clipped. The attack is not
transductive: it never looks at the target vectors, so it can never standardise with them.
"""

from __future__ import annotations

import dataclasses
import math
import time
from typing import Literal, Self

import numpy as np
import numpy.typing as npt
import torch
from torch import nn

from dlmia.attacks.base import (
    Attack,
    FloatArray,
    LabelArray,
    TargetView,
    check_labels,
    check_vectors,
)
from dlmia.attacks.mlp import FusedMLPSGD, member_proba, membership_mlp
from dlmia.config import MAX_WIDTH, check_domain
from dlmia.errors import ConfigError, TrainingError
from dlmia.seeding import seed_torch, torch_generator


@dataclasses.dataclass(frozen=True)
class BiasedConfig:
    """Settings of the Biased baseline; the defaults are the reference recipe (plus clipping)."""

    hidden: tuple[int, ...] = (32, 8)  # widths of the hidden ReLU layers
    epochs: int = 20  # passes over the shadow users
    lr: float = 0.01  # SGD learning rate
    momentum: float = 0.9  # SGD momentum (dampening 0)
    batch_size: int = 1  # samples per optimizer step; 1 = the reference
    grad_clip: float | None = 1.0  # max global gradient norm per step; None = no clipping
    standardize: Literal["none", "shadow"] = "none"  # scale by shadow mean/std (never target)

    def __post_init__(self) -> None:
        for key in ("epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"attack.biased.{key}: must be >= 1, got {getattr(self, key)}")
        if not self.hidden or min(self.hidden) < 1:
            raise ConfigError(f"attack.biased.hidden: need positive widths, got {self.hidden}")
        check_domain(self, at_most={"hidden": MAX_WIDTH})
        if self.lr <= 0 or not 0 <= self.momentum < 1:
            raise ConfigError(
                f"attack.biased: need lr > 0 and 0 <= momentum < 1, got {self.lr}, {self.momentum}"
            )
        if self.grad_clip is not None and self.grad_clip <= 0:
            raise ConfigError(
                f"attack.biased.grad_clip: must be > 0 or null, got {self.grad_clip}"
            )


class BiasedAttack(Attack):
    """The Biased MLP baseline; `info` gets `epoch_loss` (mean cross-entropy per epoch),
    `fit_seconds`, `n_steps` and `n_shadow`."""

    name = "biased"
    Config = BiasedConfig
    config: BiasedConfig

    def fit(
        self, shadow_vectors: FloatArray, shadow_labels: LabelArray, target_vectors: FloatArray
    ) -> Self:
        """Train on labelled shadow vectors (n_s, d); `target_vectors` are only shape-checked."""
        start = time.perf_counter()
        x_np = check_vectors(shadow_vectors, "shadow vectors")
        labels = check_labels(shadow_labels, len(x_np))
        check_vectors(target_vectors, "target vectors", dim=x_np.shape[1])
        self._mean, self._scale = _shadow_statistics(x_np, self.config.standardize)
        x = self._inputs(x_np)  # (n_s, d)
        targets = nn.functional.one_hot(torch.from_numpy(labels), 2).float().to(self.device)

        seed_torch(self.seed, "attack", "biased", "init")
        self.model = membership_mlp(x.shape[1], self.config.hidden).to(self.device)
        epoch_loss = self._train(x, targets)
        self.info = {
            "epoch_loss": epoch_loss,
            "fit_seconds": time.perf_counter() - start,
            "n_steps": self.config.epochs * math.ceil(len(x) / self.config.batch_size),
            "n_shadow": len(x),
        }
        return self

    def predict_proba(
        self, vectors: FloatArray, view: TargetView | None = None
    ) -> npt.NDArray[np.float64]:
        """(n,) member probabilities for vectors (n, d); TrainingError if the head diverged."""
        if not hasattr(self, "model"):
            raise RuntimeError("BiasedAttack.predict_proba called before fit")
        x_np = check_vectors(vectors, "vectors", dim=self._mean.shape[0])
        self.model.eval()
        return member_proba(self.model, self._inputs(x_np))

    def _train(self, x: torch.Tensor, targets: torch.Tensor) -> list[float]:
        """SGD epochs over shuffled shadow users; returns the mean training loss of each epoch."""
        cfg = self.config
        optimizer = FusedMLPSGD(
            self.model, lr=cfg.lr, momentum=cfg.momentum, grad_clip=cfg.grad_clip
        )
        shuffle = torch_generator(self.seed, "attack", "biased", "shuffle")
        epoch_loss = []
        for epoch in range(cfg.epochs):
            order = torch.randperm(len(x), generator=shuffle).to(self.device)  # (n_s,)
            loss_sum = torch.zeros((), device=self.device)
            batches = zip(x[order].split(cfg.batch_size), targets[order].split(cfg.batch_size))
            for x_batch, target_batch in batches:
                optimizer.step(x_batch, target_batch, loss_sum)
            mean_loss = loss_sum.item() / len(x)  # one sync per epoch
            if not np.isfinite(mean_loss) or not torch.isfinite(optimizer.flat).all():
                raise TrainingError(
                    f"Biased attack diverged in epoch {epoch + 1}/{cfg.epochs} (mean loss "
                    f"{mean_loss}); lower attack.biased.lr or set attack.biased.grad_clip"
                )
            epoch_loss.append(mean_loss)
        return epoch_loss

    def _inputs(self, x_np: np.ndarray) -> torch.Tensor:
        """(n, d) float32 tensor on the device, scaled with the shadow statistics."""
        return torch.from_numpy((x_np - self._mean) / self._scale).to(self.device)


def _shadow_statistics(
    x: npt.NDArray[np.float32], standardize: str
) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.float32]]:
    """(d,) mean and scale of the shadow vectors (identity for "none"); constant columns get 1."""
    if standardize == "none":
        return np.zeros(x.shape[1], np.float32), np.ones(x.shape[1], np.float32)
    std = x.std(axis=0)
    return x.mean(axis=0), np.where(std > 1e-12, std, 1.0).astype(np.float32)
