"""DL-MIA's three-stage schedule (method.md section 6), on whole minibatch tensors.

1. VAE on shadow-train and target vectors (reconstruction, KLs, MMD alignment); fixed epochs.
2. Heads on the labelled shadow-train vectors with the VAE frozen (sampled latents), early
   stopped on the held-out shadow loss; then D1, the per-sample loss of this "biased" model.
3. Epoch e is a weight phase when `use_weights` and (e // period) is odd, else a joint phase:
   - joint: VAE + heads on weighted attack and reconstruction losses; target vectors are trained
     on with pseudo-labels from the current model's posterior-mean predictions (detached), kept
     where the confidence is >= tau;
   - weight: the current per-sample losses D2 are computed once (model frozen), then the scores p
     and the map w are fit (see estimator.py).

Model selection: after stage 2 and after every joint epoch the held-out shadow loss is measured;
the best state wins, and a stage stops after `patience` of its epochs without improvement (0 =
never early). Without held-out users (`val_fraction` 0) the last state is kept. Target labels
are never an input here. Each step draws one shadow and one target batch of `batch_size`; an
epoch covers the larger side once and cycles the smaller.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from dlmia.attacks.dlmia.config import DLMIAConfig
from dlmia.attacks.dlmia.estimator import WeightEstimator
from dlmia.attacks.dlmia.heads import HeadInputs
from dlmia.attacks.dlmia.model import (
    DLMIAModel,
    TrainData,
    posterior_means,
    pseudo_labels,
    sample_losses,
    slice_inputs,
    validation_loss,
)
from dlmia.optim import FlatAdam

State = dict[str, torch.Tensor]


def cycled_perm(
    n: int, length: int, generator: torch.Generator, device: torch.device
) -> torch.Tensor:
    """(length,) indices in [0, n): whole random permutations back to back, cut to length."""
    perms = [torch.randperm(n, generator=generator, device=device) for _ in range(-(-length // n))]
    return torch.cat(perms)[:length]


def _paired_batches(
    data: TrainData, batch: int, generator: torch.Generator
) -> Iterator[tuple[torch.Tensor, torch.Tensor]]:
    """Per step: shadow ids (b,) and target ids (b,) (offset by n_shadow) covering an epoch."""
    device = data.x.device
    length = max(data.n_shadow, data.n_target)
    shadow = cycled_perm(data.n_shadow, length, generator, device).split(batch)
    target = (cycled_perm(data.n_target, length, generator, device) + data.n_shadow).split(batch)
    return zip(shadow, target, strict=True)


def final_losses(history: dict[str, dict[str, list[float]]]) -> dict[str, dict[str, float]]:
    """stage -> term -> the last epoch's mean, from a fit's per-epoch loss history."""
    return {stage: {term: values[-1] for term, values in terms.items()}
            for stage, terms in history.items()}  # fmt: skip


class LossSums:
    """An epoch's per-term loss sums, kept on the device as one vector: one op per step (summing
    there avoids a sync per step), one transfer per epoch. Every step adds the same terms."""

    def __init__(self) -> None:
        self.terms: tuple[str, ...] = ()
        self.total: torch.Tensor | None = None
        self.steps = 0

    @torch.no_grad()
    def add(self, **values: torch.Tensor) -> None:
        """Add one step's scalar losses (term -> 0-d tensor)."""
        stacked = torch.stack(list(values.values()))  # (n_terms,)
        if self.total is None:
            self.terms, self.total = tuple(values), stacked
        else:
            assert tuple(values) == self.terms, "every step adds the same terms"
            self.total += stacked
        self.steps += 1

    def means(self) -> dict[str, float]:
        """term -> mean over the steps added (empty when none were)."""
        if self.total is None:
            return {}
        return dict(zip(self.terms, (self.total / self.steps).tolist(), strict=True))


def _snapshot(module: nn.Module) -> State:
    return {k: v.detach().clone() for k, v in module.state_dict().items()}


class Schedule:
    """Runs the three stages on `model` and `estimator`; `info` collects timings and losses
    (`vae_seconds`, `heads_seconds`, `joint_seconds`, per-epoch `history`, `final_losses`)."""

    def __init__(
        self,
        model: DLMIAModel,
        estimator: WeightEstimator,
        data: TrainData,
        generator: torch.Generator,
        on_epoch: Callable[[int], object] | None = None,
    ) -> None:
        self.model, self.estimator, self.data, self.generator = model, estimator, data, generator
        self.on_epoch = on_epoch  # called after each joint epoch (Tune reports)
        self.config: DLMIAConfig = model.config
        self.history: dict[str, dict[str, list[float]]] = defaultdict(lambda: defaultdict(list))
        self.info: dict[str, Any] = {"history": self.history}
        self.best: tuple[float, State, str] | None = None  # (held-out loss, state, label)
        self.d1 = torch.zeros(0)

    def run(self) -> dict[str, Any]:
        """All three stages; loads the selected state into the model and returns `info`."""
        for name, stage in [
            ("vae", self.stage_vae), ("heads", self.stage_heads), ("joint", self.stage_joint)
        ]:
            started = time.perf_counter()
            stage()
            self.info[f"{name}_seconds"] = round(time.perf_counter() - started, 3)
        if self.best is None:  # nothing was trained after stage 1: the current state
            self._consider("vae", patience_left=0)
        assert self.best is not None
        val, state, label = self.best
        self.model.load_state_dict(state)
        self.info.update(chosen_epoch=label, val_loss=None if math.isnan(val) else val)
        self.info["final_losses"] = final_losses(self.history)
        return self.info

    def _record(self, stage: str, sums: LossSums) -> None:
        for term, mean in sums.means().items():
            self.history[stage][term].append(mean)

    def _consider(self, label: str, *, patience_left: int) -> int:
        """Keep the model if its held-out loss is the best so far; returns the patience left."""
        val = validation_loss(self.model, self.data)
        if math.isnan(val):  # no held-out users: the last state is the choice
            self.best = (val, _snapshot(self.model), label)
            return patience_left
        if self.best is None or val < self.best[0]:
            self.best = (val, _snapshot(self.model), label)
            return self.config.patience
        return patience_left - 1

    def stage_vae(self) -> None:
        """Stage 1: the VAE alone on shadow-train and target vectors."""
        vae = self.model.vae
        if vae is None or self.config.epochs_vae == 0:
            return
        config, data = self.config, self.data
        optimizer = FlatAdam(vae.parameters(), config.lr, config.weight_decay, config.grad_clip)
        for _ in range(config.epochs_vae):
            sums = LossSums()
            for ids_s, ids_t in _paired_batches(data, config.batch_size, self.generator):
                ids = torch.cat([ids_s, ids_t])
                _, _, terms = self.model.forward_train(
                    data.x[ids], None, len(ids_s), self.generator
                )
                assert terms is not None
                loss = terms.total(config)
                optimizer.step(loss)
                sums.add(total=loss, recon=terms.recon.mean(), kl_inv=terms.kl_inv,
                         kl_spe=terms.kl_spe, mmd=terms.mmd)
            self._record("vae", sums)

    def _frozen_inputs(self, ids: torch.Tensor) -> HeadInputs:
        """Sampled head inputs for samples ids (B,) with the VAE frozen."""
        x, norm = self.data.x[ids], self.data.norm_at(ids)
        with torch.no_grad():
            inputs, _ = self.model.sample_inputs(x, norm, self.generator)
        return inputs

    def stage_heads(self) -> None:
        """Stage 2: the heads on labelled shadow vectors, VAE frozen; then record D1."""
        config, data = self.config, self.data
        optimizer = FlatAdam(
            self.model.heads.parameters(), config.lr, config.weight_decay, config.grad_clip
        )
        patience = config.patience
        for epoch in range(config.epochs_heads):
            sums = LossSums()
            order = torch.randperm(data.n_shadow, generator=self.generator, device=data.x.device)
            for ids in order.split(config.batch_size):
                loss = self.model.heads.loss(self._frozen_inputs(ids), data.labels[ids]).mean()
                optimizer.step(loss)
                sums.add(attack=loss)
            self._record("heads", sums)
            patience = self._consider(f"heads:{epoch}", patience_left=patience)
            if config.patience and patience <= 0:
                break
        if self.best is not None:
            self.model.load_state_dict(self.best[1])  # stage 3 starts from the best stage-2 model
        self.d1 = sample_losses(self.model, self.data)  # (n,) biased losses, kept by sample id

    def stage_joint(self) -> None:
        """Stage 3: alternating joint and weight phases."""
        config = self.config
        optimizer = FlatAdam(
            self.model.parameters(), config.lr, config.weight_decay, config.grad_clip
        )
        est_optimizer = FlatAdam(
            self.estimator.parameters(), config.lr_estimator, clip=config.grad_clip
        )
        patience = config.patience
        for epoch in range(config.epochs_joint):
            if config.use_weights and (epoch // config.period) % 2 == 1:
                self._weight_epoch(est_optimizer)
                continue
            self._joint_epoch(optimizer)
            patience = self._consider(f"joint:{epoch}", patience_left=patience)
            if self.on_epoch is not None:
                self.on_epoch(epoch)
            if config.patience and patience <= 0:
                break

    def _joint_epoch(self, optimizer: FlatAdam) -> None:
        config, data = self.config, self.data
        sums = LossSums()
        for ids_s, ids_t in _paired_batches(data, config.batch_size, self.generator):
            ids = torch.cat([ids_s, ids_t])
            n_s, values = len(ids_s), {}
            weights = (
                self.estimator.weights(ids) if config.use_weights
                else torch.ones(len(ids), device=ids.device)
            )  # (2b,) detached, mean 1
            x, norm = data.x[ids], data.norm_at(ids)
            inputs, post, terms = self.model.forward_train(x, norm, n_s, self.generator)
            shadow_inputs = slice_inputs(inputs, slice(0, n_s))
            shadow_ce = self.model.heads.loss(shadow_inputs, data.labels[ids_s])
            attack = (weights[:n_s] * shadow_ce).mean()
            if config.use_pseudo_labels:
                with torch.no_grad():  # at the posterior means this step already computed
                    means = slice_inputs(posterior_means(x, post, norm), slice(n_s, None))
                    proba = self.model.heads.proba(means)  # (b,) = model.proba of the rows
                labels, keep = pseudo_labels(proba, config.tau)
                target_ce = self.model.heads.loss(slice_inputs(inputs, slice(n_s, None)), labels)
                attack = attack + (weights[n_s:] * keep * target_ce).mean()
                values["kept_fraction"] = keep.float().mean()
            loss = attack if terms is None else attack + terms.total(config, weights)
            optimizer.step(loss)
            values.update(total=loss, attack=attack)
            if terms is not None:
                values.update(recon=terms.recon.mean(), mmd=terms.mmd)
            sums.add(**values)
        self._record("joint", sums)

    def _weight_epoch(self, optimizer: FlatAdam) -> None:
        d2 = sample_losses(self.model, self.data)  # (n,) current losses, model frozen
        sums = LossSums()
        n = self.data.x.shape[0]
        order = torch.randperm(n, generator=self.generator, device=self.data.x.device)
        for ids in order.split(2 * self.config.batch_size):
            loss = self.estimator.loss(ids, self.d1[ids], d2[ids])
            optimizer.step(loss)
            sums.add(estimator=loss)
        self._record("weight", sums)
