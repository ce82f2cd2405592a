"""Fit K DL-MIA trials of one cell as one stacked model (stacked.py), each as if it ran alone.

A search's trials share the cell's vectors, the seed and every structural setting; one step of
a lone fit is ~2 ms of Python and dispatch around tensors of 256 x 100, so K trials in one
batched step cost little more than one. Each trial keeps everything a lone fit has: its own
initial network (built by `DLMIAAttack.initial_networks`), its own generator and draws in the
same order, its own held-out selection, early stopping and stage-3 phases (`period`), and
`on_epoch` after each of its joint epochs, where a search may stop it (ASHA). A stopped or
waiting trial is masked: its row takes no update and draws nothing.

Which trials can share a stack: `stacked.stackable`.
"""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from dlmia.attacks.base import FloatArray, LabelArray
from dlmia.attacks.dlmia.attack import DLMIAAttack, cpu_threads
from dlmia.attacks.dlmia.config import DLMIAConfig
from dlmia.attacks.dlmia.encoder import gauss_kl, reconstruction_error, stacked_mmd
from dlmia.attacks.dlmia.model import TrainData, mixture_nll, own_label_losses, pseudo_labels
from dlmia.attacks.dlmia.schedule import cycled_perm, final_losses
from dlmia.attacks.dlmia.stacked import STACKABLE, NetView, Posteriors, StackedNet, stackable
from dlmia.optim import StackedAdam
from dlmia.seeding import torch_generator

EpochHook = Callable[[int, int], bool]  # (trial, joint epoch) -> stop this trial now


class StackedData:
    """The K trials' training tensors: the vectors are shared, the norm feature is per trial
    (its statistics follow each trial's `norm_feature`; zeros where it is off)."""

    def __init__(self, trials: Sequence[TrainData]) -> None:
        first = trials[0]
        self.x, self.labels, self.val_x = first.x, first.labels, first.val_x
        self.val_labels = first.val_labels
        self.norm = _stacked_norms([t.norm for t in trials], first.x)  # (K, n, 1)
        self.val_norm = _stacked_norms([t.val_norm for t in trials], first.val_x)  # (K, n_val, 1)
        self.n_shadow, self.n = first.n_shadow, len(first.x)

    def rows(self, view: NetView, ids: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Vectors (A, B, d) and norm features (A, B, 1) of samples ids (A, B) of the view's
        trials."""
        return self.x[ids], view.pick(self.norm).gather(1, ids.unsqueeze(-1))


def _stacked_norms(norms: Sequence[torch.Tensor | None], like: torch.Tensor) -> torch.Tensor:
    zeros = like.new_zeros(len(like), 1)
    return torch.stack([zeros if norm is None else norm for norm in norms])


class StackedSchedule:
    """The three stages of schedule.Schedule for K trials at once. Each step runs a view of
    the trials still training in that stage or phase (all K: no gathering)."""

    def __init__(
        self,
        net: StackedNet,
        data: StackedData,
        configs: Sequence[DLMIAConfig],
        generators: Sequence[torch.Generator],
        on_epoch: EpochHook | None = None,
    ) -> None:
        self.net, self.data, self.configs, self.generators = net, data, list(configs), generators
        self.config = configs[0]  # the shared settings
        self.on_epoch = on_epoch
        self.k = len(configs)
        self.device = device = data.x.device
        self.lr = torch.tensor([c.lr for c in configs], dtype=torch.float64, device=device)
        self.weights = {
            key: torch.tensor([getattr(c, key) for c in configs], device=device)
            for key in ("kl_inv", "kl_spe", "lambda_align", "tau", "lambda_w")
        }
        self.sizes = torch.tensor([c.latent_inv for c in configs], device=device)
        self.model_params = [*net.vae_parameters(), *net.head_parameters()]
        self.best_val = [math.inf] * self.k
        self.best_label: list[str | None] = [None] * self.k
        self.best_state = [p.detach().clone() for p in self.model_params]
        self.patience = [self.config.patience] * self.k
        self.d1 = torch.zeros(0)
        self.history: list[dict[str, dict[str, list[float]]]] = [
            defaultdict(lambda: defaultdict(list)) for _ in configs
        ]
        self.seconds: dict[str, float] = {}

    def run(self) -> list[dict[str, Any]]:
        """All three stages; leaves each trial's selected state in its row; one info per trial."""
        for name, stage in [
            ("vae", self.stage_vae), ("heads", self.stage_heads), ("joint", self.stage_joint)
        ]:
            started = time.perf_counter()
            stage()
            self.seconds[f"{name}_seconds"] = round(time.perf_counter() - started, 3)
        unselected = [t for t in range(self.k) if self.best_label[t] is None]
        if unselected:  # nothing was trained after stage 1: the current state
            self._consider(unselected, "vae")
        self._restore_best(range(self.k))
        return [self._info(t) for t in range(self.k)]

    def _info(self, t: int) -> dict[str, Any]:
        history = self.history[t]
        val = self.best_val[t]
        return {
            "history": history, **self.seconds, "chosen_epoch": self.best_label[t],
            "val_loss": None if math.isnan(val) or math.isinf(val) else val,
            "final_losses": final_losses(history),
        }  # fmt: skip

    def _sums(self, rows: int) -> dict[str, torch.Tensor]:
        """An epoch's per-term loss sums, one (rows,) vector per term, kept on the device."""
        return defaultdict(lambda: torch.zeros(rows, device=self.device))

    def _view(self, trials: Sequence[int]) -> NetView:
        return self.net.view(None if len(trials) == self.k else trials)

    def _mask(self, trials: Sequence[int]) -> torch.Tensor:
        mask = torch.zeros(self.k, dtype=torch.bool, device=self.device)
        mask[list(trials)] = True
        return mask

    def _orders(self, n: int, length: int, trials: Sequence[int]) -> torch.Tensor:
        """(A, length) sample orders of the trials: whole random permutations of range(n) back
        to back, from each trial's generator."""
        return torch.stack([cycled_perm(n, length, self.generators[t], self.device)
                            for t in trials])  # fmt: skip

    def _paired_steps(self, trials: Sequence[int]) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """Per step: shadow ids (A, b) and target ids (A, b), as schedule's paired batches."""
        data, batch = self.data, self.config.batch_size
        n_target = data.n - data.n_shadow
        length = max(data.n_shadow, n_target)
        shadow = self._orders(data.n_shadow, length, trials).split(batch, dim=1)
        target = (self._orders(n_target, length, trials) + data.n_shadow).split(batch, dim=1)
        return list(zip(shadow, target, strict=True))

    def _record(self, stage: str, trials: Sequence[int], sums: dict[str, torch.Tensor],
                steps: int) -> None:  # fmt: skip
        means = {term: (total / steps).tolist() for term, total in sums.items()}
        for a, t in enumerate(trials):
            for term, values in means.items():
                self.history[t][stage][term].append(values[a])

    def _vae_terms(self, view: NetView, x: torch.Tensor, n_s: int) -> VAEStep:
        """Sampled latents and the VAE terms of the batch x (A, B, d) whose first n_s rows are
        shadow."""
        post = view.encode(x)
        z_inv, z_spe = view.sample(post, self.generators)
        recon = reconstruction_error(x, view.decode(z_inv, z_spe))  # (A, B)
        kl_inv = gauss_kl(post.mu_inv, post.logvar_inv).mean(-1)  # (A,)
        align = view.pick(self.weights["lambda_align"])
        mmd = stacked_mmd(post.mu_inv, n_s, view.pick(self.sizes), self.config.mmd_scales)
        return VAEStep(post, z_inv, z_spe, recon, kl_inv, view.kl_spe(post.kappa).mean(-1),
                       mmd * (align != 0), align)  # fmt: skip

    def _vae_loss(self, view: NetView, step: VAEStep, recon: torch.Tensor) -> torch.Tensor:
        """(A,) VAE losses: mean of the (weighted) recon (A, B) plus the weighted KLs and MMD."""
        kl_inv, kl_spe = view.pick(self.weights["kl_inv"]), view.pick(self.weights["kl_spe"])
        return recon.mean(-1) + kl_inv * step.kl_inv + kl_spe * step.kl_spe + (
            step.align * step.mmd
        )

    def stage_vae(self) -> None:
        """Stage 1: the VAEs alone on shadow-train and target vectors."""
        config, trials = self.config, list(range(self.k))
        if config.epochs_vae == 0:
            return
        optimizer = StackedAdam(self.net.vae_parameters(), self.lr, config.weight_decay,
                                config.grad_clip)  # fmt: skip
        every = self._mask(trials)
        for _ in range(config.epochs_vae):
            sums = self._sums(self.k)
            steps = self._paired_steps(trials)
            for ids_s, ids_t in steps:
                view = self._view(trials)
                step = self._vae_terms(view, self.data.x[torch.cat([ids_s, ids_t], dim=1)],
                                       ids_s.shape[1])  # fmt: skip
                loss = self._vae_loss(view, step, step.recon)  # (K,)
                optimizer.step(loss.sum(), every)
                with torch.no_grad():
                    for term, value in (("total", loss), ("recon", step.recon.mean(-1)),
                                        ("kl_inv", step.kl_inv), ("kl_spe", step.kl_spe),
                                        ("mmd", step.mmd)):
                        sums[term] += value  # fmt: skip
            self._record("vae", trials, sums, len(steps))

    @torch.no_grad()
    def _val_losses(self, trials: Sequence[int]) -> list[float]:
        """Each trial's mean -log P(true label) on the held-out shadow vectors (nan: none)."""
        data = self.data
        if data.val_labels.numel() == 0:
            return [math.nan] * len(trials)
        view = self._view(trials)
        proba = view.proba(data.val_x.expand(len(trials), -1, -1), view.pick(data.val_norm))
        return mixture_nll(proba, data.val_labels.expand(len(trials), -1)).mean(-1).tolist()

    def _consider(self, trials: Sequence[int], label: str) -> None:
        """Keep each trial's state where its held-out loss is its best so far; patience."""
        better = []
        for t, loss in zip(trials, self._val_losses(trials), strict=True):
            if math.isnan(loss) or self.best_label[t] is None or loss < self.best_val[t]:
                self.best_val[t], self.best_label[t] = loss, label
                self.patience[t] = self.config.patience
                better.append(t)
            else:
                self.patience[t] -= 1
        if better:
            rows = self._mask(better)
            for best, p in zip(self.best_state, self.model_params, strict=True):
                best[rows] = p.detach()[rows]

    def _restore_best(self, trials: Sequence[int]) -> None:
        rows = self._mask([t for t in trials if self.best_label[t] is not None])
        with torch.no_grad():
            for best, p in zip(self.best_state, self.model_params, strict=True):
                p[rows] = best[rows]

    def _stopped(self, trials: Sequence[int]) -> set[int]:
        return {t for t in trials if self.config.patience and self.patience[t] <= 0}

    def stage_heads(self) -> None:
        """Stage 2: the heads on labelled shadow vectors, VAEs frozen; then D1."""
        config, data = self.config, self.data
        optimizer = StackedAdam(self.net.head_parameters(), self.lr, config.weight_decay,
                                config.grad_clip)  # fmt: skip
        self.patience = [config.patience] * self.k
        active = list(range(self.k))
        for epoch in range(config.epochs_heads):
            if not active:
                break
            sums = torch.zeros(len(active), device=self.device)
            batches = self._orders(data.n_shadow, data.n_shadow, active).split(
                config.batch_size, dim=1
            )
            mask = self._mask(active)
            for ids in batches:
                view = self._view(active)
                x, norm = data.rows(view, ids)
                with torch.no_grad():
                    post = view.encode(x)
                    z_inv, z_spe = view.sample(post, self.generators)
                logits = view.logits(x, z_inv, z_spe, norm)
                loss = view.head_loss(logits, data.labels[ids]).mean(-1)  # (A,)
                optimizer.step(loss.sum(), mask)
                sums += loss.detach()
            self._record("heads", active, {"attack": sums}, len(batches))
            self._consider(active, f"heads:{epoch}")
            stopped = self._stopped(active)
            active = [t for t in active if t not in stopped]
        self._restore_best(range(self.k))
        self.d1 = self._sample_losses(list(range(self.k)))

    @torch.no_grad()
    def _sample_losses(self, trials: Sequence[int]) -> torch.Tensor:
        """(A, n) each trial's attack loss of every training sample (model.sample_losses)."""
        data, view = self.data, self._view(trials)
        proba = view.proba(data.x.expand(len(trials), -1, -1), view.pick(data.norm))  # (A, n)
        return own_label_losses(proba, data.labels)

    def stage_joint(self) -> None:
        """Stage 3: alternating joint and weight phases, each trial on its own period."""
        config = self.config
        optimizer = StackedAdam(self.model_params, self.lr, config.weight_decay, config.grad_clip)
        estimator = StackedAdam(
            self.net.estimator_parameters(),
            torch.full((self.k,), config.lr_estimator, dtype=torch.float64),
            clip=config.grad_clip,
        )
        self.patience = [config.patience] * self.k
        active = list(range(self.k))
        for epoch in range(config.epochs_joint):
            weighing = [t for t in active if config.use_weights
                        and (epoch // self.configs[t].period) % 2 == 1]  # fmt: skip
            joint = [t for t in active if t not in weighing]
            if weighing:
                self._weight_epoch(estimator, weighing)
            if not joint:
                continue
            self._joint_epoch(optimizer, joint)
            self._consider(joint, f"joint:{epoch}")
            stop = self._stopped(joint)
            if self.on_epoch is not None:
                stop |= {t for t in joint if self.on_epoch(t, epoch)}
            active = [t for t in active if t not in stop]

    def _joint_epoch(self, optimizer: StackedAdam, trials: Sequence[int]) -> None:
        config, data = self.config, self.data
        mask = self._mask(trials)
        sums = self._sums(len(trials))
        steps = self._paired_steps(trials)
        for ids_s, ids_t in steps:
            view = self._view(trials)
            ids, n_s = torch.cat([ids_s, ids_t], dim=1), ids_s.shape[1]
            with torch.no_grad():
                weights = (view.sample_weights(ids) if config.use_weights
                           else torch.ones(ids.shape, device=ids.device))  # fmt: skip
            x, norm = data.rows(view, ids)
            step = self._vae_terms(view, x, n_s)
            attack = self._attack_loss(view, step, x, norm, data.labels[ids_s], weights, sums)
            loss = attack + self._vae_loss(view, step, weights * step.recon)  # (A,)
            optimizer.step(loss.sum(), mask)
            with torch.no_grad():
                for term, value in (("total", loss), ("attack", attack),
                                    ("recon", step.recon.mean(-1)), ("mmd", step.mmd)):
                    sums[term] += value  # fmt: skip
        self._record("joint", trials, sums, len(steps))

    def _attack_loss(
        self, view: NetView, step: VAEStep, x: torch.Tensor, norm: torch.Tensor,
        labels: torch.Tensor, weights: torch.Tensor, sums: dict[str, torch.Tensor],
    ) -> torch.Tensor:  # fmt: skip
        """(A,) weighted cross-entropy of the shadow rows with their labels (A, b), plus that of
        the target rows with the model's confident pseudo-labels (at the posterior means)."""
        n_s = labels.shape[1]
        logits = view.logits(x, step.z_inv, step.z_spe, norm)  # (A, 2b, 2) each
        if not self.config.use_pseudo_labels:
            ce = view.head_loss([lg[:, :n_s] for lg in logits], labels)
            return (weights[:, :n_s] * ce).mean(-1)
        with torch.no_grad():
            part = slice(n_s, None)
            proba = view.head_proba(view.logits(
                x[:, part], step.post.mu_inv[:, part], step.post.mu_spe[:, part], norm[:, part]
            ))  # (A, b)
        pseudo, keep = pseudo_labels(proba, view.pick(self.weights["tau"])[:, None])
        ce = view.head_loss(logits, torch.cat([labels, pseudo], dim=1))
        sums["kept_fraction"] += keep.float().mean(-1)
        return (weights[:, :n_s] * ce[:, :n_s]).mean(-1) + (
            weights[:, n_s:] * keep * ce[:, n_s:]
        ).mean(-1)

    def _weight_epoch(self, optimizer: StackedAdam, trials: Sequence[int]) -> None:
        data = self.data
        d2 = self._sample_losses(trials)  # (A, n)
        d1 = self.d1[trials]
        mask = self._mask(trials)
        sums = torch.zeros(len(trials), device=self.device)
        batches = self._orders(data.n, data.n, trials).split(2 * self.config.batch_size, dim=1)
        for ids in batches:
            view = self._view(trials)
            p = torch.sigmoid(view.theta.gather(1, ids))  # (A, B)
            d1_ids, d2_ids = d1.gather(1, ids), d2.gather(1, ids)
            fit = (d1_ids / p - d2_ids).square().mean(-1)
            w = view.raw_weights(p.detach())
            lambda_w = view.pick(self.weights["lambda_w"])
            paced = (w * d2_ids).mean(-1) + lambda_w * (w - 1).square().mean(-1)
            loss = fit + paced  # (A,)
            optimizer.step(loss.sum(), mask)
            sums += loss.detach()
        self._record("weight", trials, {"estimator": sums}, len(batches))


@dataclass(frozen=True)
class VAEStep:
    """One step's posteriors, samples and VAE terms for A trials."""

    post: Posteriors
    z_inv: torch.Tensor  # (A, B, Mi)
    z_spe: torch.Tensor  # (A, B, Ms)
    recon: torch.Tensor  # (A, B) per-sample reconstruction error
    kl_inv: torch.Tensor  # (A,) mean invariant KL
    kl_spe: torch.Tensor  # (A,) mean specific KL
    mmd: torch.Tensor  # (A,) shadow-target MMD (0 where the alignment weight is 0)
    align: torch.Tensor  # (A,) alignment weights


def fit_side_by_side(
    attacks: Sequence[DLMIAAttack],
    shadow_vectors: FloatArray,
    shadow_labels: LabelArray,
    target_vectors: FloatArray,
    on_epoch: EpochHook | None = None,
) -> None:
    """Fit every attack on the same cell as one stacked model; each ends as its own `fit` leaves
    it, up to float rounding. `on_epoch(t, e)`
    runs after trial t's joint epoch e, with `attacks[t].model` holding its current network;
    True stops that trial there.

    Raises:
        ValueError: the attacks differ in seed, device or a setting that cannot be stacked.
        DataError, TrainingError: as `DLMIAAttack.fit`.
    """
    configs = [a.config for a in attacks]
    if len({(a.seed, str(a.device)) for a in attacks}) > 1 or not stackable(configs):
        raise ValueError(
            "side-by-side trials need one seed, one device and settings that differ only in "
            f"{sorted(STACKABLE)} (stacked.stackable)"
        )
    first = attacks[0]
    started = time.perf_counter()
    with cpu_threads(first.config.cpu_threads, first.device):
        trials = [a.prepare(shadow_vectors, shadow_labels, target_vectors) for a in attacks]
        networks = [a.initial_networks(data) for a, data in zip(attacks, trials, strict=True)]
        net = StackedNet(trials[0].x.shape[1], configs, len(trials[0].x)).to(first.device)
        for t, (model, estimator) in enumerate(networks):
            net.load(t, model, estimator)
            attacks[t].model = model
        generators = [torch_generator(a.seed, "dlmia", "train", device=a.device) for a in attacks]

        def hook(t: int, epoch: int) -> bool:
            net.store(t, networks[t][0])
            return on_epoch is not None and on_epoch(t, epoch)

        schedule = StackedSchedule(net, StackedData(trials), configs, generators,
                                   None if on_epoch is None else hook)  # fmt: skip
        infos = schedule.run()
        seconds = round(time.perf_counter() - started, 3)
        for t, (attack, info) in enumerate(zip(attacks, infos, strict=True)):
            model = networks[t][0]
            net.store(t, model)
            attack.finish(model, trials[t], {**info, "stacked": len(attacks)})
            attack.info["fit_seconds"] = seconds

