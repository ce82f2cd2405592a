"""DL-MIA's per-cell search on Ray Tune: seeded TPE (or random) points, ASHA over joint epochs,
DL-MIA's label-free criteria as the objective.

`search_on_tune` runs `num_samples` DL-MIA fits on one cell's sides. Tune reaches the cell's
study (tune.study) through its public `Searcher` interface (`StudySearcher`: `suggest`,
`on_trial_result`, `on_trial_complete`); each trial reports `dlmia.selection.criteria` (shadow
validation, reverse validation, residual discrepancy and their `objective`) at ASHA's rungs
through `ray.tune.report`.

Honesty by construction: trials receive the shadow side and the target *vectors* only (through
Tune's `with_parameters`, i.e. the object store); the target labels stay in this driver. A
finished trial's last report carries its target member scores, which the driver scores against
the target labels *after* the search, for the record only (tune.search.outcome).

Rerunning an interrupted search builds a fresh Tuner on the same study for the trials not yet
recorded; Tune's own experiment state (pickles) is written under `storage_dir/tune/` (or
`SearchConfig.storage_path`) but never read back.
"""

from __future__ import annotations

import glob
import hashlib
import logging
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np
from ray import tune as ray_tune
from ray.tune.schedulers import ASHAScheduler
from ray.tune.search import ConcurrencyLimiter, Searcher

from dlmia.attacks.dlmia import DLMIAAttack
from dlmia.errors import DlmiaError
from dlmia.layout import GridFolder
from dlmia.selection import SelectionConfig, criteria
from dlmia.sides import SideOutput
from tune.search import (
    SearchConfig,
    SearchInterrupted,
    SearchOutcome,
    outcome,
    trial_store,
)
from tune.search_groups import GroupSearcher, group_size, group_trainable
from tune.space import settings_of
from tune.study import CellStudy
from tune.trials import SCORES_KEY, TrialRecord, encode_scores

NO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # read by Tune when a Tuner starts
ATTACK = "dlmia"


def _trainable(
    config: dict[str, Any],
    *,
    shadow: SideOutput,
    target_vectors: np.ndarray,
    fixed: dict[str, Any],
    selection: SelectionConfig,
    seed: int,
    device: str,
    report_at: frozenset[int],
) -> None:
    """One trial: fit DL-MIA, report the label-free criteria after the joint epochs in
    `report_at` (ASHA's rungs: the only reports it reads before the last), and last the final
    criteria with the target member scores (`final`)."""
    settings = settings_of(ATTACK, config, fixed)
    attack = DLMIAAttack(settings, device=device, seed=seed)

    def report(epoch: int) -> None:
        if epoch + 1 not in report_at:
            return
        values = criteria(attack, shadow.vectors, shadow.labels, target_vectors, selection)
        ray_tune.report({**values, "epoch": epoch + 1, "final": False})

    attack.on_epoch = report
    attack.fit(shadow.vectors, shadow.labels, target_vectors)
    final = criteria(attack, shadow.vectors, shadow.labels, target_vectors, selection)
    scores = attack.predict_proba(target_vectors)  # (n_target,)
    ray_tune.report({
        **final, "epoch": settings.epochs_joint + 1, "final": True,
        "fit_seconds": attack.info.get("fit_seconds"), SCORES_KEY: encode_scores(scores),
    })  # fmt: skip


def _named_trainable(search: str, trainable: Any = None) -> Any:
    """`trainable` (a lone trial: `_trainable`) under a name of its own: Tune registers
    trainables and their parameters by name cluster-wide, so concurrent searches of one name
    would run each other's cells."""
    body = trainable or _trainable

    def trial(config: dict[str, Any], **parameters: Any) -> None:
        body(config, **parameters)

    trial.__name__ = trial.__qualname__ = (
        f"dlmia_{hashlib.sha256(search.encode()).hexdigest()[:12]}"
    )
    return trial


class StudySearcher(Searcher):
    """Ray Tune's public searcher interface over a cell's study: Tune asks for points, passes
    on each result, and says when a trial is over; the study records the trial (complete,
    PRUNED when ASHA stopped it, FAIL when it raised) before it is told. A trial cut short by
    an interruption is left to the next run (tune.study.reconcile)."""

    def __init__(self, study: CellStudy) -> None:
        super().__init__(metric="objective", mode="max")
        self.study = study
        self.trials: dict[str, tuple[int, dict[str, Any]]] = {}  # Tune's id -> number, point

    def suggest(self, trial_id: str) -> dict[str, Any]:
        number, point = self.study.ask()
        self.trials[trial_id] = number, point
        return point

    def on_trial_result(self, trial_id: str, result: dict[str, Any]) -> None:
        number, _ = self.trials[trial_id]
        self.study.report(number, result["objective"], result["training_iteration"])

    def on_trial_complete(
        self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
    ) -> None:
        if trial_id not in self.trials:
            return
        number, point = self.trials.pop(trial_id)
        if not error and not (result or {}).get("done"):
            self.study.forget(number)  # interrupted, not stopped by ASHA: runs again on resume
            return
        self.study.tell(TrialRecord.of(number, point, result, error))

    def save(self, checkpoint_path: str) -> None:
        """Nothing to save: the study and the trial records hold the search's state (Tune's
        experiment state is never read back)."""


def _tuner(
    trainable: Any, search: SearchConfig, fixed: dict[str, Any], storage: str, name: str,
    study: CellStudy, remaining: int, size: int, callbacks: list[Any],
) -> Any:
    """A fresh Tuner for the `remaining` trials of the search: the cell's study behind
    `StudySearcher` + ASHA over joint epochs, or, for `size` > 1 trials side by side, behind
    `GroupSearcher` (ASHA's rule applied inside each group); at most `max_concurrent` Tune
    trials at once."""
    if size > 1:
        searcher: Searcher = GroupSearcher(study, size, remaining)
        scheduler, count = None, -(-remaining // size)
    else:
        searcher, count = StudySearcher(study), remaining
        scheduler = ASHAScheduler(
            time_attr="epoch", metric="objective", mode="max", max_t=max_epoch(search, fixed),
            grace_period=search.grace_epochs, reduction_factor=search.reduction_factor,
        )
    return ray_tune.Tuner(
        trainable,
        tune_config=ray_tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=search.max_concurrent),
            scheduler=scheduler, num_samples=count, time_budget_s=search.time_budget_s,
            reuse_actors=True,
        ),
        run_config=ray_tune.RunConfig(
            name=f"{name}-{time.time_ns()}", storage_path=storage, verbose=0,
            failure_config=ray_tune.FailureConfig(max_failures=1), callbacks=callbacks,
        ),
    )  # fmt: skip


@contextmanager
def without_tune_loggers() -> Iterator[None]:
    """Run Tune without its per-trial CSV, JSON and TensorBoard result files (the search records
    every trial itself, tune.trials), and without the warning Tune's result grid then gives for
    each trial whose files it cannot find."""
    previous = os.environ.get(NO_LOGGERS)
    analysis = logging.getLogger("ray.tune.analysis.experiment_analysis")
    level = analysis.level
    os.environ[NO_LOGGERS] = "1"
    analysis.setLevel(logging.ERROR)
    try:
        yield
    finally:
        analysis.setLevel(level)
        if previous is None:
            del os.environ[NO_LOGGERS]
        else:
            os.environ[NO_LOGGERS] = previous


def max_epoch(search: SearchConfig, fixed: dict[str, Any]) -> int:
    """ASHA's horizon in reported epochs: the joint epochs, and one for the final report."""
    return max(settings_of(ATTACK, {}, fixed).epochs_joint + 1, search.grace_epochs)


def rung_epochs(search: SearchConfig, fixed: dict[str, Any]) -> frozenset[int]:
    """The epochs at which ASHA compares trials (grace * factor^i below the horizon): a report
    at these epochs and the final one decide exactly what reports at every epoch would."""
    horizon, epoch, rungs = max_epoch(search, fixed), search.grace_epochs, set()
    while epoch < horizon:
        rungs.add(epoch)
        epoch *= search.reduction_factor
    return frozenset(rungs)


def search_on_tune(
    shadow: SideOutput,
    target: SideOutput,
    search: SearchConfig,
    *,
    seed: int,
    storage_dir: str | Path,
    name: str,
    fixed: dict[str, Any] | None = None,
    resources: tuple[float, float] = (1.0, 0.0),
    device: str = "auto",
    callbacks: list[Any] | None = None,
) -> SearchOutcome:
    """Search DL-MIA's settings on one cell; resumes a search of the same `name` in `storage_dir`.

    Needs an initialised Ray. `fixed` DL-MIA settings hold in every trial (and are not searched);
    each trial reserves `resources` (CPUs, GPUs). `target.labels` are read only after the search,
    to record metrics. `callbacks` are Tune callbacks of a new search (progress, tests).

    Raises:
        SearchInterrupted: the search was stopped (e.g. SIGINT) before its budget was spent.
        DlmiaError: no trial finished.
    """
    fixed = dict(fixed or {})
    search = search.for_attack(ATTACK, fixed)
    folder = GridFolder(Path(storage_dir).resolve())
    storage = search.storage_path or str(folder.tune)
    if search.storage_path is None:  # the output folder's own: its lock keeps other runs out
        drop_dead_experiments(folder.tune, name)
    store = trial_store(folder.root, name)
    remaining = search.num_samples - len(store.load())
    started = time.monotonic()
    if remaining > 0:
        study = CellStudy.of_search(ATTACK, search, fixed, folder, name, seed)
        size = group_size(search, fixed)
        grouped = size > 1
        extra = {"reduction_factor": search.reduction_factor} if grouped else {}
        trainable = ray_tune.with_resources(
            ray_tune.with_parameters(
                _named_trainable(name, group_trainable if grouped else None), shadow=shadow,
                target_vectors=target.vectors, fixed=fixed, selection=search.selection,
                seed=seed, device=device, report_at=rung_epochs(search, fixed), **extra,
            ),
            {"cpu": resources[0], "gpu": resources[1]},
        )  # fmt: skip
        tuner = _tuner(trainable, search, fixed, storage, name, study, remaining, size,
                       list(callbacks or []))  # fmt: skip
        with without_tune_loggers():
            tuner.fit()
    records = store.load()
    budget_spent = search.time_budget_s is not None and (
        time.monotonic() - started >= search.time_budget_s
    )
    if len(records) < search.num_samples and not budget_spent:
        raise SearchInterrupted(
            f"search {name}: {len(records)} of {search.num_samples} trials; rerun to resume"
        )
    try:
        return outcome(records, shadow, target, attack=ATTACK, fixed=fixed, name=name, seed=seed,
                       rule=search.pick_rule(ATTACK))
    except DlmiaError as exc:
        raise DlmiaError(f"{exc}; see {store.folder}") from None


def drop_dead_experiments(folder: Path, name: str) -> None:
    """Remove the Tune experiment folders (`<name>-<ns>`) that earlier runs of search `name` left
    in `folder`: each run makes a new one and none is read back (they hold pickles), so a
    search resumed again and again would fill a nearly full disk with them."""
    pattern = re.compile(re.escape(name) + r"-\d+")
    for dead in folder.glob(f"{glob.escape(name)}-*"):
        if pattern.fullmatch(dead.name) and dead.is_dir() and not dead.is_symlink():
            shutil.rmtree(dead, ignore_errors=True)
