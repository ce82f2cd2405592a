"""DL-MIA trials side by side (dlmia.attacks.dlmia.side_by_side): each stacked trial ends as its
own lone fit does, up to float rounding, whatever settings it differs in."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
import torch

from dlmia.attacks.dlmia import DLMIAAttack, DLMIAConfig, vmf
from dlmia.attacks.dlmia.encoder import mmd, stacked_mmd
from dlmia.attacks.dlmia.side_by_side import fit_side_by_side
from dlmia.optim import FlatAdam, StackedAdam

SHORT = {"epochs_vae": 2, "epochs_heads": 3, "epochs_joint": 5, "patience": 2, "hidden": 16,
         "batch_size": 48}  # fmt: skip
TRIALS = [  # every stackable setting differs somewhere
    DLMIAConfig(**SHORT),
    DLMIAConfig(**SHORT, latent_inv=8, latent_spe=32, kl_inv=0.05, lambda_align=0.0, period=1,
                lr=3e-3, norm_feature="off", alpha=0.0, beta=0.7),
    DLMIAConfig(**SHORT, latent_inv=32, latent_spe=8, kl_spe=0.02, tau=0.7, lambda_w=5.0,
                norm_feature="pooled", alpha=0.5, beta=0.5, lr=5e-4, period=2),
]  # fmt: skip


@pytest.fixture(scope="module")
def cell() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    direction = rng.normal(size=24)

    def side(n: int) -> tuple[np.ndarray, np.ndarray]:
        labels = rng.integers(0, 2, n)
        vectors = rng.normal(size=(n, 24)) + 0.7 * labels[:, None] * direction
        return vectors.astype(np.float32), labels.astype(np.int64)

    (shadow, labels), (target, _) = side(300), side(260)
    return shadow, labels, target


def lone(config: DLMIAConfig, cell: tuple[np.ndarray, ...]) -> DLMIAAttack:
    shadow, labels, target = cell
    return DLMIAAttack(config, device="cpu", seed=3).fit(shadow, labels, target)


def stacked(configs: list[DLMIAConfig], cell: tuple[np.ndarray, ...], **hooks: object
            ) -> list[DLMIAAttack]:  # fmt: skip
    shadow, labels, target = cell
    attacks = [DLMIAAttack(c, device="cpu", seed=3) for c in configs]
    fit_side_by_side(attacks, shadow, labels, target, **hooks)  # type: ignore[arg-type]
    return attacks


def assert_same_fit(alone: DLMIAAttack, side: DLMIAAttack, target: np.ndarray) -> None:
    assert side.info["chosen_epoch"] == alone.info["chosen_epoch"]
    assert side.info["val_loss"] == pytest.approx(alone.info["val_loss"], rel=1e-4)
    assert side.info["pseudo_labels_kept"] == alone.info["pseudo_labels_kept"]
    assert np.abs(side.predict_proba(target) - alone.predict_proba(target)).max() < 1e-4
    for stage, terms in alone.info["history"].items():
        for term, values in terms.items():
            assert side.info["history"][stage][term] == pytest.approx(values, rel=1e-3, abs=1e-6)


def test_stacked_trials_end_as_their_lone_fits(cell: tuple[np.ndarray, ...]) -> None:
    for alone, side in zip([lone(c, cell) for c in TRIALS], stacked(TRIALS, cell), strict=True):
        assert_same_fit(alone, side, cell[2])
        assert side.info["settings"] == alone.info["settings"]
    assert {a.info["chosen_epoch"].split(":")[0] for a in stacked(TRIALS, cell)} >= {"joint"}


def test_a_trial_stopped_after_an_epoch_ends_as_a_shorter_lone_fit(
    cell: tuple[np.ndarray, ...],
) -> None:
    """Stopping trial 1 (period 1: joint epochs 0, 2, 4, weight epochs between) after epoch 2
    leaves it as a lone fit of three stage-3 epochs, and the others as if it had run on (masked
    rows take no update and draw nothing)."""
    seen: list[tuple[int, int]] = []

    def on_epoch(trial: int, epoch: int) -> bool:
        seen.append((trial, epoch))
        return trial == 1 and epoch == 2

    sides = stacked(TRIALS, cell, on_epoch=on_epoch)
    short = dataclasses.replace(TRIALS[1], epochs_joint=3)
    assert_same_fit(lone(short, cell), sides[1], cell[2])
    for t in (0, 2):
        assert_same_fit(lone(TRIALS[t], cell), sides[t], cell[2])
    assert [epoch for trial, epoch in seen if trial == 1] == [0, 2]


def test_on_epoch_sees_the_trial_s_current_network(cell: tuple[np.ndarray, ...]) -> None:
    shadow, _, _ = cell
    probabilities: dict[int, np.ndarray] = {}
    attacks: list[DLMIAAttack] = []

    def on_epoch(trial: int, epoch: int) -> bool:
        if epoch == 0:
            probabilities[trial] = attacks[trial].predict_proba(shadow[:20])
        return False

    attacks.extend(DLMIAAttack(c, device="cpu", seed=3) for c in TRIALS[:2])
    fit_side_by_side(attacks, *cell, on_epoch=on_epoch)
    assert sorted(probabilities) == [0, 1]
    assert not np.allclose(probabilities[0], probabilities[1])


@pytest.mark.parametrize("change", [{"hidden": 32}, {"batch_size": 64}, {"head": "concat"},
                                    {"spe_dist": "gauss"}, {"use_encoder": False}])
def test_settings_that_cannot_share_a_stack_are_refused(
    change: dict[str, object], cell: tuple[np.ndarray, ...]
) -> None:
    configs = [TRIALS[0], dataclasses.replace(TRIALS[0], **change)]  # type: ignore[arg-type]
    with pytest.raises(ValueError, match="side-by-side"):
        stacked(configs, cell)


def test_trials_of_different_seeds_are_refused(cell: tuple[np.ndarray, ...]) -> None:
    attacks = [DLMIAAttack(TRIALS[0], device="cpu", seed=s) for s in (0, 1)]
    with pytest.raises(ValueError, match="one seed"):
        fit_side_by_side(attacks, *cell)


def test_stacked_adam_rows_step_as_flat_adam_and_masked_rows_stay() -> None:
    torch.manual_seed(0)
    start = [torch.randn(3, 4, 5), torch.randn(3, 2)]
    params = [torch.nn.Parameter(t.clone()) for t in start]
    lr = torch.tensor([1e-2, 3e-3, 1e-1], dtype=torch.float64)
    stacked_opt = StackedAdam(params, lr, weight_decay=1e-3, clip=0.5)
    alone = [[torch.nn.Parameter(t[r].clone()) for t in start] for r in range(3)]
    flats = [FlatAdam(p, float(lr[r]), weight_decay=1e-3, clip=0.5) for r, p in enumerate(alone)]
    active = torch.tensor([True, False, True])
    for _ in range(4):
        weights = [torch.randn(p.shape) for p in params]
        rows = sum((w * p).flatten(1).sum(1) for w, p in zip(weights, params, strict=True))
        stacked_opt.step((rows**2).sum(), active)  # (K,) independent losses
        for r in (0, 2):
            row = sum((w[r] * p).sum() for w, p in zip(weights, alone[r], strict=True)) ** 2
            flats[r].step(row)
    for r in (0, 2):
        for p, q in zip(params, alone[r], strict=True):
            assert torch.allclose(p[r], q, rtol=1e-5, atol=1e-6)
    for p, t in zip(params, start, strict=True):
        assert torch.equal(p[1], t[1])


def test_stacked_mmd_matches_each_trial_s_own_mmd() -> None:
    torch.manual_seed(0)
    sizes = [4, 8, 6]
    latents = torch.zeros(3, 30, 8, dtype=torch.float64)
    for t, size in enumerate(sizes):
        latents[t, :, :size] = torch.randn(30, size, dtype=torch.float64)
    latents.requires_grad_(True)
    scales = (0.25, 1.0, 4.0)
    values = stacked_mmd(latents, 12, torch.tensor(sizes), scales)
    values.sum().backward()
    for t, size in enumerate(sizes):
        own = latents[t, :, :size].detach().clone().requires_grad_(True)
        value = mmd(own[:12], own[12:], scales)
        value.backward()
        assert float(values[t].detach()) == pytest.approx(float(value.detach()), rel=1e-10)
        assert latents.grad is not None
        assert torch.allclose(latents.grad[t, :, :size], own.grad, rtol=1e-8, atol=1e-12)
        assert not latents.grad[t, :, size:].any()


def test_rows_of_wood_s_sampler_draw_as_lone_calls() -> None:
    b = torch.rand(3, 50, dtype=torch.float64) * 0.9
    dims = [2, 8, 33]
    rows = vmf.accepted_eps_rows(b, dims, [torch.Generator().manual_seed(s) for s in range(3)])
    for a, dim in enumerate(dims):
        alone = vmf.accepted_eps(b[a], dim, torch.Generator().manual_seed(a))
        assert torch.allclose(rows[a], alone, rtol=1e-12, atol=1e-12)
