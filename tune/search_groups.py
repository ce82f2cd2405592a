"""DL-MIA trials side by side on Ray Tune: one Tune trial trains a group of the cell's trials as
one stacked model (dlmia.attacks.dlmia.side_by_side).

A DL-MIA step is tiny (256 vectors of ~100 numbers), so a lone trial leaves most of each step to
Python and dispatch; K trials in one batched step cost much less than K steps (bench/search.py).
Tune still places, runs, limits and budgets the work, one group per Tune trial; Optuna still
proposes every point and hears every result, as in the one-trial-per-Tune-trial search:

- `GroupSearcher.suggest` asks the cell's study for up to `size` points, and passes the rung
  objectives of the search's finished trials with them;
- the group's trainable fits them side by side and, at ASHA's rungs, scores each member by the
  label-free criteria and applies ASHA's rule to it (tune.rungs.RungRule): a member below the
  cutoff stops there (pruned), the others go on. The defaults' trial, the yardstick of the pick
  rule, is fitted alone (exactly as a run at fixed settings fits it) and never stopped. The
  group's one report carries every member's result;
- `GroupSearcher.on_trial_complete` reports each member's rung objectives to the study and
  records and tells it as the one-trial search does (complete, pruned or failed).

Honesty is the same: the trainable receives the shadow side and the target vectors, never the
target labels.
"""

from __future__ import annotations

import time
from functools import partial
from typing import Any

import numpy as np
from ray import tune as ray_tune
from ray.tune.search import Searcher

from dlmia.attacks.dlmia import DLMIAAttack, DLMIAConfig
from dlmia.attacks.dlmia.side_by_side import fit_side_by_side
from dlmia.attacks.dlmia.stacked import STACKABLE, stackable
from dlmia.selection import SelectionConfig, criteria
from dlmia.sides import SideOutput
from tune.rungs import RungRule
from tune.search import SearchConfig
from tune.space import settings_of
from tune.study import CellStudy
from tune.trials import SCORES_KEY, TrialRecord, encode_scores

ATTACK = "dlmia"


def group_size(search: SearchConfig, fixed: dict[str, Any]) -> int:
    """Trials per Tune trial for this search: `side_by_side` when every searched setting can
    differ within a stack and the fixed ones give a stackable network, else 1."""
    if search.side_by_side == 1 or not set(search.searched_space(fixed)) <= STACKABLE:
        return 1
    return search.side_by_side if stackable([settings_of(ATTACK, {}, fixed)]) else 1


def group_trainable(
    config: dict[str, Any],
    *,
    shadow: SideOutput,
    target_vectors: np.ndarray,
    fixed: dict[str, Any],
    selection: SelectionConfig,
    seed: int,
    device: str,
    report_at: frozenset[int],
    reduction_factor: int,
) -> None:
    """One group (`config["members"]`: [number, point, is the defaults] triples) fitted side
    by side; ASHA's rule at the rungs `report_at` with the earlier trials' rung values
    `config["rungs"]`; one final report with each member's result (`members`). The defaults'
    trial is fitted alone and never stopped early: the pick rule measures every other trial
    against it, and a search that keeps it gives exactly the fixed-settings run's numbers."""
    members = config["members"]
    attacks = [DLMIAAttack(settings_of(ATTACK, point, fixed), device=device, seed=seed)
               for _, point, _ in members]  # fmt: skip
    alone = [t for t, (_, _, first) in enumerate(members) if first]
    rule = RungRule(report_at, reduction_factor,
                    {int(step): values for step, values in config["rungs"].items()})  # fmt: skip
    last: list[dict[str, Any]] = [{} for _ in members]  # a member's latest rung result
    reports: list[list[list[float]]] = [[] for _ in members]  # [epoch, objective] per rung
    pruned: set[int] = set()

    def at_epoch(t: int, epoch: int) -> bool:
        if not rule.is_rung(epoch + 1):
            return False
        values = criteria(attacks[t], shadow.vectors, shadow.labels, target_vectors, selection)
        last[t] = {**values, "epoch": epoch + 1, "final": False}
        reports[t].append([epoch + 1, values["objective"]])
        if rule.stops(epoch + 1, values["objective"]) and t not in alone:
            pruned.add(t)
            return True
        return False

    started = time.perf_counter()
    for t in alone:  # the defaults: as the fixed-settings run fits them, never stopped early
        attacks[t].on_epoch = partial(at_epoch, t)
        attacks[t].fit(shadow.vectors, shadow.labels, target_vectors)
    stacked = [t for t in range(len(members)) if t not in alone]
    if stacked:
        fit_side_by_side([attacks[t] for t in stacked], shadow.vectors, shadow.labels,
                         target_vectors, on_epoch=lambda a, epoch: at_epoch(stacked[a], epoch))
    results = [
        last[t] if t in pruned else _finished(attack, shadow, target_vectors, selection)
        for t, attack in enumerate(attacks)
    ]
    share = (time.perf_counter() - started) / len(members)  # each member's share of the group
    for result, rungs in zip(results, reports, strict=True):
        result.update(fit_seconds=share, rungs=rungs)
    ray_tune.report({"objective": max(r["objective"] for r in results), "members": results})


def _finished(
    attack: DLMIAAttack, shadow: SideOutput, target_vectors: np.ndarray,
    selection: SelectionConfig,
) -> dict[str, Any]:  # fmt: skip
    """A member that ran to its end: final criteria and its target member scores."""
    final = criteria(attack, shadow.vectors, shadow.labels, target_vectors, selection)
    scores = attack.predict_proba(target_vectors)  # (n_target,)
    config: DLMIAConfig = attack.config
    return {**final, "epoch": config.epochs_joint + 1, "final": True,
            SCORES_KEY: encode_scores(scores)}  # fmt: skip


class GroupSearcher(Searcher):
    """Ray Tune's public searcher interface over a cell's study, `size` points per Tune trial
    (module doc); `count` points in all."""

    def __init__(self, study: CellStudy, size: int, count: int) -> None:
        super().__init__(metric="objective", mode="max")
        self.study, self.size, self.left = study, size, count
        self.groups: dict[str, list[tuple[int, dict[str, Any]]]] = {}  # Tune's id -> members

    def suggest(self, trial_id: str) -> dict[str, Any] | None:
        if self.left <= 0:  # the Tuner asks for exactly the groups the points fill
            return None
        members = [self.study.ask() for _ in range(min(self.size, self.left))]
        self.left -= len(members)
        self.groups[trial_id] = members
        rungs = {str(step): values for step, values in self.study.rung_values().items()}
        return {"members": [[number, point, point == self.study.first]
                            for number, point in members], "rungs": rungs}  # fmt: skip

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        members = self.groups.pop(trial_id, None)
        if members is None:
            return
        if not error and not (result or {}).get("done"):
            for number, _ in members:  # interrupted: they run again on resume
                self.study.forget(number)
            return
        outcomes = (result or {}).get("members") if not error else None
        for i, (number, point) in enumerate(members):
            member = outcomes[i] if outcomes else None
            for step, value in (member or {}).get("rungs", []):
                self.study.report(number, value, int(step))
            self.study.tell(TrialRecord.of(number, point, member, member is None))

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study and the trial records hold the search's state."""
