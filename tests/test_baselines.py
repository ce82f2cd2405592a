"""The training-free baselines (norm, list-frequency) and the item-vector coverage settings."""

from __future__ import annotations

import dataclasses
import inspect

import numpy as np
import pytest

from dlmia.attacks import make_attack
from dlmia.attacks.base import TargetView
from dlmia.attacks.baselines import ListFrequencyAttack, NormAttack
from dlmia.cell import ListOptions, SideChoice, cell_config, run_cell
from dlmia.data.synthetic import SyntheticConfig
from dlmia.errors import ConfigError
from dlmia.sides import DatasetSpec, ServedLists, build_side, prepare_dataset, seeded
from dlmia.vectors import ItemVectorConfig

SMALL = DatasetSpec(
    name="synthetic",
    synthetic=SyntheticConfig(n_users=360, n_items=200, mean_length=25.0),
    vectors=ItemVectorConfig(epochs=10, device="cpu"),
)


def test_norm_ranks_short_difference_vectors_as_members() -> None:
    vectors = np.array([[3, 0], [0.1, 0], [1, 1], [0, 0.5]], np.float32)
    attack = NormAttack(device="cpu").fit(
        np.zeros((4, 2), np.float32), np.array([1, 0, 1, 0]), vectors
    )
    proba = attack.predict_proba(vectors)
    assert np.argsort(proba).tolist() == [0, 2, 3, 1]  # longest first, shortest last
    assert proba.min() > 0 and proba.max() == 1.0  # percentile ranks


def test_list_frequency_calls_the_shared_list_a_non_member() -> None:
    popular = [0, 1, 2, 3]
    lists = np.array([popular, popular, popular, [0, 7, 8, 9], [4, 5, 6, 1]], np.int32)
    proba = ListFrequencyAttack(device="cpu").predict_proba(
        np.zeros((5, 3), np.float32), TargetView(lists=lists)
    )
    assert proba[3:].min() > proba[:3].max()  # personal lists are rarer than the popular one
    assert len(set(proba[:3])) == 1  # the same list, the same score


def test_list_frequency_counts_an_item_once_per_list() -> None:
    repeated = np.array([[1, 1, 1, 2], [2, 3, 4, 5], [6, 7, 8, 9]], np.int32)
    attack = ListFrequencyAttack(device="cpu")
    share_of_2 = attack.score(np.zeros((3, 1), np.float32), TargetView(lists=repeated))
    # item 1 is on 1 of 3 lists (not 3), item 2 on 2 of 3: user 0 = -(3 * 1/3 + 2/3) / 4
    assert share_of_2[0] == pytest.approx(-(3 / 3 + 2 / 3) / 4)


def test_list_frequency_needs_lists() -> None:
    with pytest.raises(ConfigError, match="needs the target users' top-k lists"):
        ListFrequencyAttack(device="cpu").predict_proba(np.zeros((3, 2), np.float32))


@pytest.mark.parametrize("name", ["norm", "list-frequency"])
def test_baselines_read_no_shadow_label(name: str) -> None:
    rng = np.random.default_rng(0)
    shadow, target = (
        rng.normal(size=(40, 5)).astype(np.float32),
        rng.normal(size=(30, 5)).astype(np.float32),
    )
    lists = rng.integers(0, 20, (30, 6))
    labels = np.arange(40) % 2
    first = make_attack(name, device="cpu").fit(shadow, labels, target)
    flipped = make_attack(name, device="cpu").fit(shadow, 1 - labels, target)
    assert np.array_equal(
        first.predict_proba(target, TargetView(lists=lists)),
        flipped.predict_proba(target, TargetView(lists=lists)),
    )
    assert first.info == {"trained": False, "n_shadow_used": 0}


@pytest.mark.parametrize("name", ["norm", "list-frequency"])
def test_baselines_run_as_cells_and_see_the_popular_policy(name: str) -> None:
    """Under `popular`, non-members share one list: both baselines find the members."""
    config = cell_config(
        SideChoice(SMALL, "lfm"), SideChoice(SMALL, "itemcf"), name, {}, ListOptions(k=20), seed=0,
        device="cpu",
    )
    result = run_cell(config)
    assert result.metrics["roc_auc"] > 0.8
    assert (
        result.metrics["roc_auc_low"]
        <= result.metrics["roc_auc"]
        <= result.metrics["roc_auc_high"]
    )


def test_list_frequency_is_near_chance_under_the_model_policy() -> None:
    """Under `model`, everyone's list comes from the same recommender: nothing shared to find."""
    config = cell_config(
        SideChoice(SMALL, "lfm"), SideChoice(SMALL, "itemcf"), "list-frequency", {},
        ListOptions(k=20, nonmember_lists="model"), seed=0, device="cpu",
    )
    assert abs(run_cell(config).metrics["roc_auc"] - 0.5) < 0.15


def test_all_histories_vectors_cover_every_listed_item() -> None:
    coverage = {}
    for fit_on in ("vectorization", "all-histories"):
        spec = seeded(
            dataclasses.replace(
                SMALL, vectors=dataclasses.replace(SMALL.vectors, fit_on=fit_on)
            ),
            0,
        )
        data = prepare_dataset(spec)
        config = cell_config(
            SideChoice(spec, "itemcf"), SideChoice(spec, "itemcf"), "norm", {}, ListOptions(k=20),
            0, "cpu",
        )
        info = build_side(data, config.target).info
        coverage[fit_on] = (
            info.history_coverage, info.list_coverage, data.stats["n_items_with_vector"]
        )
    assert coverage["all-histories"][:2] == (1.0, 1.0)
    assert coverage["all-histories"][2] >= coverage["vectorization"][2]


def test_membership_labels_cannot_reach_the_item_vectors() -> None:
    """The vectors come from the dataset spec alone; member halves are drawn after them."""
    assert list(inspect.signature(prepare_dataset).parameters) == ["spec"]
    spec = dataclasses.replace(
        SMALL, vectors=dataclasses.replace(SMALL.vectors, fit_on="all-histories")
    )
    choice = SideChoice(seeded(spec, 0), "itemcf")  # pinned seeds: only the side seed varies
    sides = [
        cell_config(choice, choice, "norm", {}, ListOptions(k=20), seed, "cpu").target
        for seed in (0, 1)
    ]
    data = [prepare_dataset(side.dataset) for side in sides]
    built = [build_side(d, s) for d, s in zip(data, sides)]
    members = [np.sort(side.users[side.labels == 1]) for side in built]
    assert not np.array_equal(members[0], members[1])  # other labels ...
    # same vectors
    assert np.array_equal(data[0].item_vectors.vectors, data[1].item_vectors.vectors)


def test_served_lists_are_reused_across_vector_settings() -> None:
    """A side under other item vectors reuses the lists: exactly what training again gives."""
    specs = [
        seeded(
            dataclasses.replace(
                SMALL, vectors=dataclasses.replace(SMALL.vectors, fit_on=fit_on)
            ),
            0,
        )
        for fit_on in ("vectorization", "all-histories")
    ]
    sides = [
        cell_config(
            SideChoice(s, "lfm"), SideChoice(s, "lfm"), "norm", {}, ListOptions(k=20), 0, "cpu"
        ).target
        for s in specs
    ]
    first = build_side(prepare_dataset(specs[0]), sides[0])
    data = prepare_dataset(specs[1])
    fresh = build_side(data, sides[1])
    reused = build_side(data, sides[1], ServedLists.of(first))
    assert reused.info.lists_reused and not fresh.info.lists_reused
    assert np.array_equal(reused.lists, fresh.lists) and np.array_equal(reused.users, fresh.users)
    assert np.array_equal(reused.vectors, fresh.vectors)
    assert not np.array_equal(first.vectors, fresh.vectors)  # the vectors did change


def test_own_hits_is_the_uncalibrated_own_dcg_statistic() -> None:
    statistics = {"own-dcg": np.array([0.0, 2.5, 1.0])}
    attack = make_attack("own-hits", device="cpu")
    proba = attack.predict_proba(np.zeros((3, 2), np.float32), TargetView(statistics=statistics))
    assert np.argsort(proba).tolist() == [0, 2, 1]
    with pytest.raises(ConfigError, match="own-dcg"):
        attack.predict_proba(np.zeros((3, 2), np.float32), TargetView())
