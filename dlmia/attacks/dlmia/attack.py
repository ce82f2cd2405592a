"""DL-MIA (Wang et al., KDD 2022) behind the `Attack` interface, as method.md section 6 says.

`fit` receives shadow vectors with labels and target vectors *without* labels; nothing here can
read target membership. Input scaling: every vector is standardised per coordinate with the
mean and standard deviation pooled over all shadow and target vectors (no labels involved).
`predict_proba` treats its input as target-side vectors (the side-specific norm feature uses
the target side's statistics) and is deterministic: latents are posterior means.
"""

from __future__ import annotations

import os
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, ClassVar, Literal, Self

import numpy as np
import numpy.typing as npt
import torch

from dlmia import config as cfg
from dlmia.allocator import keep_freed_memory
from dlmia.attacks.base import (
    Attack,
    FloatArray,
    LabelArray,
    TargetView,
    check_labels,
    check_vectors,
)
from dlmia.attacks.dlmia.config import DLMIAConfig
from dlmia.attacks.dlmia.estimator import WeightEstimator
from dlmia.attacks.dlmia.model import DLMIAModel, TrainData, pseudo_labels
from dlmia.attacks.dlmia.schedule import Schedule
from dlmia.errors import TrainingError
from dlmia.seeding import numpy_rng, seed_torch, torch_generator

Side = Literal["shadow", "target"]


@dataclass(frozen=True)
class Scaler:
    """Label-free input scaling, fit on all shadow and target vectors."""

    mean: npt.NDArray[np.float64]  # (d,) pooled per-coordinate mean
    std: npt.NDArray[np.float64]  # (d,) pooled per-coordinate std (1 where constant)
    norm_stats: dict[str, tuple[float, float]]  # side -> (mean, std) of the log norms
    use_norm: bool  # False when the norm feature is off

    @classmethod
    def fit(cls, shadow: FloatArray, target: FloatArray, norm_feature: str) -> Scaler:
        pooled = np.concatenate([shadow, target]).astype(np.float64)  # (n_s + n_t, d)
        std = pooled.std(0)
        norms = {"shadow": log_norms(shadow), "target": log_norms(target)}
        both = np.concatenate(list(norms.values()))
        stats = {
            side: (float(v.mean()), float(v.std()) + 1e-8) if norm_feature == "side"
            else (float(both.mean()), float(both.std()) + 1e-8)
            for side, v in norms.items()
        }
        return cls(pooled.mean(0), np.where(std > 0, std, 1.0), stats, norm_feature != "off")

    def vectors(self, array: FloatArray) -> npt.NDArray[np.float32]:
        """(n, d) standardised copy of array (n, d)."""
        return ((array - self.mean) / self.std).astype(np.float32)

    def norm(self, array: FloatArray, side: Side) -> npt.NDArray[np.float32] | None:
        """(n, 1) log norms of array (n, d), z-scored with `side`'s statistics; None when off."""
        if not self.use_norm:
            return None
        mean, std = self.norm_stats[side]
        return ((log_norms(array) - mean) / std).astype(np.float32)[:, None]


def log_norms(array: FloatArray) -> npt.NDArray[np.float64]:
    """(n,) log Euclidean norm of each row of array (n, d) (zero rows: log 1e-8)."""
    return np.log(np.maximum(np.linalg.norm(array.astype(np.float64), axis=1), 1e-8))


def stratified_holdout(
    labels: LabelArray, fraction: float, rng: np.random.Generator
) -> npt.NDArray[np.bool_]:
    """(n,) mask of a seeded `fraction` of each class, at least one per class when > 0."""
    held = np.zeros(len(labels), dtype=bool)
    if fraction == 0:
        return held
    for value in (0, 1):
        rows = np.flatnonzero(labels == value)
        count = min(max(1, round(fraction * len(rows))), len(rows) - 1)
        held[rng.choice(rows, size=count, replace=False)] = True
    return held


@contextmanager
def cpu_threads(count: int, device: torch.device) -> Iterator[None]:
    """Run with `count` torch intra-op threads on CPU (0 or a GPU: unchanged; at most this
    machine's CPUs, as libtorch crashes far above them), then restore.

    DL-MIA's tensors are tiny (batches of ~128 x 100): extra threads only add synchronisation,
    and on a loaded machine they oversubscribe the cores (20x slower measured on 2 busy cores).
    A fixed count also keeps CPU results bit-identical whatever the caller's thread setting.
    On CPU it also keeps freed memory in the process for the next step (dlmia.allocator).
    """
    previous = torch.get_num_threads()
    if device.type == "cpu":
        keep_freed_memory()
        if count:
            torch.set_num_threads(min(count, os.cpu_count() or 1))
    try:
        yield
    finally:
        torch.set_num_threads(previous)


class DLMIAAttack(Attack):
    """Disentangled encoder + weight estimator + pseudo-labels + mixed heads (package doc)."""

    name: ClassVar[str] = "dlmia"
    Config: ClassVar[type] = DLMIAConfig
    config: DLMIAConfig
    # The label-free objective's spread over attack seeds at the defaults is about 0.24 x its
    # size (36 cells of the paper's general grid, 3 seeds each: bench/objective_noise.py,
    # bench/results/search/objective_noise.csv); a pick must beat the defaults by two standard
    # deviations of the difference of two fits, 2 x sqrt(2) x 0.24.
    search_margin: ClassVar[float] = 0.68

    def __init__(
        self, config: DLMIAConfig | None = None, *, device: str = "auto", seed: int = 0
    ) -> None:
        super().__init__(config, device=device, seed=seed)
        self.model: DLMIAModel | None = None
        self.scaler: Scaler | None = None
        self.held_out: npt.NDArray[np.bool_] | None = None  # (n_s,) held-out shadow users of fit
        self.on_epoch: Callable[[int], object] | None = None  # after each joint epoch

    @classmethod
    def search_space(cls, config: DLMIAConfig) -> dict[str, Any]:
        """Latent sizes, KL weights (log), alignment weight (with 0), estimator settings (tau,
        period, lambda_w), the per-side norm feature, head mixing and learning rate; the
        defaults lie inside every range. The head mixing is searched as `alpha` and `beta`
        independently (`searched_settings` keeps their sum at most 1)."""
        return {
            "latent_inv": {"choice": [8, 16, 32]},
            "latent_spe": {"choice": [8, 16, 32]},
            "kl_inv": {"loguniform": [1e-4, 1e-1]},
            "kl_spe": {"loguniform": [1e-4, 1e-1]},
            "lambda_align": {"choice": [0.0, 0.1, 1.0, 3.0, 10.0]},
            "tau": {"uniform": [0.6, 0.99]},
            "period": {"choice": [2, 5, 10]},
            "lambda_w": {"loguniform": [0.1, 10.0]},
            "norm_feature": {"choice": ["off", "pooled", "side"]},
            "alpha": {"uniform": [0.0, 0.5]},
            "beta": {"uniform": [0.0, 0.8]},
            "lr": {"loguniform": [1e-4, 1e-2]},
        }

    @classmethod
    def searched_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """A point whose alpha + beta exceeds 1 gets beta = 1 - alpha (a fixed, documented map,
        so every sampled point is a valid setting)."""
        alpha = settings.get("alpha", DLMIAConfig.alpha)
        beta = settings.get("beta", DLMIAConfig.beta)
        return {**settings, "beta": 1.0 - alpha} if alpha + beta > 1 else settings

    def fit(
        self, shadow_vectors: FloatArray, shadow_labels: LabelArray, target_vectors: FloatArray
    ) -> Self:
        """Train on shadow vectors (n_s, d), their labels (n_s,) and unlabelled target (n_t, d).

        Raises:
            DataError: malformed vectors or labels.
            TrainingError: the model's outputs are not finite after training.
        """
        started = time.perf_counter()
        with cpu_threads(self.config.cpu_threads, self.device):
            self._fit(shadow_vectors, shadow_labels, target_vectors)
        self.info["fit_seconds"] = round(time.perf_counter() - started, 3)
        return self

    def _fit(
        self, shadow_vectors: FloatArray, shadow_labels: LabelArray, target_vectors: FloatArray
    ) -> None:
        data = self.prepare(shadow_vectors, shadow_labels, target_vectors)
        model, estimator = self.initial_networks(data)
        self.model = model  # `on_epoch` callbacks read it during training
        generator = torch_generator(self.seed, "dlmia", "train", device=self.device)
        info = Schedule(model, estimator, data, generator, on_epoch=self.on_epoch).run()
        self.finish(model, data, info)

    def prepare(
        self, shadow_vectors: FloatArray, shadow_labels: LabelArray, target_vectors: FloatArray
    ) -> TrainData:
        """Check the inputs, hold out shadow users (`held_out`), fit the input scaling (`scaler`)
        and return the training tensors."""
        config = self.config
        shadow = check_vectors(shadow_vectors, "shadow vectors")
        labels = check_labels(shadow_labels, len(shadow))
        target = check_vectors(target_vectors, "target vectors", dim=shadow.shape[1])
        rng = numpy_rng(self.seed, "dlmia", "val")
        held = stratified_holdout(labels, config.val_fraction, rng)  # (n_s,) held-out users
        self.held_out = held
        self.scaler = scaler = Scaler.fit(shadow, target, config.norm_feature)
        train = shadow[~held]
        shadow_norm, target_norm = scaler.norm(train, "shadow"), scaler.norm(target, "target")
        return TrainData(
            x=self._tensor(np.concatenate([scaler.vectors(train), scaler.vectors(target)])),
            norm=None if shadow_norm is None or target_norm is None
            else self._tensor(np.concatenate([shadow_norm, target_norm])),
            labels=torch.from_numpy(labels[~held]).to(self.device),
            val_x=self._tensor(scaler.vectors(shadow[held])),
            val_norm=self._optional(scaler.norm(shadow[held], "shadow")),
            val_labels=torch.from_numpy(labels[held]).to(self.device),
        )

    def initial_networks(self, data: TrainData) -> tuple[DLMIAModel, WeightEstimator]:
        """The network and weight estimator before training, initialised from the seed."""
        seed_torch(self.seed, "dlmia", "init")
        model = DLMIAModel(data.x.shape[1], self.config).to(self.device)
        return model, WeightEstimator(len(data.x), self.config.lambda_w).to(self.device)

    def finish(self, model: DLMIAModel, data: TrainData, info: dict[str, Any]) -> None:
        """Take the trained `model` and complete `info` (settings, sizes, pseudo-labels kept).

        Raises:
            TrainingError: the model's outputs are not finite.
        """
        self.model = model
        proba = model.proba(data.x, data.norm)  # (n_shadow_train + n_target,)
        _check_finite(proba)
        _, confident = pseudo_labels(proba[data.n_shadow :], self.config.tau)
        info.update(
            settings=cfg.as_dict(self.config),
            n_shadow_train=data.n_shadow,
            n_shadow_val=len(data.val_labels),
            n_target=data.n_target,
            pseudo_labels_kept=int(confident.sum()),
            history={stage: dict(terms) for stage, terms in info["history"].items()},
        )
        self.info = info

    def predict_proba(
        self, vectors: FloatArray, view: TargetView | None = None
    ) -> npt.NDArray[np.float64]:
        """(n,) member probabilities for target-side vectors (n, d); deterministic."""
        if self.model is None or self.scaler is None:
            raise RuntimeError("DLMIAAttack.predict_proba called before fit")
        array = check_vectors(vectors, "vectors", dim=len(self.scaler.mean))
        x = self._tensor(self.scaler.vectors(array))
        norm = self._optional(self.scaler.norm(array, "target"))
        with cpu_threads(self.config.cpu_threads, self.device):
            proba = self.model.proba(x, norm)
        _check_finite(proba)
        return proba.double().cpu().numpy()

    def _tensor(self, array: npt.NDArray[np.float32]) -> torch.Tensor:
        return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float32)).to(self.device)

    def _optional(self, array: npt.NDArray[np.float32] | None) -> torch.Tensor | None:
        return None if array is None else self._tensor(array)


def _check_finite(proba: torch.Tensor) -> None:
    if not torch.isfinite(proba).all():
        raise TrainingError(
            "DL-MIA outputs non-finite member probabilities (training diverged); "
            "lower attack.dlmia.lr or attack.dlmia.grad_clip"
        )
