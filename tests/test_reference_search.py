"""The reference attack's per-cell search (tune.search_local): defaults first, every trial
recorded, the pick made on the shadow side alone (target labels changed, the same pick), the
objective the shadow side's ROC AUC, resume from the records, and the grid's `search:` block
checked against the pool the cell builds. No Ray: the trials run in this process."""

from __future__ import annotations

import ast
import dataclasses
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest
from sklearn.metrics import roc_auc_score

from dlmia.attacks.reference import calibrated_score
from dlmia.cell import SideChoice, cached_dataset, cell_config, reference_view
from dlmia.errors import ConfigError
from dlmia.sides import SideOutput, build_side
from tests.test_reference import MODEL, SMALL
from tune import search_local
from tune.grid import parse_grid
from tune.journal import open_journal
from tune.plan import expand
from tune.search import SearchConfig, SearchOutcome
from tune.search_local import search_in_process

SETTINGS = {"references": 8, "variant": "online"}


@pytest.fixture(scope="module")
def cell() -> tuple[SideOutput, SideOutput, list[SideOutput]]:
    """A synthetic ItemCF cell under the model policy: its sides and an online pool of 8."""
    choice = SideChoice(SMALL, "itemcf")
    config = cell_config(choice, choice, "reference", SETTINGS, MODEL, seed=0, device="cpu")
    data = cached_dataset(config.target.dataset)
    references = [build_side(data, spec) for spec in config.references]
    return build_side(data, config.shadow), build_side(data, config.target), references


def search(cell: tuple, folder: Path, samples: int = 6, target: SideOutput | None = None,
           **options: Any) -> SearchOutcome:  # fmt: skip
    shadow, plain_target, references = cell
    return search_in_process(
        "reference", shadow, target or plain_target, references,
        SearchConfig(num_samples=samples, **options), seed=0, storage_dir=folder, name="cell",
        fixed=SETTINGS, device="cpu",
    )  # fmt: skip


@pytest.fixture(scope="module")
def searched(cell: tuple, tmp_path_factory: Any) -> tuple[SearchOutcome, Path]:
    folder = tmp_path_factory.mktemp("reference-search")
    return search(cell, folder), folder


def test_the_defaults_are_the_first_trial_and_every_trial_is_recorded(
    searched: tuple[SearchOutcome, Path],
) -> None:
    outcome, folder = searched
    trials = outcome.trials
    assert list(trials["trial"]) == [1, 2, 3, 4, 5, 6] and trials["finished"].all()
    first = trials.iloc[0]
    assert (first["param.statistic"], first["param.spread"]) == ("own-dcg", "global")
    assert "param.references" not in trials  # fixed by the grid's settings: not searched
    assert not trials["used_for_selection"].any()
    assert trials[["selected", "shadow_pick", "oracle_pick"]].sum().tolist() == [1, 1, 1]
    assert trials["objective"].notna().all() and trials["target.roc_auc"].notna().all()
    assert (trials["objective"] == trials["shadow_val_auc"]).all()
    assert trials["reverse_loss"].isna().all() and trials["epochs"].isna().all()
    assert len(list((folder / "searches" / "cell").glob("trial-*.json"))) == 6
    study = optuna.load_study(study_name="cell", storage=open_journal(folder / "optuna.log"))
    assert [t.state.name for t in study.trials] == ["COMPLETE"] * 6
    assert study.trials[0].params == {"statistic": "own-dcg", "spread": "global"}


def test_the_pick_is_the_best_shadow_auc_and_the_result_is_that_trial(
    searched: tuple[SearchOutcome, Path], cell: tuple
) -> None:
    outcome, _ = searched
    trials = outcome.trials
    picked = trials[trials["selected"]].iloc[0]
    assert picked["objective"] == trials["objective"].max()
    assert outcome.selected.metrics["roc_auc"] == pytest.approx(picked["target.roc_auc"])
    assert outcome.selected.search is not None
    assert outcome.selected.search.trial == picked["trial"]
    assert outcome.selected.search.epochs is None
    assert outcome.selected.attack_settings["statistic"] == picked["param.statistic"]
    shadow, _, references = cell  # the objective, by hand: the attack on the shadow's users
    view = reference_view(references, shadow.users)
    assert view is not None
    name, spread = picked["param.statistic"], picked["param.spread"]
    score = calibrated_score(shadow.statistics[name], view.statistics[name], view.inside,
                             "online", spread)  # fmt: skip
    assert picked["objective"] == pytest.approx(roc_auc_score(shadow.labels, score))


@pytest.mark.parametrize("change", ["permuted", "flipped"])
def test_target_labels_do_not_change_the_pick(
    searched: tuple[SearchOutcome, Path], cell: tuple, tmp_path: Path, change: str
) -> None:
    outcome, _ = searched
    target = cell[1]
    labels = (np.random.default_rng(1).permutation(target.labels) if change == "permuted"
              else 1 - target.labels)  # fmt: skip
    again = search(cell, tmp_path, target=dataclasses.replace(target, labels=labels))
    columns = ["trial", "param.statistic", "param.spread", "objective", "selected", "shadow_pick"]
    assert again.trials[columns].equals(outcome.trials[columns])
    assert not np.allclose(again.trials["target.roc_auc"], outcome.trials["target.roc_auc"])


def test_a_search_resumes_from_its_records(cell: tuple, tmp_path: Path) -> None:
    search(cell, tmp_path, samples=3)
    records = {p: p.stat().st_mtime_ns for p in (tmp_path / "searches").glob("*/trial-*.json")}
    study = optuna.load_study(study_name="cell", storage=open_journal(tmp_path / "optuna.log"))
    study.ask()  # a trial in flight when the run was killed: never recorded
    assert study.trials[3].state.name == "RUNNING"
    resumed = search(cell, tmp_path, samples=5)
    assert len(resumed.trials) == 5 and resumed.trials["finished"].all()
    after = {p: p.stat().st_mtime_ns for p in (tmp_path / "searches").glob("*/trial-*.json")}
    assert len(after) == 5 and all(after[p] == t for p, t in records.items())  # not redone
    assert study.trials[3].state.name == "FAIL"  # the killed run's trial; two new ones ran
    assert sorted(resumed.trials["study_trial"]) == [0, 1, 2, 4, 5]


def grid(search: dict[str, Any], settings: dict[str, Any] | None = None) -> dict[str, Any]:
    """A one-cell grid whose reference attack is searched."""
    return {
        "name": "reference-search", "datasets": {"syn": {"name": "synthetic"}},
        "recommenders": {"itemcf": {"name": "itemcf"}},
        "cells": [{"shadow": "syn.itemcf", "target": "syn.itemcf"}],
        "attacks": {"reference": {"settings": settings or {}, "search": search}},
        "nonmember_lists": "model",
    }  # fmt: skip


def test_a_searched_cell_builds_the_pool_its_largest_r_needs() -> None:
    (default,) = expand(parse_grid(grid({"num_samples": 4}))).cells
    assert default.search is not None and default.search.space == {
        "statistic": {"choice": ["own", "own-dcg", "own-ndcg", "heldout", "norm"]},
        "spread": {"choice": ["global", "per-user"]},
        "references": {"choice": [2, 4, 8, 16]},  # up to the default R
    }
    assert len(default.references) == 16
    small = {"num_samples": 4, "space": {"references": {"randint": [2, 6]}}}
    (cell,) = expand(parse_grid(grid(small))).cells
    assert len(cell.references) == 5 and cell.config.references[0].reference.online
    (fixed,) = expand(parse_grid(grid(small, {"references": 3, "variant": "offline"}))).cells
    assert len(fixed.references) == 3  # R fixed by the settings: not searched
    assert not fixed.config.references[0].reference.online


def test_a_search_keeps_the_variant_which_decides_the_pool() -> None:
    variants = {"num_samples": 4, "space": {"variant": {"choice": ["offline", "online"]}}}
    with pytest.raises(ConfigError, match=r"attacks\.reference\.search: space: its trials "
                                          r"would need both an online and an offline"):
        parse_grid(grid(variants))
    online_r1 = {"num_samples": 4, "space": {"references": {"choice": [1, 2]}}}
    with pytest.raises(ConfigError, match=r"space\.references\.choice: 1 is not a valid"):
        parse_grid(grid(online_r1))


def test_the_search_reads_no_target_label_before_it_ends() -> None:
    """In the search loop every `.labels` read is the shadow side's; the target's are read only
    by tune.search.outcome, after the last trial."""
    tree = ast.parse(Path(search_local.__file__).read_text())
    reads = {ast.unparse(node) for node in ast.walk(tree)
             if isinstance(node, ast.Attribute) and node.attr == "labels"}  # fmt: skip
    assert reads == {"shadow.labels"}
