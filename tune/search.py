"""Per-cell search of DL-MIA's settings: Ray Tune + Optuna TPE against a label-free objective.

`search_cell` runs `num_samples` DL-MIA fits on one cell's sides, sampled by a seeded TPE (or
random) sampler (`OptunaSearch`) starting from DL-MIA's defaults, with ASHA stopping weak trials
over stage-3 epochs. Each trial reports `dlmia.selection.criteria` (shadow validation, reverse
validation, residual discrepancy and their `objective`) at ASHA's rungs through Ray Tune's
`report`.

Honesty by construction: trials receive the shadow side and the target *vectors* only (through
Tune's `with_parameters`, i.e. the object store, never recomputing the sides); the target labels
stay in this driver. A finished trial's last report carries its target member scores; the
driver scores them against the target labels *after* the search, for the record only: rows
carry `used_for_selection=False` for those metrics. The cell's result is the finished trial with
the best objective (`selected`); the trial shadow validation alone would pick (`shadow_pick`) and
the best target ROC AUC (`oracle_pick`, selected on test labels) are flagged beside it.

Persistence without pickles: each trial's record is the project's own JSON + .npy
(`storage_dir/searches/<name>/`, tune.trials), written before Optuna hears of it; the studies of
every search under one `storage_dir` share one journal file, `storage_dir/optuna.log`, one study
per cell (`optuna-dashboard storage_dir/optuna.log`), with ASHA-stopped trials PRUNED and each
trial's criteria as user attributes; tune.journal repairs a torn journal and gives a study back
the trials it lost from the records. Rerunning an interrupted search rebuilds a fresh Tuner on the
same study for the trials not yet recorded; Tune's own experiment state (pickles) is written
under `storage_dir/tune/` (or `SearchConfig.storage_path`) but never read back.
"""

from __future__ import annotations

import glob
import hashlib
import json
import logging
import math
import os
import re
import shutil
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal, cast

import numpy as np
import optuna
import pandas as pd
from optuna.trial import TrialState

from dlmia import config as cfg
from dlmia.attacks.dlmia import DLMIAAttack
from dlmia.errors import ConfigError, DlmiaError, brief
from dlmia.layout import GridFolder
from dlmia.metrics import attack_metrics
from dlmia.records import CellResult, SearchSummary
from dlmia.schema import CRITERIA
from dlmia.selection import SelectionConfig, criteria
from dlmia.sides import SideOutput
from tune.journal import open_journal, restore
from tune.space import build_space, check_space, default_space, settings_of, start_point
from tune.trials import SCORES_KEY, TrialRecord, TrialStore, encode_scores

SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}
NO_LOGGERS = "TUNE_DISABLE_AUTO_CALLBACK_LOGGERS"  # read by Tune when a Tuner starts


class SearchInterrupted(DlmiaError):
    """The search stopped before its budget was spent; rerun it to resume."""


@dataclass(frozen=True)
class SearchConfig:
    """Budget, space and objective of one cell's search (an attack's `search:` block in a grid).

    The settings a grid fixes for the attack are not searched (`searched_space`), and one trial
    reserves the attack's resources.
    """

    num_samples: int = 20  # trials per cell
    sampler: Literal["tpe", "random"] = "tpe"  # Optuna's seeded TPE, or random search (baseline)
    max_concurrent: int = 2  # trials of this cell running at once
    time_budget_s: float | None = None  # stop sampling new trials after this many seconds
    space: dict[str, Any] = field(default_factory=default_space)  # setting -> {kind: args}
    selection: SelectionConfig = SelectionConfig()  # weights of the label-free objective
    grace_epochs: int = 4  # ASHA: joint epochs every trial gets before it may be stopped
    reduction_factor: int = 3  # ASHA: keep the best 1/reduction_factor at each rung
    storage_path: str | None = None  # Tune storage (abs path or s3://...); None = the out folder

    def __post_init__(self) -> None:
        for key in ("num_samples", "max_concurrent", "grace_epochs"):
            if getattr(self, key) < 1:
                raise ConfigError(f"{key}: must be >= 1, got {getattr(self, key)}")
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
        check_space(self.space)

    def searched_space(self, fixed: dict[str, Any]) -> dict[str, Any]:
        """The space without the settings `fixed` pins."""
        return {key: spec for key, spec in self.space.items() if key not in fixed}


@dataclass(frozen=True, eq=False)
class SearchOutcome:
    """The cell's result (the selected trial) and one row per trial."""

    selected: CellResult  # target metrics and scores of the trial the objective picked
    trials: pd.DataFrame  # one row per trial: param.*, criteria, target metrics, picks


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
    from ray import tune as ray_tune

    settings = settings_of(config, fixed)
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
    })


def _named_trainable(search: str) -> Any:
    """`_trainable` under a name of its own: Tune registers trainables and their parameters by
    name cluster-wide, so concurrent searches of one name would run each other's cells."""
    def trial(config: dict[str, Any], **parameters: Any) -> None:
        _trainable(config, **parameters)

    trial.__name__ = trial.__qualname__ = (
        f"dlmia_{hashlib.sha256(search.encode()).hexdigest()[:12]}"
    )
    return trial


def _recording_search(**kwargs: Any) -> Any:
    """An OptunaSearch (imported lazily with Ray) that records every trial it hears is over."""
    from ray.tune.search.optuna import OptunaSearch

    class RecordingSearch(OptunaSearch):
        """Writes each trial's record (`store`) before telling the study: complete, PRUNED when
        ASHA stopped it, FAIL when it raised; a trial cut short by an interruption is left to
        the next run (`reconcile`)."""

        def __init__(self, store: TrialStore, **options: Any) -> None:
            super().__init__(**options)
            self.store = store

        def on_trial_complete(
            self, trial_id: str, result: dict[str, Any] | None = None, error: bool = False
        ) -> None:
            if trial_id in self._completed_trials or trial_id not in self._ot_trials:
                return
            trial = self._ot_trials[trial_id]
            self._completed_trials.add(trial_id)
            if not error and not (result or {}).get("done"):
                return  # interrupted, not stopped by ASHA: it runs again on resume
            record = TrialRecord.of(trial.number, trial.params, result, error)
            self.store.write(record)
            tell(cast(optuna.Study, self._ot_study), trial, record)

    return RecordingSearch(**kwargs)


def tell(study: optuna.Study, trial: optuna.Trial, record: TrialRecord) -> None:
    """Tell the study how `trial` ended, with its criteria as user attributes."""
    for key, value in record.metrics.items():
        trial.set_user_attr(key, value)
    if record.state == "complete":
        study.tell(trial, record.objective)
    else:
        study.tell(trial, state=TrialState.PRUNED if record.state == "pruned" else TrialState.FAIL)


def reconcile(study: optuna.Study, records: list[TrialRecord]) -> None:
    """Bring a study left by an interrupted run in line with the records: a running trial that
    was recorded gets its recorded end, one that was not is FAIL (it runs again as a new trial)."""
    recorded = {record.number: record for record in records}
    for frozen in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        trial = optuna.Trial(study, frozen._trial_id)  # optuna's handle on a running trial
        if frozen.number in recorded:
            tell(study, trial, recorded[frozen.number])
        else:
            study.tell(trial, state=TrialState.FAIL)


def _tuner(
    trainable: Any, search: SearchConfig, fixed: dict[str, Any], seed: int, storage: str,
    name: str, study_file: Path, store: TrialStore, remaining: int, callbacks: list[Any],
) -> Any:
    """A fresh Tuner for the `remaining` trials of the search: a RecordingSearch (seeded sampler,
    the cell's study) + ASHA over joint epochs; the defaults go first while no record holds
    them."""
    from ray import tune as ray_tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    space = search.searched_space(fixed)
    base = settings_of({}, fixed)  # DL-MIA's defaults with the fixed settings
    sampler = SAMPLERS[search.sampler](seed=seed)
    journal = open_journal(study_file)
    study = optuna.create_study(storage=journal, study_name=name, direction="maximize",
                                sampler=sampler, load_if_exists=True)
    records = store.load()
    distributions = OptunaSearch.convert_search_space(build_space(space))
    reconcile(study, records)
    restore(study, records, distributions)  # trials a torn journal lost
    first = start_point(space, cfg.as_dict(base))
    waiting = study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
    pending = not waiting and all(record.params != first for record in records)
    searcher = _recording_search(
        store=store,
        space=distributions,
        metric="objective",
        mode="max",
        points_to_evaluate=[first] if pending else None,
        sampler=sampler,
        study_name=name,
        storage=journal,
    )
    scheduler = ASHAScheduler(
        time_attr="epoch", metric="objective", mode="max", max_t=max_epoch(search, fixed),
        grace_period=search.grace_epochs, reduction_factor=search.reduction_factor,
    )
    return ray_tune.Tuner(
        trainable,
        tune_config=ray_tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=search.max_concurrent),
            scheduler=scheduler,
            num_samples=remaining,
            time_budget_s=search.time_budget_s,
            reuse_actors=True,
        ),
        run_config=ray_tune.RunConfig(
            name=f"{name}-{time.time_ns()}", storage_path=storage, verbose=0,
            failure_config=ray_tune.FailureConfig(max_failures=1), callbacks=callbacks,
        ),
    )


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
    return max(settings_of({}, fixed).epochs_joint + 1, search.grace_epochs)


def rung_epochs(search: SearchConfig, fixed: dict[str, Any]) -> frozenset[int]:
    """The epochs at which ASHA compares trials (grace * factor^i below the horizon): a report
    at these epochs and the final one decide exactly what reports at every epoch would."""
    horizon, epoch, rungs = max_epoch(search, fixed), search.grace_epochs, set()
    while epoch < horizon:
        rungs.add(epoch)
        epoch *= search.reduction_factor
    return frozenset(rungs)


def search_cell(
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
    from ray import tune as ray_tune

    folder = GridFolder(Path(storage_dir).resolve())
    storage = search.storage_path or str(folder.tune)
    if search.storage_path is None:  # the output folder's own: its lock keeps other runs out
        drop_dead_experiments(folder.tune, name)
    fixed = dict(fixed or {})
    store = trial_store(storage_dir, name)
    remaining = search.num_samples - len(store.load())
    started = time.monotonic()
    if remaining > 0:
        trainable = ray_tune.with_resources(
            ray_tune.with_parameters(
                _named_trainable(name), shadow=shadow, target_vectors=target.vectors,
                fixed=fixed, selection=search.selection, seed=seed, device=device,
                report_at=rung_epochs(search, fixed),
            ),
            {"cpu": resources[0], "gpu": resources[1]},
        )
        tuner = _tuner(trainable, search, fixed, seed, storage, name, folder.study_file, store,
                       remaining, list(callbacks or []))
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
    frame = trials_frame(records, target, fixed)
    if not frame["finished"].any():
        raise DlmiaError(f"search {name}: no trial finished; see {store.folder}")
    best = frame.loc[frame["selected"]].iloc[0]
    scores = next(r.scores for r in records if r.number == best["study_trial"])
    assert scores is not None  # a finished trial's record holds its scores
    summary = SearchSummary(
        name, int(best["trial"]), len(frame), int(best["epochs"]),
        {k: float(best[k]) for k in CRITERIA},
    )
    metrics = attack_metrics(target.labels, scores, seed=seed)
    selected = CellResult(
        metrics, scores, target.labels, target.users, n_shadow=len(shadow.labels),
        n_target=len(target.labels), attack_settings=json.loads(best["settings"]),
        attack_seconds=float(best["fit_seconds"]), shadow_side=shadow.info,
        target_side=target.info, search=summary,
    )
    return SearchOutcome(selected, frame)


def drop_dead_experiments(folder: Path, name: str) -> None:
    """Remove the Tune experiment folders (`<name>-<ns>`) that earlier runs of search `name` left
    in `folder`: each run makes a new one and none is read back (they hold pickles), so a
    search resumed again and again would fill a nearly full disk with them."""
    pattern = re.compile(re.escape(name) + r"-\d+")
    for dead in folder.glob(f"{glob.escape(name)}-*"):
        if pattern.fullmatch(dead.name) and dead.is_dir() and not dead.is_symlink():
            shutil.rmtree(dead, ignore_errors=True)


def trial_store(storage_dir: str | Path, name: str) -> TrialStore:
    """Where search `name` under `storage_dir` keeps its trial records."""
    return TrialStore(GridFolder(Path(storage_dir)).search(name))


def trials_frame(
    records: list[TrialRecord], target: SideOutput, fixed: dict[str, Any]
) -> pd.DataFrame:
    """One row per trial (`trial` 1, 2, ... in study order; `study_trial` is Optuna's number):
    `param.*`, label-free criteria, `target.*` metrics (finished trials; recorded after the
    search, `used_for_selection` False; no bootstrap interval: the selected trial's result
    has one) and the three picks."""
    rows = []
    for position, record in enumerate(sorted(records, key=lambda r: r.number), start=1):
        row: dict[str, Any] = {
            "trial": position, "study_trial": record.number, "state": record.state,
            "finished": record.state == "complete",
            "epochs": record.metrics.get("epoch", math.nan),
            **{f"param.{k}": v for k, v in record.params.items()},
            **{k: record.metrics.get(k, math.nan) for k in (*CRITERIA, "fit_seconds")},
            "settings": json.dumps(cfg.as_dict(settings_of(record.params, fixed)), sort_keys=True),
            "used_for_selection": False,
        }
        if record.scores is not None:
            target_metrics = attack_metrics(target.labels, record.scores, interval=False)
            row.update({f"target.{k}": v for k, v in target_metrics.items() if np.isscalar(v)})
        rows.append(row)
    frame = pd.DataFrame(rows)
    done = frame[frame["finished"]]
    # Shadow validation alone: the best held-out AUC, ties (common: it saturates) by log-loss.
    ranks = {
        "selected": ["objective"],
        "shadow_pick": ["shadow_val_auc", "shadow_val_loss"],
        "oracle_pick": ["target.roc_auc"],
    }
    for column, keys in ranks.items():
        frame[column] = False
        if len(done) and keys[0] in done:
            order = [False] + [True] * (len(keys) - 1)  # the first key high, the others low
            best = done.sort_values(keys, ascending=order, kind="stable")  # ties: earlier trial
            frame.loc[best.index[0], column] = True
    return frame
