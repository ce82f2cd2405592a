"""A cell's search of its attack's settings: the budget and space, and the outcome both kinds of
search share.

Any attack that declares a search space (`Attack.search_space`) is searchable from a grid's
`search:` block, and ranked by a label-free objective: target membership labels are read only
after the search, to record each trial's target metrics (`used_for_selection` False).

- An attack that learns from the shadow side's labels (DL-MIA) is searched on Ray Tune
  (tune.search_tune): trials of seconds to minutes each, spread over the cluster, ASHA stopping
  weak ones over joint epochs, ranked by DL-MIA's held-out criteria (dlmia.selection).
- An attack that learns nothing from them (the reference attack) is searched trial after trial
  in the cell's own task (tune.search_local): a trial costs milliseconds, and its objective is
  its ROC AUC on the shadow side's users, whose labels the adversary knows.

Both drive one Optuna study per cell through ask and tell (tune.study), write each trial's
record (tune.trials) before the study hears of it, and resume from those records. The cell's
result is the finished trial with the best objective (`selected`); the trial shadow validation
alone would pick (`shadow_pick`) and the best target ROC AUC (`oracle_pick`, chosen on test
labels) are flagged beside it in the trials table (`trials_frame`).
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Literal

import numpy as np
import pandas as pd

from dlmia import config as cfg
from dlmia.attacks import ATTACKS
from dlmia.errors import ConfigError, DlmiaError, brief
from dlmia.layout import GridFolder
from dlmia.metrics import attack_metrics
from dlmia.records import CellResult, SearchSummary
from dlmia.schema import CRITERIA
from dlmia.selection import SelectionConfig
from dlmia.sides import SideOutput
from tune.space import check_space, default_space, settings_of, start_point
from tune.trials import TrialRecord, TrialStore


class SearchInterrupted(DlmiaError):
    """The search stopped before its budget was spent; rerun it to resume."""


@dataclass(frozen=True)
class SearchConfig:
    """Budget, space and objective of one cell's search (an attack's `search:` block in a grid).

    The settings a grid fixes for the attack are not searched (`searched_space`). The fields
    marked (Tune) apply to a search on Ray Tune (DL-MIA) only: a search in the cell's own task
    runs its trials one after the other.
    """

    num_samples: int = 20  # trials per cell; the first one is the attack's defaults
    sampler: Literal["tpe", "random"] = "tpe"  # Optuna's seeded TPE, or random search (baseline)
    max_concurrent: int = 2  # (Tune) trials of this cell running at once
    time_budget_s: float | None = None  # stop sampling new trials after this many seconds
    space: dict[str, Any] | None = None  # setting -> {kind: args}; None: the attack's own
    selection: SelectionConfig = SelectionConfig()  # (Tune) weights of DL-MIA's objective
    grace_epochs: int = 4  # (Tune) ASHA: joint epochs every trial gets before it may be stopped
    reduction_factor: int = 3  # (Tune) ASHA: keep the best 1/reduction_factor at each rung
    storage_path: str | None = None  # (Tune) its storage (abs path or s3://...); None: the out
    margin: float | None = None  # gain over the defaults' objective a pick needs, as a share
    #                              of its size (None: the attack's measured `search_margin`)
    max_share_gap: float = 0.35  # a trial whose target member share at 0.5 is further than this
    #                              from the shadow side's is degenerate, never picked
    side_by_side: int = 1  # (Tune) trials trained as one stacked model in one Tune trial, ASHA's
    #                        rule applied per trial inside it (1: each trial alone, Tune's ASHA)

    def __post_init__(self) -> None:
        for key in ("num_samples", "max_concurrent", "grace_epochs", "side_by_side"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
        if self.margin is not None and not 0 <= self.margin < math.inf:
            raise ConfigError(f"margin: must be >= 0 (or null), got {self.margin}")
        if not 0 < self.max_share_gap <= 1:
            raise ConfigError(f"max_share_gap: must be in (0, 1], got {self.max_share_gap}")
        if self.reduction_factor < 2:
            raise ConfigError(f"reduction_factor: must be >= 2, got {self.reduction_factor}")
        if self.time_budget_s is not None and self.time_budget_s <= 0:
            raise ConfigError(f"time_budget_s: must be > 0 (or null), got {self.time_budget_s}")
        path = self.storage_path
        if path is not None and "://" not in path and not Path(path).is_absolute():
            raise ConfigError(
                f"storage_path: {brief(path)} is relative (to which machine's working folder?); "
                "give an absolute path, a URI such as s3://bucket/dlmia, or null (the output "
                "folder)"
            )

    def for_attack(self, attack: str, fixed: dict[str, Any]) -> SearchConfig:
        """This search with its space resolved for `attack` with its `fixed` settings (the
        attack's own space when none is given), and checked.

        Raises:
            ConfigError: the attack declares no search space, or the space has a bad entry.
        """
        space = self.space if self.space is not None else default_space(attack, fixed)
        if space is None:
            searchable = ", ".join(a for a in ATTACKS if default_space(a, {}) is not None)
            raise ConfigError(f"{attack} declares no search space; searchable: {searchable}")
        check_space(space, attack, fixed)
        return replace(self, space=space)

    def pick_rule(self, attack: str) -> PickRule:
        """How this search of `attack` chooses its result among the finished trials."""
        margin = self.margin if self.margin is not None else ATTACKS[attack].search_margin
        return PickRule(margin, self.max_share_gap)

    def searched_space(self, fixed: dict[str, Any]) -> dict[str, Any]:
        """The space without the settings `fixed` pins (the space resolved: `for_attack`)."""
        assert self.space is not None, "a search's space is resolved by for_attack"
        return {key: spec for key, spec in self.space.items() if key not in fixed}


@dataclass(frozen=True)
class PickRule:
    """How a search picks its result without target labels: the defaults stand unless a trial
    beats their objective by more than the objective's own noise, `margin` x |the defaults'
    objective| (its spread over seeds grows with its size), and a degenerate
    trial (target predictions that put a member share at 0.5 further than `max_share_gap` from
    the shadow side's, e.g. every user one class) is never picked while another trial is not."""

    margin: float = 0.0
    max_share_gap: float = 0.35


@dataclass(frozen=True, eq=False)
class SearchOutcome:
    """The cell's result (the selected trial) and one row per trial."""

    selected: CellResult  # target metrics and scores of the trial the objective picked
    trials: pd.DataFrame  # one row per trial: param.*, criteria, target metrics, picks


def on_tune(attack: str) -> bool:
    """Whether cells of `attack` are searched on Ray Tune (it learns from the shadow side's
    labels, so a trial trains a model) rather than in the cell's own task."""
    return ATTACKS[attack].learns_from_shadow


def first_point(attack: str, space: dict[str, Any], fixed: dict[str, Any]) -> dict[str, Any]:
    """The point a search tries first: the attack's defaults (with `fixed`) moved into
    `space`."""
    return start_point(space, cfg.as_dict(settings_of(attack, {}, fixed)))


def trial_store(storage_dir: str | Path, name: str) -> TrialStore:
    """Where search `name` under `storage_dir` keeps its trial records."""
    return TrialStore(GridFolder(Path(storage_dir)).search(name))


def outcome(
    records: list[TrialRecord],
    shadow: SideOutput,
    target: SideOutput,
    *,
    attack: str,
    fixed: dict[str, Any],
    name: str,
    seed: int,
    rule: PickRule,
) -> SearchOutcome:
    """The search's result from its trial records: the selected trial as the cell's result
    (its target metrics, with their intervals) and the trials table.

    Raises:
        DlmiaError: no trial finished.
    """
    frame = trials_frame(records, target, attack, fixed, rule, float(shadow.labels.mean()))
    if not frame["finished"].any():
        raise DlmiaError(f"search {name}: no trial finished")
    best = frame.loc[frame["selected"]].iloc[0]
    scores = next(r.scores for r in records if r.number == best["study_trial"])
    assert scores is not None  # a finished trial's record holds its scores
    epochs = None if math.isnan(best["epochs"]) else int(best["epochs"])
    summary = SearchSummary(
        name, int(best["trial"]), len(frame), epochs, {k: float(best[k]) for k in CRITERIA}
    )
    metrics = attack_metrics(target.labels, scores, seed=seed)  # after the search: the record
    selected = CellResult(
        metrics, scores, target.labels, target.users, n_shadow=len(shadow.labels),
        n_target=len(target.labels), attack_settings=json.loads(best["settings"]),
        attack_seconds=float(best["fit_seconds"]), shadow_side=shadow.info,
        target_side=target.info, search=summary,
    )  # fmt: skip
    return SearchOutcome(selected, frame)


def trials_frame(
    records: list[TrialRecord],
    target: SideOutput,
    attack: str,
    fixed: dict[str, Any],
    rule: PickRule,
    shadow_share: float,
) -> pd.DataFrame:
    """One row per trial (`trial` 1, 2, ... in study order; `study_trial` is Optuna's number):
    `param.*`, label-free criteria (NaN where the attack's objective has none of them), the
    target member share it predicts at 0.5 and whether that makes it `degenerate` (`rule`,
    against the shadow side's member share), `target.*` metrics (finished trials; recorded
    after the search, `used_for_selection` False; no bootstrap interval: the selected trial's
    result has one) and the three picks."""
    defaults = json.dumps(cfg.as_dict(settings_of(attack, {}, fixed)), sort_keys=True)
    rows = []
    for position, record in enumerate(sorted(records, key=lambda r: r.number), start=1):
        settings = json.dumps(cfg.as_dict(settings_of(attack, record.params, fixed)),
                              sort_keys=True)  # fmt: skip
        row: dict[str, Any] = {
            "trial": position, "study_trial": record.number, "state": record.state,
            "finished": record.state == "complete", "defaults": settings == defaults,
            "epochs": record.metrics.get("epoch", math.nan),
            **{f"param.{k}": v for k, v in record.params.items()},
            **{k: record.metrics.get(k, math.nan) for k in (*CRITERIA, "fit_seconds")},
            "settings": settings, "predicted_share": math.nan, "degenerate": False,
            "used_for_selection": False,
        }  # fmt: skip
        if record.scores is not None:
            share = float((record.scores >= 0.5).mean())
            row["predicted_share"] = share
            row["degenerate"] = abs(share - shadow_share) > rule.max_share_gap
            target_metrics = attack_metrics(target.labels, record.scores, interval=False)
            row.update({f"target.{k}": v for k, v in target_metrics.items() if np.isscalar(v)})
        rows.append(row)
    frame = pd.DataFrame(rows)
    if len(frame) and not frame["defaults"].any():  # defaults outside the space: trial 1
        frame.loc[frame["trial"] == 1, "defaults"] = True
    done = frame[frame["finished"]]
    # Shadow validation alone: the best held-out AUC, ties (common: it saturates) by log-loss.
    ranks = {
        "shadow_pick": ["shadow_val_auc", "shadow_val_loss"],
        "oracle_pick": ["target.roc_auc"],
    }
    for column, keys in ranks.items():
        frame[column] = False
        if len(done) and keys[0] in done:
            order = [False] + [True] * (len(keys) - 1)  # the first key high, the others low
            best = done.sort_values(keys, ascending=order, kind="stable")  # ties: earlier trial
            frame.loc[best.index[0], column] = True
    frame["selected"] = False
    if len(done):
        frame.loc[selected_trial(done, rule), "selected"] = True
    return frame


def selected_trial(done: pd.DataFrame, rule: PickRule) -> Any:
    """The index of the trial `rule` picks among the finished trials `done`: the best objective
    among the trials that are not degenerate (all of them if every one is), unless the
    defaults are among those and the best does not beat them by more than the margin (a share
    of the defaults' objective's size)."""
    fair = done[~done["degenerate"].astype(bool)]
    candidates = fair if len(fair) else done
    best = candidates.sort_values("objective", ascending=False, kind="stable")  # ties: earlier
    defaults = candidates[candidates["defaults"]]
    if len(defaults):
        default = defaults.iloc[0]
        threshold = default["objective"] + rule.margin * abs(default["objective"])
        if not best.iloc[0]["objective"] > threshold:
            return defaults.index[0]
    return best.index[0]
