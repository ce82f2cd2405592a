"""Searches inside the grid runner: grid validation of `search:` blocks, one row per trial with
the selected one marked, the Optuna study in the output folder, and a search whose driver was
killed (SIGKILL) resuming without redoing its finished trials. Tiny synthetic grids, local Ray."""

from __future__ import annotations

import pickle
from pathlib import Path
from typing import Any

import optuna
import pandas as pd
import pytest
import yaml

from analysis.report import summarize
from analysis.results import load_results, load_trials
from analysis.search import param_importances
from dlmia.errors import ConfigError
from dlmia.schema import TRIALS, undeclared
from tests.test_grid_runner import QUIET, run_and_kill, tiny_grid
from tune.cli import describe
from tune.grid import load_grid, parse_grid
from tune.plan import expand
from tune.progress import Progress
from tune.runner import run_grid

pytestmark = pytest.mark.slow

FIXED = {"latent_inv": 4, "latent_spe": 4, "hidden": 16, "epochs_vae": 2, "epochs_heads": 2,
         "epochs_joint": 3, "batch_size": 64, "patience": 0}
SPACE = {"lambda_align": {"choice": [0.0, 1.0, 10.0]}, "lr": {"loguniform": [1e-4, 1e-2]},
         "period": {"choice": [2, 3]}}


def search_grid(name: str, num_samples: int, max_concurrent: int = 2, grace_epochs: int = 1,
                **fixed: Any) -> dict:
    """One LFM -> ItemCF cell whose DL-MIA settings are searched."""
    raw = tiny_grid(name)
    raw["cells"] = [{"shadow": "syn.lfm", "target": "syn.itemcf"}]
    search = {"num_samples": num_samples, "max_concurrent": max_concurrent,
              "grace_epochs": grace_epochs, "space": SPACE}
    raw["attacks"] = {"dlmia": {"settings": {**FIXED, **fixed}, "search": search}}
    return raw


def studies(out: Path) -> dict[str, list[optuna.trial.FrozenTrial]]:
    """Every study in the grid's one journal file, by name."""
    path = str(out / "optuna.log")
    storage = optuna.storages.JournalStorage(optuna.storages.journal.JournalFileBackend(path))
    return {s.study_name: optuna.load_study(study_name=s.study_name, storage=storage).trials
            for s in optuna.get_all_study_summaries(storage)}


def recorded_trials(out: Path) -> dict[Path, int]:
    """The project's trial records (written when a trial is over), with their mtimes."""
    return {p: p.stat().st_mtime_ns for p in (out / "searches").glob("*/trial-*.json")}



def test_search_blocks_are_validated() -> None:
    raw = search_grid("bad", 2)
    raw["attacks"]["dlmia"]["search"]["num_sample"] = 3
    with pytest.raises(ConfigError, match=r"attacks\.dlmia\.search\.num_sample: unknown key"):
        parse_grid(raw)
    raw = search_grid("bad", 2)
    raw["attacks"]["dlmia"]["search"]["space"] = {"lambda_alig": {"choice": [0, 1]}}
    with pytest.raises(ConfigError, match=r"attacks\.dlmia\.search: space\.lambda_alig: not a"):
        parse_grid(raw)
    raw = search_grid("bad", 0)
    with pytest.raises(ConfigError, match=r"attacks\.dlmia\.search\.num_samples: must be >= 1"):
        parse_grid(raw)
    raw = tiny_grid("bad")
    raw["attacks"]["biased"]["search"] = {"num_samples": 2}
    with pytest.raises(ConfigError, match=r"attacks\.biased\.search: biased declares no search"):
        parse_grid(raw)


def test_search_changes_the_cell_key_and_fixed_settings_are_not_searched() -> None:
    plain = tiny_grid("keys")
    searched = search_grid("keys", 2)
    (a,) = [c for c in expand(parse_grid(plain)).cells if c.id.startswith("syn.lfm__syn.itemcf")]
    (b,) = expand(parse_grid(searched)).cells
    assert a.key != b.key and b.search is not None
    assert b.search_name.startswith(b.id) and b.search_name != a.id
    assert set(b.search.searched_space({"period": 2})) == {"lambda_align", "lr"}


@pytest.mark.usefixtures("local_ray")
def test_searched_cells_write_every_trial_and_mark_the_selected_one(tmp_path: Path) -> None:
    raw = search_grid("search", 3, grace_epochs=4)  # no ASHA stop: three finished trials
    raw["cells"].append({"shadow": "syn.itemcf", "target": "syn.lfm"})  # searched concurrently
    grid = parse_grid(raw)
    out = tmp_path / "out"
    progress = Progress(stream=None)
    summary = run_grid(expand(grid), out=out, progress=progress)
    assert summary.exit_code == 0 and summary.ok == 2
    assert (progress.trials_done, progress.trials_total) == (6, 6)
    results, frame = load_results(out), load_trials(out)
    assert len(results) == 2 and len(frame) == 6 and not frame["used_for_selection"].any()
    assert undeclared(pd.read_parquet(next((out / "trials").glob("*.parquet"))).columns,
                      TRIALS) == []  # fmt: skip
    # each cell's trials ran on that cell's sides (Tune registers trainables cluster-wide)
    assert frame["objective"].is_unique
    chosen = results.set_index("cell_id")
    for cell_id, trials in frame.groupby("cell_id"):
        assert sorted(trials["trial"]) == [1, 2, 3]
        assert trials[["selected", "shadow_pick", "oracle_pick"]].sum().tolist() == [1, 1, 1]
        finished = trials[trials["finished"]]
        picked = trials[trials["selected"]].iloc[0]
        assert picked["objective"] == finished["objective"].max()
        result = chosen.loc[cell_id]  # the cell's one result row is its selected trial
        assert (result["trial"], result["n_trials"]) == (picked["trial"], 3)
        assert result["objective"] == picked["objective"]
        assert result["roc_auc"] == pytest.approx(picked["roc_auc"])
        assert result["search"] == picked["search"]
        scores = pd.read_parquet(out / "scores" / f"{cell_id}.parquet")
        assert len(scores) == result["n_target"]
    assert {"param.lambda_align", "param.lr", "param.period"} <= set(frame.columns)
    found = studies(out)  # one journal, a study per cell, named by its search
    assert sorted(found) == sorted(frame["search"].unique())
    trials = found[sorted(found)[0]]
    assert len(trials) == 3 and trials[0].params["lambda_align"] == 1.0  # starts from defaults
    assert trials[0].params["period"] == 2  # the default (5) moved into the space

    report = summarize(out, echo=False)
    assert "searched cells:" in report and "oracle" in report
    table = pd.read_csv(out / "analysis" / "search.csv").set_index("cell_id")
    assert len(table) == 2 and (table["trials"] == 3).all()
    assert table["label_free_roc_auc"].to_dict() == pytest.approx(chosen["roc_auc"].to_dict())
    best = frame.groupby("cell_id")["roc_auc"].max()
    assert table["oracle_roc_auc"].to_dict() == pytest.approx(best.to_dict())
    assert len(list((out / "analysis").glob("search_*.png"))) == 2
    assert len(list((out / "analysis").glob("search_*.pdf"))) == 2
    importances = param_importances(out / "optuna.log", sorted(found)[0])
    assert set(importances) == {"lambda_align", "lr", "period"}
    assert "searched per cell, 3 trials" in describe(expand(grid))
    again = run_grid(expand(grid), out=out, progress=QUIET)  # finished: nothing runs
    assert again.skipped == 2 and not again.tasks
    records = recorded_trials(out)
    lost = next((out / "trials").glob("*.parquet"))
    lost.unlink()  # the cell runs again: its search is rebuilt from its records, none redone
    redone = run_grid(expand(grid), out=out, progress=QUIET)
    assert (redone.skipped, redone.ok) == (1, 1) and lost.is_file()
    assert recorded_trials(out) == records and len(load_trials(out)) == 6


class Planted:
    """A pickle that, when loaded, creates `marker`: what a planted file in a shared output
    folder could do."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self) -> tuple[Any, ...]:
        return (open, (str(self.marker), "w"))


def plant_pickles(out: Path, marker: Path) -> int:
    """Overwrite every pickle Tune left in the output folder with a `Planted` one."""
    planted = [p for p in (out / "tune").rglob("*") if p.suffix == ".pkl"]
    for path in planted:
        path.write_bytes(pickle.dumps(Planted(marker)))
    return len(planted)


@pytest.mark.usefixtures("local_ray")
def test_killed_search_resumes_without_redoing_finished_trials(tmp_path: Path) -> None:
    # longer trials, one at a time: the kill lands while a trial is in flight
    raw = search_grid("killed", 4, max_concurrent=1, epochs_vae=15, epochs_joint=15)
    path, out = tmp_path / "killed.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(raw))
    # killed as soon as a trial is recorded: the next one is in flight
    run_and_kill(path, out, lambda: bool(recorded_trials(out)), tmp_path / "driver.log")
    before = recorded_trials(out)
    assert 1 <= len(before) < 4, (tmp_path / "driver.log").read_text()[-3000:]
    assert not (out / "results").exists() or not list((out / "results").glob("*.parquet"))
    marker = tmp_path / "pwned"
    assert plant_pickles(out, marker) >= 1  # Tune's own state files are pickles

    summary = run_grid(expand(load_grid(path)), out=out, progress=QUIET)
    assert summary.exit_code == 0 and summary.ok == 1
    assert not marker.exists()  # nothing from the output folder was unpickled
    frame = load_trials(out)
    assert sorted(frame["trial"]) == [1, 2, 3, 4] and frame["epochs"].notna().all()
    after = recorded_trials(out)
    assert len(after) == 4 and all(after[p] == t for p, t in before.items())  # not redone
    (trials,) = studies(out).values()
    states = [t.state.name for t in trials]
    assert len(states) - states.count("FAIL") == 4  # the killed run's trial in flight: FAIL
    assert set(states) <= {"COMPLETE", "PRUNED", "FAIL"}
    assert sorted(frame["study_trial"]) == [t.number for t in trials if t.state.name != "FAIL"]


@pytest.mark.usefixtures("local_ray")
def test_a_torn_journal_is_repaired_and_the_search_resumes_from_its_records(
    tmp_path: Path,
) -> None:
    grid, out = parse_grid(search_grid("torn", 2, grace_epochs=4)), tmp_path / "out"
    assert run_grid(expand(grid), out=out, progress=QUIET).ok == 1
    # as a driver killed mid-search leaves it: the cell unfinished, its last trial unrecorded,
    # the journal's last record cut short
    for path in [*out.glob("results/*"), *out.glob("searches/*/trial-0001.*")]:
        path.unlink()
    journal = out / "optuna.log"
    journal.write_bytes(journal.read_bytes()[:-37])

    summary = run_grid(expand(grid), out=out, progress=QUIET)
    assert summary.exit_code == 0 and summary.ok == 1
    assert sorted(load_trials(out)["trial"]) == [1, 2] and len(recorded_trials(out)) == 2
    (trials,) = studies(out).values()  # the journal reads whole again
    assert [t.state.name for t in trials].count("COMPLETE") >= 2
    assert "searched cells:" in summarize(out, echo=False)


@pytest.mark.usefixtures("local_ray")
def test_a_searched_reference_attack_runs_in_a_grid_and_records_every_trial(
    tmp_path: Path,
) -> None:
    raw = tiny_grid("reference-search", recommenders=("itemcf",))
    raw["nonmember_lists"] = "model"
    space = {"statistic": {"choice": ["own-dcg", "own"]}, "references": {"choice": [2, 3]}}
    raw["attacks"] = {"reference": {"search": {"num_samples": 4, "space": space}}}
    plan = expand(parse_grid(raw))
    assert "reference: settings searched per cell, 4 trials" in describe(plan)
    out = tmp_path / "out"
    summary = run_grid(plan, out=out, progress=QUIET)
    assert summary.exit_code == 0 and (summary.ok, summary.sides_trained) == (1, 5)
    (row,) = load_results(out).to_dict("records")
    trials = load_trials(out)
    assert undeclared(pd.read_parquet(next((out / "trials").glob("*.parquet"))).columns,
                      TRIALS) == []  # fmt: skip
    assert list(trials["trial"]) == [1, 2, 3, 4] and not trials["used_for_selection"].any()
    assert {"param.statistic", "param.references"} <= set(trials.columns)
    first = trials.iloc[0]  # the defaults (own-dcg, R = 16) moved into the space: R 2 or 3
    assert (first["param.statistic"], first["param.references"]) == ("own-dcg", 2)
    picked = trials[trials["selected"]].iloc[0]
    assert (row["trial"], row["n_trials"]) == (picked["trial"], 4)
    assert row["objective"] == picked["objective"] == trials["objective"].max()
    assert row["roc_auc"] == pytest.approx(picked["roc_auc"]) and pd.isna(row["epochs"])
    (study,) = studies(out).values()
    assert [t.state.name for t in study] == ["COMPLETE"] * 4
    again = run_grid(plan, out=out, progress=QUIET)
    assert again.skipped == 1 and not again.tasks
