"""Searched cells: the honest pick beside what test labels would have picked, and each search's
history and parameter importances.

A searched cell's trials (`analysis.results.load_trials`) are one row each; the cell's result is
the `selected` trial, picked by the label-free objective. Two other picks are shown beside it, for
the record only: `shadow_pick`, the trial shadow validation alone ranks first, and `oracle_pick`,
the trial with the best target ROC AUC, i.e. selected on the target's membership labels: no
attacker can make that choice, and the gap between it and the selected trial is how much tuning on
test labels would flatter the attack.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

import pandas as pd

from analysis.figures import pyplot, save_figure
from analysis.paper import label
from analysis.results import file_slug
from dlmia.layout import STUDY_FILE

log = logging.getLogger(__name__)

#: (column marking the trial in the trials table, its name in tables and figures).
PICKS: tuple[tuple[str, str], ...] = (
    ("selected", "label_free"),
    ("shadow_pick", "shadow_only"),
    ("oracle_pick", "oracle"),
)
ORACLE_NOTE = (
    "oracle = the trial with the best target ROC AUC, chosen on the target's membership labels: "
    "not an attack result, shown to measure how much selecting on test labels would flatter it."
)
SEARCH_METRICS: tuple[str, ...] = ("roc_auc", "balanced_accuracy")


def search_table(trials: pd.DataFrame) -> pd.DataFrame:
    """One row per searched cell (rows of `load_trials`): its trial count and, for each pick,
    the target ROC AUC and balanced accuracy of the trial it picks (`<pick>_<metric>`); empty
    when no cell was searched."""
    rows = []
    for cell_id, cell in trials.groupby("cell_id", sort=True):
        first = cell.iloc[0]
        row = {
            "cell_id": cell_id,
            "shadow": f"{label(first['shadow_dataset'])}:{label(first['shadow_recommender'])}",
            "target": f"{label(first['target_dataset'])}:{label(first['target_recommender'])}",
            "seed": first["seed"],
            "trials": len(cell),
        }
        for column, name in PICKS:
            picked = cell[cell[column].fillna(False).astype(bool)]
            for metric in SEARCH_METRICS:
                row[f"{name}_{metric}"] = picked[metric].iloc[0] if len(picked) else float("nan")
        rows.append(row)
    return pd.DataFrame(rows)


def write_search_plots(
    trials: pd.DataFrame, out_dir: str | Path, folder: str | Path
) -> list[Path]:
    """Per searched cell, `search_<cell>.png` (and .pdf): the label-free objective per trial
    with its running best and the selected trial marked; in its own panel the target ROC AUC of
    each trial (recorded after the search, never used to pick) with the three picks; and the
    fANOVA importances of the searched settings for the objective (the cell's study in
    `OUT/optuna.log`)."""
    paths = []
    for cell_id, cell in trials.groupby("cell_id", sort=True):
        cell = cell.sort_values("trial")
        figure, (history, target, importance) = pyplot().subplots(1, 3, figsize=(15, 4))
        _draw_history(history, cell)
        _draw_target(target, cell)
        _draw_importances(importance, Path(out_dir) / STUDY_FILE, str(cell["search"].iloc[0]))
        figure.suptitle(str(cell_id), fontsize=9)
        figure.tight_layout()
        paths.append(save_figure(figure, Path(folder) / f"search_{file_slug(str(cell_id))}.png"))
    return paths


def _draw_history(axes: Any, trials: pd.DataFrame) -> None:
    number = trials["trial"].astype(int)
    objective = trials["objective"].astype(float)
    axes.plot(number, objective, "o", color="tab:blue", label="objective")
    axes.step(number, objective.cummax(), where="post", color="tab:blue", alpha=0.6,
              label="best so far")
    chosen = trials["selected"].fillna(False).astype(bool)
    axes.plot(number[chosen], objective[chosen], "*", color="tab:red", markersize=14,
              label="selected")
    _trial_axis(axes)
    axes.set_ylabel("label-free objective (higher is better)")
    axes.legend(fontsize=7, loc="lower right")
    axes.set_title("search: the objective that picks", fontsize=9)


def _draw_target(axes: Any, trials: pd.DataFrame) -> None:
    number = trials["trial"].astype(int)
    auc = trials["roc_auc"].astype(float)
    axes.plot(number, auc, "x", color="0.5", label="trial")
    for (column, name), marker in zip(PICKS, ("*", "s", "D")):
        picked = trials[column].fillna(False).astype(bool)
        axes.plot(number[picked], auc[picked], marker, markersize=10, fillstyle="none",
                  label=name.replace("_", "-"))
    _trial_axis(axes)
    axes.set_ylabel("target ROC AUC")
    axes.legend(fontsize=7, loc="lower right")
    axes.set_title("target ROC AUC (recorded after the search, not used)", fontsize=9)


def _trial_axis(axes: Any) -> None:
    from matplotlib.ticker import MaxNLocator

    axes.set_xlabel("trial")
    axes.xaxis.set_major_locator(MaxNLocator(integer=True))


def _draw_importances(axes: Any, study_file: Path, study_name: str) -> None:
    importances = param_importances(study_file, study_name)
    axes.set_title("importances for the objective (fANOVA evaluator)", fontsize=9)
    if not importances:
        axes.text(0.5, 0.5, "not available\n(study missing or too few trials)",
                  ha="center", va="center", transform=axes.transAxes)
        axes.set_axis_off()
        return
    names = list(importances)[::-1]
    axes.barh(names, [importances[n] for n in names], color="tab:green")
    axes.set_xlabel("share of the objective's variance")


def param_importances(study_file: Path, study_name: str) -> dict[str, float]:
    """fANOVA importances of the searched settings for the objective in study `study_name`,
    most important first; {} when the study is missing, unreadable or holds too few finished
    trials."""
    import optuna
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend

    if study_file.is_symlink() or not study_file.is_file():
        return {}  # no journal, or one planted as a link: not followed
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    try:
        storage = JournalStorage(JournalFileBackend(str(study_file)))
        study = optuna.load_study(study_name=study_name, storage=storage)
        finished = [t for t in study.trials if t.state == optuna.trial.TrialState.COMPLETE]
    except KeyError:  # no such study in the journal
        return {}
    except (OSError, ValueError) as exc:  # damaged: the next grid run repairs it (tune.journal)
        log.warning("no parameter importances: %s is unreadable (%s)", study_file, exc)
        return {}
    if len(finished) < 3:
        return {}
    try:
        evaluator = optuna.importance.FanovaImportanceEvaluator(seed=0)
        return dict(optuna.importance.get_param_importances(study, evaluator=evaluator))
    except (RuntimeError, ValueError) as exc:  # e.g. every trial scored the same
        log.warning("no parameter importances for %s: %s", study_file, exc)
        return {}
