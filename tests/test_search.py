"""Per-cell search (tune.search): trials recorded, label-free selection, persisted Optuna study,
and resume after an interruption. Tiny synthetic vectors; one local Ray for the module."""

from __future__ import annotations

import dataclasses
import os
import signal
from pathlib import Path
from typing import Any

import numpy as np
import optuna
import pytest

from dlmia.attacks.dlmia import DLMIAAttack
from dlmia.errors import ConfigError
from dlmia.sides import SideOutput
from tests.records import side_info
from tune.search import SearchConfig, SearchInterrupted, SearchOutcome, trial_store
from tune.search_groups import group_size
from tune.search_tune import search_on_tune
from tune.space import check_space, settings_of, start_point

pytestmark = pytest.mark.slow

FIXED = {"latent_inv": 4, "latent_spe": 4, "hidden": 16, "epochs_vae": 2, "epochs_heads": 2,
         "epochs_joint": 3, "period": 2, "batch_size": 64, "patience": 0}
SPACE = {"lambda_align": {"choice": [0.0, 1.0, 10.0]}, "lr": {"loguniform": [1e-4, 1e-2]}}


def side(offset: float, rng: np.random.Generator, n: int = 160, dim: int = 8) -> SideOutput:
    labels = rng.integers(0, 2, n)
    scale = np.where(labels[:, None] == 1, 0.6, 1.4)
    vectors = (rng.normal(size=(n, dim)) * scale + offset).astype(np.float32)
    lists = rng.integers(0, 50, (n, 5)).astype(np.int32)
    return SideOutput(vectors, labels, np.arange(n), lists, side_info())


@pytest.fixture(scope="module")
def sides() -> tuple[SideOutput, SideOutput]:
    rng = np.random.default_rng(0)
    return side(0.0, rng), side(1.5, rng)



def config(num_samples: int, max_concurrent: int = 2) -> SearchConfig:
    return SearchConfig(num_samples=num_samples, max_concurrent=max_concurrent, space=SPACE,
                        grace_epochs=1)


@pytest.fixture(scope="module")
def outcome(local_ray: Any, sides: tuple[SideOutput, SideOutput], tmp_path_factory: Any
            ) -> tuple[SearchOutcome, Path]:
    shadow, target = sides
    folder = tmp_path_factory.mktemp("search")
    return search_on_tune(
        shadow, target, config(4), seed=0, storage_dir=folder, name="cell", fixed=FIXED
    ), folder


def test_every_trial_is_recorded(outcome: tuple[SearchOutcome, Path]) -> None:
    result, _ = outcome
    trials = result.trials
    assert len(trials) == 4
    expected = {"param.lambda_align", "param.lr", "objective", "reverse_auc", "residual_mmd"}
    assert expected <= set(trials)
    assert not trials["used_for_selection"].any()
    assert trials[["selected", "shadow_pick", "oracle_pick"]].sum().tolist() == [1, 1, 1]
    finished = trials[trials["finished"]]
    chosen = trials[trials["selected"]].iloc[0]
    assert chosen["objective"] == finished["objective"].max()
    assert result.selected.metrics["roc_auc"] == pytest.approx(chosen["target.roc_auc"])
    oracle = trials[trials["oracle_pick"]].iloc[0]
    assert oracle["target.roc_auc"] == finished["target.roc_auc"].max()


def test_study_is_persisted_and_starts_from_defaults(outcome: tuple[SearchOutcome, Path]) -> None:
    _, folder = outcome
    path = folder / "optuna.log"
    assert path.exists()
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(str(path)))
    study = optuna.load_study(study_name="cell", storage=storage)
    assert len(study.trials) == 4
    states = {t.state for t in study.trials}
    assert states <= {optuna.trial.TrialState.COMPLETE, optuna.trial.TrialState.PRUNED}
    assert all("objective" in t.user_attrs and "shadow_val_loss" in t.user_attrs
               for t in study.trials)  # the criteria as user attributes
    assert study.trials[0].params == {"lambda_align": 1.0, "lr": 1e-3}  # DL-MIA's defaults
    assert study.direction == optuna.study.StudyDirection.MAXIMIZE


def test_tune_writes_no_per_trial_result_files(outcome: tuple[SearchOutcome, Path]) -> None:
    """The trial records are the project's own; Tune's CSV/JSON loggers stay off, and the
    switch does not outlive the search."""
    _, folder = outcome
    assert (folder / "tune").is_dir()
    names = {path.name for path in (folder / "tune").rglob("*")}
    assert not names & {"progress.csv", "result.json"}
    assert not any(name.startswith("events.out.tfevents") for name in names)
    assert "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS" not in os.environ


def test_target_labels_do_not_change_the_selection(
    outcome: tuple[SearchOutcome, Path], sides: tuple[SideOutput, SideOutput]
) -> None:
    """Rerunning the finished search (a resume with nothing left) with permuted target labels
    selects the same trial; only the recorded target metrics change."""
    result, folder = outcome
    shadow, target = sides
    labels = np.random.default_rng(1).permutation(target.labels)
    permuted = dataclasses.replace(target, labels=labels)
    again = search_on_tune(shadow, permuted, config(4), seed=0, storage_dir=folder, name="cell",
                        fixed=FIXED)
    columns = ["trial", "study_trial", "objective", "selected", "shadow_pick"]
    assert again.trials[columns].equals(result.trials[columns])
    assert not np.allclose(again.trials["target.roc_auc"], result.trials["target.roc_auc"])


class InterruptOnce:
    """A Tune callback that sends SIGUSR1 (Tune's stop signal) when the first trial completes,
    once per flag file: the experiment stops as a killed driver would, its state saved."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __getattr__(self, name: str) -> Any:  # every other Tune callback hook: do nothing
        if name.startswith(("on_", "setup", "get_state", "set_state")):
            return lambda *args, **kwargs: None
        raise AttributeError(name)

    def on_trial_complete(self, *args: Any, **kwargs: Any) -> None:
        if not self.flag.exists():
            self.flag.touch()
            os.kill(os.getpid(), signal.SIGUSR1)


def test_interrupted_search_resumes(
    local_ray: Any, sides: tuple[SideOutput, SideOutput], tmp_path: Path
) -> None:
    from ray.tune import Callback

    class Interrupt(InterruptOnce, Callback):
        pass

    shadow, target = sides
    search = config(3, max_concurrent=1)
    with pytest.raises(SearchInterrupted):
        search_on_tune(shadow, target, search, seed=0, storage_dir=tmp_path, name="resume",
                    fixed=FIXED, callbacks=[Interrupt(tmp_path / "fired")])
    dead = list((tmp_path / "tune").glob("resume-*"))
    assert len(dead) == 1  # the interrupted run's Tune folder
    resumed = search_on_tune(shadow, target, search, seed=0, storage_dir=tmp_path, name="resume",
                          fixed=FIXED)
    assert len(resumed.trials) == 3 and resumed.trials["finished"].all()
    assert resumed.trials["selected"].sum() == 1
    left = list((tmp_path / "tune").glob("resume-*"))
    assert len(left) == 1 and left != dead  # the dead search's folder was cleaned on resume


def test_trials_side_by_side_are_each_recorded_told_and_judged_by_asha(
    local_ray: Any, sides: tuple[SideOutput, SideOutput], tmp_path: Path
) -> None:
    """Groups of 3 trials in one Tune trial (one group at a time, so ASHA's decisions do not
    depend on timing): every trial has its record and its study trial, with its rung objective
    reported; the defaults come first; ASHA's rule stops some at the first rung."""
    shadow, target = sides
    space = {**SPACE, "latent_inv": {"choice": [4, 8]}}
    fixed = {key: value for key, value in FIXED.items() if key != "latent_inv"} | {
        "epochs_joint": 4
    }
    search = SearchConfig(num_samples=7, max_concurrent=1, space=space, grace_epochs=1,
                          side_by_side=3)  # fmt: skip
    assert group_size(search.for_attack("dlmia", fixed), fixed) == 3
    result = search_on_tune(shadow, target, search, seed=0, storage_dir=tmp_path,
                            name="groups", fixed=fixed)  # fmt: skip
    trials = result.trials
    assert sorted(trials["study_trial"]) == list(range(7))
    assert set(trials["state"]) == {"complete", "pruned"}
    assert trials[trials["state"] == "pruned"]["epochs"].isin([1, 3]).all()
    assert trials["defaults"].iloc[0] and trials["selected"].sum() == 1
    assert trials["state"].iloc[0] == "complete"  # the defaults: fitted alone, never stopped
    first = trial_store(tmp_path, "groups").load()[0]  # the defaults moved into the space
    defaults = DLMIAAttack(settings_of("dlmia", first.params, fixed), device="cpu", seed=0)
    defaults.fit(shadow.vectors, shadow.labels, target.vectors)
    assert first.scores is not None
    assert np.array_equal(first.scores, defaults.predict_proba(target.vectors))
    assert (trials["fit_seconds"] > 0).all()
    storage = optuna.storages.JournalStorage(
        optuna.storages.journal.JournalFileBackend(str(tmp_path / "optuna.log"))
    )
    study = optuna.load_study(study_name="groups", storage=storage)
    assert all(1 in t.intermediate_values for t in study.trials)  # every trial reached rung 1


def test_a_space_that_cannot_stack_searches_one_trial_at_a_time() -> None:
    search = SearchConfig(side_by_side=4, space={"hidden": {"choice": [32, 64]}})
    assert group_size(search.for_attack("dlmia", {}), {}) == 1
    gauss = SearchConfig(side_by_side=4, space=SPACE).for_attack("dlmia", {"spe_dist": "gauss"})
    assert group_size(gauss, {"spe_dist": "gauss"}) == 1
    assert group_size(SearchConfig(side_by_side=4, space=SPACE).for_attack("dlmia", {}), {}) == 4


def test_bad_space_raises() -> None:
    with pytest.raises(ConfigError, match="space.lambda_alig: not a setting of dlmia"):
        check_space({"lambda_alig": {"choice": [0, 1]}}, "dlmia", {})
    with pytest.raises(ConfigError, match="loguniform"):
        SearchConfig(space={"lr": {"loguniform": [0, 1]}}).for_attack("dlmia", {})


def test_start_point_is_the_defaults_moved_into_the_space() -> None:
    space = {"period": {"choice": [2, 3]}, "lr": {"loguniform": [1e-2, 1e-1]},
             "tau": {"uniform": [0.6, 0.99]}, "latent_inv": {"randint": [2, 8]}}
    defaults = {"period": 5, "lr": 1e-3, "tau": 0.9, "latent_inv": 16}
    assert start_point(space, defaults) == {"period": 2, "lr": 1e-2, "tau": 0.9, "latent_inv": 7}
