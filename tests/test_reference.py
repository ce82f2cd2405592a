"""The reference attack (method.md section 9): per-user list statistics, reference sides that
train on seeded halves of the adversary's population, the offline z-score and the online
likelihood ratio, and that no target label reaches any of it."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest

from dlmia.attacks import make_attack
from dlmia.attacks.base import References, TargetView
from dlmia.attacks.baselines import percentile_ranks
from dlmia.attacks.reference import ReferenceConfig, calibrated_score, gaussian
from dlmia.cell import (
    ListOptions,
    SideChoice,
    attack_cell,
    cached_dataset,
    cell_config,
    reference_view,
    run_cell,
)
from dlmia.cli import main
from dlmia.data.histories import Histories
from dlmia.data.synthetic import SyntheticConfig
from dlmia.errors import ConfigError
from dlmia.metrics import attack_metrics
from dlmia.pooled import pooled_evaluation, pooled_models
from dlmia.sides import DatasetSpec, ReferenceSpec, SideSpec, build_side, side_users
from dlmia.statistics import ListView, found_in_history, list_statistics
from dlmia.vectors import ItemVectorConfig

SMALL = DatasetSpec(
    name="synthetic",
    synthetic=SyntheticConfig(n_users=360, n_items=200, mean_length=25.0),
    vectors=ItemVectorConfig(epochs=10, device="cpu"),
)
MODEL = ListOptions(k=20, nonmember_lists="model")


def test_statistics_by_hand() -> None:
    lists = np.array([[5, 1, 9], [7, 8, 6], [2, 3, 4]])
    visible = Histories.from_lists([[1, 5], [1, 2, 3, 4], []], n_items=10)
    held_out = Histories.from_lists([[9], [], [3, 4]], n_items=10)
    vectors = np.array([[3.0, 4.0], [0.0, 0.0], [1.0, 0.0]])
    stats = list_statistics(ListView(lists, visible, held_out, vectors))
    np.testing.assert_allclose(stats["own"], [2 / 2, 0 / 3, 0.0])  # min(|H|, k) = 2, 3, 0
    ideal_2 = 1 + 1 / np.log2(3)
    np.testing.assert_allclose(stats["own-dcg"], [ideal_2, 0.0, 0.0])  # ranks 0 and 1
    np.testing.assert_allclose(stats["own-ndcg"], [1.0, 0.0, 0.0])  # of the best 2 hits
    held = [1 / np.log2(4), 0.0, (1 / np.log2(3) + 1 / np.log2(4)) / ideal_2]  # ranks 2; 1, 2
    np.testing.assert_allclose(stats["heldout"], held)
    np.testing.assert_allclose(stats["norm"], [-5.0, 0.0, -1.0])


def test_found_in_history_equals_a_loop_over_users() -> None:
    rng = np.random.default_rng(0)
    sequences = [list(rng.choice(50, rng.integers(0, 12), replace=False)) for _ in range(40)]
    histories = Histories.from_lists(sequences, n_items=50)
    lists = rng.integers(0, 50, (40, 7))
    expected = np.array([[item in set(s) for item in row] for row, s in zip(lists, sequences)])
    np.testing.assert_array_equal(found_in_history(lists, histories), expected)


def test_offline_score_is_a_z_score_against_the_out_references() -> None:
    refs = np.array([[0.1, 0.2, 0.5], [0.3, 0.2, 0.7]])  # (R=2, n=3)
    out = np.zeros_like(refs, dtype=bool)
    statistic = np.array([0.4, 0.2, 0.6])
    mean = refs.mean(0)
    pooled = ((refs - mean) ** 2).sum() / 3  # 3 users x (2 - 1) degrees of freedom
    np.testing.assert_allclose(
        calibrated_score(statistic, refs, out, "offline", "global"),
        (statistic - mean) / np.sqrt(pooled),
    )
    per_user = calibrated_score(statistic, refs, out, "offline", "per-user")
    variance = np.maximum(refs.var(0, ddof=1), 0.01 * pooled)  # the floor holds for user 1
    np.testing.assert_allclose(per_user, (statistic - mean) / np.sqrt(variance))


def test_online_score_is_the_likelihood_ratio_of_in_and_out_gaussians() -> None:
    rng = np.random.default_rng(0)
    refs = rng.normal(size=(6, 4))
    inside = np.array([[1, 0, 1, 0], [0, 1, 1, 0], [1, 1, 0, 1],
                       [0, 0, 0, 1], [1, 0, 1, 1], [0, 1, 0, 0]], dtype=bool)  # fmt: skip
    statistic = rng.normal(size=4)

    def pooled(chosen: np.ndarray) -> tuple[np.ndarray, float]:
        means = np.array([refs[chosen[:, j], j].mean() for j in range(4)])
        squares = sum(((refs[chosen[:, j], j] - means[j]) ** 2).sum() for j in range(4))
        return means, squares / (chosen.sum() - 4)

    def log_n(x: np.ndarray, mean: np.ndarray, var: float) -> np.ndarray:
        return -0.5 * (np.log(2 * np.pi * var) + (x - mean) ** 2 / var)

    (in_mean, in_var), (out_mean, out_var) = pooled(inside), pooled(~inside)
    np.testing.assert_allclose(
        calibrated_score(statistic, refs, inside, "online", "global"),
        log_n(statistic, in_mean, in_var) - log_n(statistic, out_mean, out_var),
    )
    mean, var = gaussian(refs, inside, "per-user")
    np.testing.assert_allclose(mean, in_mean)
    own = np.array([refs[inside[:, j], j].var(ddof=1) for j in range(4)])
    np.testing.assert_allclose(var, np.maximum(own, 0.01 * in_var))


def test_calibration_finds_members_a_raw_statistic_misses() -> None:
    """Heavy users get more back whoever they are; members get a little more than themselves."""
    rng = np.random.default_rng(1)
    n, r = 2000, 16
    base = rng.gamma(2.0, 0.2, n)  # each user's own level
    member = rng.random(n) < 0.5
    refs = base + rng.normal(0, 0.03, (r, n))
    statistic = base + 0.05 * member + rng.normal(0, 0.03, n)
    raw = attack_metrics(member.astype(int), percentile_ranks(statistic))["roc_auc"]
    z = calibrated_score(statistic, refs, np.zeros((r, n), bool), "offline", "global")
    calibrated = attack_metrics(member.astype(int), percentile_ranks(z))["roc_auc"]
    assert raw < 0.65 < 0.8 < calibrated


def test_reference_sides_train_on_seeded_halves_and_serve_the_shadow_and_target_parts() -> None:
    parts = {"vectorization": np.arange(0, 10), "shadow": np.arange(10, 30),
             "target": np.arange(30, 50)}  # fmt: skip
    def spec(index: int, online: bool) -> SideSpec:
        return SideSpec(SMALL, "reference", "itemcf", reference=ReferenceSpec(index, online))

    members, users, labels = side_users(parts, spec(0, False))
    assert set(members) <= set(parts["shadow"]) and len(members) == 10
    np.testing.assert_array_equal(users, np.arange(10, 50))  # shadow and target users, sorted
    assert not labels[users >= 30].any()  # offline: no target user was ever trained on
    np.testing.assert_array_equal(labels, np.isin(users, members))
    other, _, _ = side_users(parts, spec(1, False))
    assert not np.array_equal(members, other)  # each model of the pool has its own half
    members, users, labels = side_users(parts, spec(0, True))
    assert len(members) == 20 and set(members) <= set(range(10, 50))
    np.testing.assert_array_equal(users, np.arange(10, 50))
    np.testing.assert_array_equal(labels, np.isin(users, members))
    assert 0 < labels[users >= 30].sum() < 20  # online: a target user is in about half
    with pytest.raises(ConfigError, match="spec exactly when its role is reference"):
        SideSpec(SMALL, "target", "itemcf", reference=ReferenceSpec(0))
    with pytest.raises(ConfigError, match="spec exactly when its role is reference"):
        SideSpec(SMALL, "reference", "itemcf")


def test_a_cell_gets_its_pool_from_the_attack_settings() -> None:
    choice = SideChoice(SMALL, "itemcf")
    config = cell_config(choice, SideChoice(SMALL, "lfm"), "reference",
                         {"references": 3, "variant": "online"}, MODEL, seed=2)  # fmt: skip
    assert [s.reference for s in config.references] == [ReferenceSpec(i, True) for i in range(3)]
    assert {s.recommender for s in config.references} == {"itemcf"}  # the shadow's kind
    assert {s.dataset for s in config.references} == {config.shadow.dataset}
    assert not cell_config(choice, choice, "biased", {}, MODEL, seed=2).references
    other = dataclasses.replace(SMALL, synthetic=SyntheticConfig(n_users=400, n_items=200))
    with pytest.raises(ConfigError, match="one dataset with one split"):
        cell_config(choice, SideChoice(other, "itemcf"), "reference", {}, MODEL, seed=2)
    for bad, message in (({"references": 0}, "references"), ({"statistic": "x"}, "statistic"),
                         ({"variant": "online", "references": 1}, "references")):  # fmt: skip
        with pytest.raises(ConfigError, match=message):
            cell_config(choice, choice, "reference", bad, MODEL, seed=2)


@pytest.fixture(scope="module")
def synthetic_cell() -> tuple:
    """A synthetic ItemCF cell under the model policy, its sides and an online pool of 8."""
    choice = SideChoice(SMALL, "itemcf")
    settings = {"references": 8, "variant": "online", "statistic": "own-dcg"}
    config = cell_config(choice, choice, "reference", settings, MODEL, seed=0, device="cpu")
    data = cached_dataset(config.target.dataset)
    shadow, target = build_side(data, config.shadow), build_side(data, config.target)
    references = [build_side(data, spec) for spec in config.references]
    return config, shadow, target, references


def test_the_reference_attack_finds_members_under_the_model_policy(synthetic_cell: tuple) -> None:
    config, shadow, target, references = synthetic_cell
    result = attack_cell(shadow, target, "reference", config.attack_settings, 0, "cpu",
                         references)  # fmt: skip
    raw = attack_cell(shadow, target, "norm", {}, 0, "cpu").metrics["roc_auc"]
    assert result.metrics["roc_auc"] > max(0.7, raw + 0.1)
    assert result.attack["n_references"] == 8
    assert 2 < result.attack["mean_in_per_user"] < 6  # about half of 8


def test_no_target_label_reaches_the_reference_attack(synthetic_cell: tuple) -> None:
    config, shadow, target, references = synthetic_cell
    settings = config.attack_settings
    plain = attack_cell(shadow, target, "reference", settings, 0, "cpu", references)
    flipped = dataclasses.replace(target, labels=1 - target.labels)
    again = attack_cell(shadow, flipped, "reference", settings, 0, "cpu", references)
    np.testing.assert_array_equal(plain.scores, again.scores)  # labels changed, scores did not
    order = np.random.default_rng(0).permutation(len(target.users))  # members are listed first
    shuffled = dataclasses.replace(
        target, vectors=target.vectors[order], labels=target.labels[order],
        users=target.users[order], lists=target.lists[order],
        statistics={k: v[order] for k, v in target.statistics.items()},
    )  # fmt: skip
    moved = attack_cell(shadow, shuffled, "reference", settings, 0, "cpu", references)
    np.testing.assert_array_equal(moved.scores, plain.scores[order])  # row order means nothing


def test_reference_view_aligns_each_pool_side_to_the_scored_users(synthetic_cell: tuple) -> None:
    _, _, target, references = synthetic_cell
    view = reference_view(references, target.users)
    assert isinstance(view, References) and view.inside.shape == (8, len(target.users))
    first = references[0]
    row = {user: i for i, user in enumerate(first.users)}
    expected = [first.statistics["own"][row[user]] for user in target.users]
    np.testing.assert_array_equal(view.statistics["own"][0], expected)
    attack = make_attack("reference", {"references": 8}, device="cpu")
    with pytest.raises(ConfigError, match="needs the users"):
        attack.predict_proba(target.vectors, TargetView(lists=target.lists))


def test_dlmia_cell_runs_the_reference_attack_end_to_end() -> None:
    choice = SideChoice(SMALL, "itemcf")
    config = cell_config(choice, choice, "reference", {"references": 4}, MODEL, seed=0,
                         device="cpu")  # fmt: skip
    result = run_cell(config)
    assert result.metrics["roc_auc"] > 0.6
    assert ReferenceConfig().references == 16


def test_pooled_evaluation_scores_every_model_against_the_others() -> None:
    choice = SideChoice(SMALL, "itemcf")
    settings = {"references": 4, "variant": "online", "statistic": "own-dcg"}
    config = cell_config(choice, choice, "reference", settings, MODEL, seed=0, device="cpu")
    specs = pooled_models(config, 5)
    assert [spec.reference for spec in specs] == [
        ReferenceSpec(i, online=True) for i in range(5)
    ]
    result = pooled_evaluation(config, 5)
    data = cached_dataset(config.target.dataset)
    population = len(data.parts["shadow"]) + len(data.parts["target"])
    assert result.metrics["n_members"] + result.metrics["n_nonmembers"] == 5 * population
    assert abs(result.metrics["n_nonmembers"] - 5 * population / 2) < 5
    assert result.metrics["roc_auc"] > 0.7
    assert result.attack["n_references"] == 4 and result.attack["evaluation"] == "pooled"
    with pytest.raises(ConfigError, match="one kind of recommender"):
        pooled_models(cell_config(choice, SideChoice(SMALL, "lfm"), "reference", settings,
                                  MODEL, seed=0), 5)  # fmt: skip
    with pytest.raises(ConfigError, match="scores the reference attack"):
        pooled_models(cell_config(choice, choice, "norm", {}, MODEL, seed=0), 5)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--attack", "reference", "--pooled", "2"], "needs at least 3 models"),
        (["--attack", "norm", "--pooled", "5"], "scores the reference attack, not norm"),
        (["--attack", "reference", "--pooled", "5", "--target", "synthetic:lfm"],
         "one kind of recommender"),
        (["--attack", "reference", "--set", "statistic=nope"], "statistic: 'nope'"),
        (["--attack", "reference", "--shadow", "ml-100k:itemcf", "--data-root", "."],
         "must be one dataset with one split"),
    ],
)  # fmt: skip
def test_bad_reference_options_are_one_line(
    argv: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    base = ["cell", "--shadow", "synthetic:itemcf", "--target", "synthetic:itemcf",
            "--device", "cpu"]  # fmt: skip
    assert main([*base, *argv]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("dlmia: error: ") and message in error[0]
