"""The per-cell search of an attack that learns nothing from the shadow side's labels (the
reference attack), trial after trial in the cell's own task.

Such an attack's score on the shadow side's users is an honest estimate of its power: the
adversary knows their membership, and nothing was fitted to it. So a trial scores the shadow
side's users (their lists and statistics under the shadow model, and the same statistics under
the reference pool, which serves them too) and its objective is that score's ROC AUC against
the shadow labels (`shadow_val_auc`, the same number). ROC AUC rather than TPR at 1% FPR: a
shadow side holds a few hundred non-members, so 1% FPR rests on a handful of users and would
rank trials by noise; the AUC uses every pair of users. Ties go to the earlier trial, so the
defaults (trial 1) win when nothing beats them.

A trial costs milliseconds (no training), so no Ray Tune: the cell's task asks the study
(tune.study) for a point, scores it, writes its record and tells the study, as many times as
the budget says. The target's scores of every trial are recorded too, and read against the
target labels only after the search (tune.search.outcome).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sklearn.metrics import roc_auc_score

from dlmia.attacks import ATTACKS
from dlmia.attacks.base import TargetView
from dlmia.cell import side_view
from dlmia.errors import ConfigError
from dlmia.layout import GridFolder
from dlmia.sides import SideOutput
from tune.search import SearchConfig, SearchOutcome, outcome, trial_store
from tune.space import settings_of
from tune.study import CellStudy
from tune.trials import TrialRecord


def search_in_process(
    attack: str,
    shadow: SideOutput,
    target: SideOutput,
    references: Sequence[SideOutput],
    search: SearchConfig,
    *,
    seed: int,
    storage_dir: str | Path,
    name: str,
    fixed: dict[str, Any] | None = None,
    device: str = "auto",
) -> SearchOutcome:
    """Search `attack`'s settings on one cell (with its reference pool `references`); resumes a
    search of the same `name` in `storage_dir`. `target.labels` are read only after the
    search, to record metrics.

    Raises:
        ConfigError: the attack learns from the shadow side (search it on Tune), or the search
            block is bad for it.
    """
    if ATTACKS[attack].learns_from_shadow:
        raise ConfigError(f"{attack} learns from the shadow side: its search runs on Ray Tune")
    fixed = dict(fixed or {})
    search = search.for_attack(attack, fixed)
    folder = GridFolder(Path(storage_dir).resolve())
    store = trial_store(folder.root, name)
    remaining = search.num_samples - len(store.load())
    if remaining > 0:
        study = CellStudy.of_search(attack, search, fixed, folder, name, seed)
        views = side_view(shadow, references), side_view(target, references)
        budget = search.time_budget_s if search.time_budget_s is not None else float("inf")
        stop = time.monotonic() + budget  # no new trial after it
        while remaining and time.monotonic() < stop:
            number, point = study.ask()
            study.tell(shadow_trial(number, point, attack, fixed, shadow, target, views,
                                    seed=seed, device=device))  # fmt: skip
            remaining -= 1
    records = store.load()
    return outcome(records, shadow, target, attack=attack, fixed=fixed, name=name, seed=seed,
                   rule=search.pick_rule(attack))


def shadow_trial(
    number: int,
    point: dict[str, Any],
    attack: str,
    fixed: dict[str, Any],
    shadow: SideOutput,
    target: SideOutput,
    views: tuple[TargetView, TargetView],
    *,
    seed: int,
    device: str,
) -> TrialRecord:
    """Trial `number` (the sampled `point` over the `fixed` settings): the attack fitted (a
    check of its inputs: it learns nothing), its ROC AUC on the shadow side's users as the
    objective, and its target scores for the record."""
    started = time.perf_counter()
    model = ATTACKS[attack](settings_of(attack, point, fixed), device=device, seed=seed)
    model.fit(shadow.vectors, shadow.labels, target.vectors)
    shadow_view, target_view = views
    auc = float(roc_auc_score(shadow.labels, model.predict_proba(shadow.vectors, shadow_view)))
    scores = model.predict_proba(target.vectors, target_view)  # (n_target,)
    metrics = {"shadow_val_auc": auc, "objective": auc,
               "fit_seconds": time.perf_counter() - started}  # fmt: skip
    return TrialRecord(number, "complete", dict(point), metrics, scores)
