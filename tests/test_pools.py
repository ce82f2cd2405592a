"""Reference pools side by side (dlmia.pools): a pool's sides are exactly the sides `build_side`
builds one by one, whether its kind trains many models at once (LFM on stacked tables, ItemCF
over threads: identical sides; NCF on stacked parameters: the same objective per model, close
lists) or falls back to separate fits (GRU4Rec, Caser); devices and settings group the batched
fits."""

from __future__ import annotations

import dataclasses
from typing import Any

import numpy as np
import pytest
import torch

from dlmia import factorization, pools
from dlmia.attacks.base import PoolRequest
from dlmia.cell import ListOptions, SideChoice, cached_dataset, cell_config, run_cell
from dlmia.data.histories import Histories
from dlmia.data.synthetic import SyntheticConfig
from dlmia.device import resolve_device
from dlmia.factorization import MFSettings, train_mf, train_mf_many
from dlmia.pools import batchable, build_pool, fit_together, pool_groups
from dlmia.recommenders import ncf_stack
from dlmia.recommenders.lfm import LFM
from dlmia.recommenders.ncf import NCF, NeuMFNet
from dlmia.recommenders.ncf_stack import StackedNeuMF
from dlmia.seeding import torch_generator
from dlmia.sides import (
    DatasetSpec,
    PreparedDataset,
    SideOutput,
    SideSpec,
    build_side,
    fit_side,
    side_users,
)
from dlmia.vectors import ItemVectorConfig

SMALL = DatasetSpec(
    name="synthetic",
    synthetic=SyntheticConfig(n_users=360, n_items=200, mean_length=25.0),
    vectors=ItemVectorConfig(epochs=10, device="cpu"),
)
MODEL = ListOptions(k=20, nonmember_lists="model")
QUICK = {
    "ncf": {"epochs": 4, "patience": 2},
    "gru4rec": {"epochs": 2, "hidden_dim": 16, "embedding_dim": 16},
    "caser": {"epochs": 1},
}


def pool_specs(
    kind: str, size: int = 3, device: str = "cpu", online: bool = True
) -> list[SideSpec]:
    """An online pool of `size` `kind` models of the small synthetic dataset."""
    choice = SideChoice(SMALL, kind, QUICK.get(kind, {}))
    config = cell_config(choice, choice, "reference", {}, MODEL, seed=1, device=device,
                         pool=PoolRequest(size, online=online))  # fmt: skip
    return list(config.references)


def small_data(specs: list[SideSpec]) -> PreparedDataset:
    return cached_dataset(specs[0].dataset)


def assert_same_sides(pool: list[SideOutput], separate: list[SideOutput]) -> None:
    assert len(pool) == len(separate)
    for a, b in zip(pool, separate):
        np.testing.assert_array_equal(a.users, b.users)
        np.testing.assert_array_equal(a.labels, b.labels)
        np.testing.assert_array_equal(a.lists, b.lists)
        np.testing.assert_array_equal(a.vectors, b.vectors)
        assert a.statistics.keys() == b.statistics.keys()
        for name in a.statistics:
            np.testing.assert_array_equal(a.statistics[name], b.statistics[name])
        assert not a.info.lists_reused
        assert a.info.served.n_members == b.info.served.n_members


@pytest.fixture(params=[True, False], ids=["stacked", "one-by-one"])
def stacked(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> bool:
    """LFMs trained on stacked tables (as on CUDA or several CPU threads), or one by one (as on
    one CPU thread, this suite's)."""
    monkeypatch.setattr(factorization, "stacks", lambda device: request.param)
    return bool(request.param)


@pytest.mark.parametrize("kind", ["itemcf", "lfm"])
@pytest.mark.parametrize("online", [True, False])
def test_a_batched_pool_builds_exactly_the_separate_sides(
    kind: str, online: bool, stacked: bool
) -> None:
    specs = pool_specs(kind, 4, online=online)
    assert batchable(kind)
    data = small_data(specs)
    assert_same_sides(build_pool(data, specs), [build_side(data, spec) for spec in specs])


def test_stacked_lfms_are_bit_identical_to_their_own_fits(stacked: bool) -> None:
    specs = pool_specs("lfm", 3)
    data = small_data(specs)
    together = fit_together(data, specs)
    for spec, fitted in zip(specs, together):
        alone = fit_side(data, spec).recommender
        np.testing.assert_array_equal(fitted.recommender.catalogue, alone.catalogue)
        for table in ("user_factors", "item_factors"):
            assert torch.equal(getattr(fitted.recommender.model, table),
                               getattr(alone.model, table))  # fmt: skip


def random_histories(n_users: int, n_items: int, seed: int) -> Histories:
    rng = np.random.default_rng(seed)
    lists = [rng.choice(n_items, rng.integers(1, 15), replace=False).tolist()
             for _ in range(n_users)]  # fmt: skip
    return Histories.from_lists(lists, n_items)


@pytest.mark.parametrize("average_repeats", [False, True])
def test_train_mf_many_equals_train_mf_across_sizes_and_stack_groups(
    average_repeats: bool, stacked: bool, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Models of different sizes (so different numbers of steps an epoch), trained in groups
    (a small sample budget splits them), each equal to its own `train_mf`."""
    monkeypatch.setattr(factorization, "_STACK_SAMPLES", 600)
    settings = MFSettings(factors=8, epochs=3, lr=0.05, lr_decay=0.9, l2=0.01, negatives=2,
                          init="normal", init_scale=0.1, batch_size=32,
                          average_repeats=average_repeats)  # fmt: skip
    problems = [random_histories(n, 40 + n, seed=n) for n in (10, 30, 5, 60)]
    def generators() -> list[torch.Generator]:
        return [torch_generator(7, "mf", i) for i in range(len(problems))]
    together = train_mf_many(problems, settings, generators=generators())
    for histories, generator, model in zip(problems, generators(), together):
        alone = train_mf(histories, settings, generator=generator)
        assert torch.equal(model.user_factors, alone.user_factors)
        assert torch.equal(model.item_factors, alone.item_factors)
        assert torch.equal(model.trained_items, alone.trained_items)


@pytest.mark.parametrize("kind", ["gru4rec", "caser"])
def test_a_kind_without_a_batched_fit_falls_back_to_separate_fits(
    kind: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    specs = pool_specs(kind, 2)
    assert not batchable(kind)
    data = small_data(specs)
    built: list[SideSpec] = []
    def spy(data: PreparedDataset, spec: SideSpec, served: Any = None) -> SideOutput:
        built.append(spec)
        return build_side(data, spec, served)
    monkeypatch.setattr(pools, "build_side", spy)
    pool = build_pool(data, specs)
    assert built == specs  # one separate fit per side, in order
    monkeypatch.undo()
    assert_same_sides(pool, [build_side(data, spec) for spec in specs])


def mean_overlap(pool: list[SideOutput], separate: list[SideOutput]) -> float:
    """The mean share of a list's items that the other list holds too."""
    return float(np.mean([
        len(np.intersect1d(x, y)) / len(x)
        for a, b in zip(pool, separate) for x, y in zip(a.lists, b.lists)
    ]))  # fmt: skip


def test_stacked_ncf_losses_are_each_models_own_loss() -> None:
    """The batched forward computes each model's own objective on its own minibatch."""
    specs = pool_specs("ncf", 3)
    data = small_data(specs)
    models, batches = [], []
    for spec in specs:
        fitted = fit_side(data, spec).recommender  # trained: weights that are not the init
        model = fitted.model
        assert isinstance(model, NCF)
        members = fitted.compact(data.histories.rows(side_users(data.parts, spec)[0]))
        generator = torch_generator(0, "test", spec.reference)
        batches.append(next(model.batches(model.training_prefix(members), generator)))
        models.append(model)
    stacked = StackedNeuMF([model.net for model in models])
    with torch.no_grad():
        own = torch.stack([model.loss(batch, generator) for model, batch in zip(models, batches)])
        torch.testing.assert_close(stacked.losses(batches), own, rtol=1e-5, atol=1e-6)
    for r, model in enumerate(models):  # and the stacked weights come back out as they went in
        copy = NeuMFNet(model.net.items.num_embeddings, model.config)
        stacked.unstack(r, copy)
        for (name, a), b in zip(model.net.state_dict().items(), copy.state_dict().values()):
            assert torch.equal(a, b), name


def test_a_stacked_ncf_pool_agrees_with_separate_fits(monkeypatch: pytest.MonkeyPatch) -> None:
    """Not bit for bit (batched products round differently; see ncf_stack), but each model
    starts from its own weights, sees its own minibatches and stops on its own validation.
    (Stacked on the CPU here, which a run does only on CUDA, where it pays.)"""
    monkeypatch.setattr(ncf_stack, "stacking_pays", lambda device: True)
    specs = pool_specs("ncf", 3)
    assert batchable("ncf")
    data = small_data(specs)
    pool, separate = build_pool(data, specs), [build_side(data, spec) for spec in specs]
    for a, b in zip(pool, separate):
        np.testing.assert_array_equal(a.users, b.users)
        np.testing.assert_array_equal(a.labels, b.labels)
        assert a.info.served.epochs_run >= 1 and a.info.served.best_epoch >= 1
    assert mean_overlap(pool, separate) > 0.9


def test_an_ncf_pool_on_a_cpu_is_its_separate_fits() -> None:
    specs = pool_specs("ncf", 2)
    data = small_data(specs)
    assert_same_sides(build_pool(data, specs), [build_side(data, spec) for spec in specs])


def test_pools_group_by_kind_settings_and_device(stacked: bool) -> None:
    lfm, itemcf = pool_specs("lfm", 2), pool_specs("itemcf", 2)
    wider = [dataclasses.replace(s, settings={"factors": 8}) for s in lfm]
    elsewhere = [dataclasses.replace(s, device="auto") for s in lfm]
    specs = [lfm[0], itemcf[0], wider[0], lfm[1], elsewhere[0], itemcf[1], wider[1], elsewhere[1]]
    assert pool_groups(specs) == [[0, 3], [1, 5], [2, 6], [4, 7]]
    data = small_data(lfm)
    assert_same_sides(build_pool(data, specs), [build_side(data, spec) for spec in specs])


def test_a_batched_fit_trains_on_the_specs_device() -> None:
    for device in ("cpu", "auto"):  # auto: CUDA where present, else the CPU
        specs = pool_specs("lfm", 2, device=device)
        for fitted in fit_together(small_data(specs), specs):
            model = fitted.recommender.model
            assert isinstance(model, LFM)
            assert model.user_factors.device.type == resolve_device(device).type
            assert model.item_factors.device.type == resolve_device(device).type


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_a_cuda_pool_agrees_with_separate_cuda_fits() -> None:
    """On CUDA `index_add_` adds a row's updates in no fixed order, so the stacked fit equals
    the separate ones up to float rounding: the lists agree closely, not bit for bit."""
    specs = pool_specs("lfm", 3, device="cuda")
    data = small_data(specs)
    pool, separate = build_pool(data, specs), [build_side(data, spec) for spec in specs]
    assert mean_overlap(pool, separate) > 0.95


def test_a_cell_builds_its_reference_pool_with_build_pool(monkeypatch: pytest.MonkeyPatch) -> None:
    import dlmia.cell

    calls: list[int] = []
    def spy(data: PreparedDataset, specs: list[SideSpec]) -> list[SideOutput]:
        calls.append(len(specs))
        return build_pool(data, specs)
    monkeypatch.setattr(dlmia.cell, "build_pool", spy)
    choice = SideChoice(SMALL, "itemcf")
    config = cell_config(choice, choice, "reference", {"references": 3}, MODEL, seed=0,
                         device="cpu")  # fmt: skip
    result = run_cell(config)
    assert calls == [3]
    assert 0.0 <= result.metrics["roc_auc"] <= 1.0
