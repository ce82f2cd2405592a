"""Per-cell search of DL-MIA's settings: Ray Tune + Optuna TPE against a label-free objective.

`search_cell` runs `num_samples` DL-MIA fits on one cell's sides, sampled by a seeded TPE (or random)
sampler (`OptunaSearch`) starting from DL-MIA's defaults, with ASHA stopping weak trials over stage-3
epochs. Each trial reports `dlmia.selection.criteria` (shadow validation, reverse validation,
residual discrepancy and their `objective`) after every joint epoch through `tune.report`.

Honesty by construction: trials receive the shadow side and the target *vectors* only (through
`tune.with_parameters`, i.e. the object store, never recomputing the sides); the target labels
stay in this driver. A finished trial saves its target member scores in its checkpoint; the
driver scores them against the target labels *after* the search, for the record only: rows
carry `used_for_selection=False` for those metrics. The cell's result is the finished trial with
the best objective (`selected`); the trial shadow validation alone would pick (`shadow_pick`) and
the best target ROC AUC (`oracle_pick`, selected on test labels) are flagged beside it.

Persistence: the Optuna study is a JournalStorage file `storage_dir/optuna/<name>.log`
(`optuna-dashboard storage_dir/optuna/<name>.log`); Tune's experiment lives under `storage_dir`
(or `SearchConfig.storage_path`, e.g. s3://bucket/prefix). Rerunning an interrupted search with
the same `storage_dir` and `name` resumes it with `Tuner.restore` (search state included).
"""

from __future__ import annotations

import hashlib
import json
import re
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import optuna
import pandas as pd

from dlmia import config as cfg
from dlmia.attacks.dlmia import DLMIAAttack
from dlmia.cell import CellResult
from dlmia.errors import ConfigError, DlmiaError
from dlmia.metrics import attack_metrics
from dlmia.selection import CRITERIA, SelectionConfig, criteria
from dlmia.sides import SideOutput
from tune.space import build_space, check_space, default_space, settings_of, start_point

SCORES_FILE = "target_scores.npy"
SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}


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
) -> None:
    """One trial: fit DL-MIA, report the label-free criteria per joint epoch, save the scores."""
    from ray import tune

    settings = settings_of(config, fixed)
    attack = DLMIAAttack(settings, device=device, seed=seed)

    def report(epoch: int) -> None:
        values = criteria(attack, shadow.vectors, shadow.labels, target_vectors, selection)
        tune.report({**values, "epoch": epoch + 1, "done": False})

    attack.on_epoch = report
    attack.fit(shadow.vectors, shadow.labels, target_vectors)
    final = criteria(attack, shadow.vectors, shadow.labels, target_vectors, selection)
    scores = attack.predict_proba(target_vectors)  # (n_target,)
    with tempfile.TemporaryDirectory() as folder:
        np.save(Path(folder) / SCORES_FILE, scores)
        tune.report(
            {**final, "epoch": settings.epochs_joint + 1, "done": True,
             "fit_seconds": attack.info.get("fit_seconds")},
            checkpoint=tune.Checkpoint.from_directory(folder),
        )


def _named_trainable(search: str) -> Any:
    """`_trainable` under a name of its own: Tune registers trainables and their parameters by
    name cluster-wide, so concurrent searches of one name would run each other's cells."""
    def trial(config: dict[str, Any], **parameters: Any) -> None:
        _trainable(config, **parameters)

    trial.__name__ = trial.__qualname__ = f"dlmia_{hashlib.sha256(search.encode()).hexdigest()[:12]}"
    return trial


def _tuner(
    trainable: Any, search: SearchConfig, fixed: dict[str, Any], seed: int, storage: str,
    name: str, study: Path, callbacks: list[Any],
) -> Any:
    """A fresh Tuner: OptunaSearch (seeded sampler, journal study) + ASHA over joint epochs."""
    from optuna.storages import JournalStorage
    from optuna.storages.journal import JournalFileBackend
    from ray import tune
    from ray.tune.schedulers import ASHAScheduler
    from ray.tune.search import ConcurrencyLimiter
    from ray.tune.search.optuna import OptunaSearch

    study.parent.mkdir(parents=True, exist_ok=True)
    space = search.searched_space(fixed)
    base = settings_of({}, fixed)  # DL-MIA's defaults with the fixed settings
    searcher = OptunaSearch(
        space=OptunaSearch.convert_search_space(build_space(space)),
        metric="objective",
        mode="max",
        points_to_evaluate=[start_point(space, cfg.as_dict(base))],
        sampler=SAMPLERS[search.sampler](seed=seed),
        study_name=name,
        storage=JournalStorage(JournalFileBackend(str(study))),
    )
    max_t = max(base.epochs_joint + 1, search.grace_epochs)
    scheduler = ASHAScheduler(
        time_attr="epoch", metric="objective", mode="max", max_t=max_t,
        grace_period=search.grace_epochs, reduction_factor=search.reduction_factor,
    )
    return tune.Tuner(
        trainable,
        tune_config=tune.TuneConfig(
            search_alg=ConcurrencyLimiter(searcher, max_concurrent=search.max_concurrent),
            scheduler=scheduler,
            num_samples=search.num_samples,
            time_budget_s=search.time_budget_s,
        ),
        run_config=tune.RunConfig(
            name=name, storage_path=storage, verbose=0,
            failure_config=tune.FailureConfig(max_failures=1), callbacks=callbacks,
        ),
    )


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
    from ray import tune

    storage_dir = Path(storage_dir).resolve()
    storage = search.storage_path or str(storage_dir / "tune")
    fixed = dict(fixed or {})
    trainable = tune.with_resources(
        tune.with_parameters(
            _named_trainable(name), shadow=shadow, target_vectors=target.vectors, fixed=fixed,
            selection=search.selection, seed=seed, device=device,
        ),
        {"cpu": resources[0], "gpu": resources[1]},
    )
    experiment = f"{storage.rstrip('/')}/{name}"
    started = time.monotonic()
    if tune.Tuner.can_restore(experiment):
        tuner = tune.Tuner.restore(experiment, trainable, resume_errored=True)
    else:
        study = storage_dir / "optuna" / f"{name}.log"
        tuner = _tuner(trainable, search, fixed, seed, storage, name, study, list(callbacks or []))
    grid = tuner.fit()
    results = [r for r in grid if r.metrics]
    budget_spent = search.time_budget_s is not None and (
        time.monotonic() - started >= search.time_budget_s
    )
    if len(grid) < search.num_samples and not budget_spent:
        raise SearchInterrupted(
            f"search {name}: {len(grid)} of {search.num_samples} trials; rerun to resume"
        )
    frame = trials_frame(results, target, fixed)
    if not frame["finished"].any():
        raise DlmiaError(f"search {name}: no trial finished; see {experiment}")
    best = frame.loc[frame["selected"]].iloc[0]
    scores = _scores(results[int(best["result_index"])])
    info = {
        "n_shadow": len(shadow.labels), "n_target": len(target.labels),
        "attack_seconds": float(best["fit_seconds"]),
        "attack_settings": json.loads(best["settings"]),
        "search": name, "trial": int(best["trial"]), "n_trials": len(frame),
        "criteria": {k: float(best[k]) for k in CRITERIA},
    }
    metrics = attack_metrics(target.labels, scores, seed=seed)
    return SearchOutcome(CellResult(metrics, scores, target.labels, target.users, info), frame)


def _scores(result: Any) -> np.ndarray:
    with result.checkpoint.as_directory() as folder:
        return np.load(Path(folder) / SCORES_FILE)  # type: ignore[no-any-return]


def trial_number(result: Any) -> int:
    """The trial's 1-based creation number in its experiment (from its folder name)."""
    found = re.search(rf"_{result.metrics['trial_id']}_(\d+)_", Path(result.path).name)
    return int(found.group(1)) if found else -1


def trials_frame(results: list[Any], target: SideOutput, fixed: dict[str, Any]) -> pd.DataFrame:
    """One row per trial: `param.*`, label-free criteria, `target.*` metrics (finished trials;
    recorded after the search, `used_for_selection` False) and the three picks."""
    rows = []
    for index, result in enumerate(results):
        metrics = result.metrics
        finished = bool(metrics.get("done")) and result.checkpoint is not None
        row: dict[str, Any] = {
            "trial": trial_number(result), "trial_id": metrics.get("trial_id"),
            "result_index": index,
            "finished": finished, "epochs": metrics.get("epoch"),
            **{f"param.{k}": v for k, v in result.config.items()},
            **{k: metrics.get(k) for k in (*CRITERIA, "fit_seconds")},
            "settings": json.dumps(cfg.as_dict(settings_of(result.config, fixed)), sort_keys=True),
            "used_for_selection": False,
        }
        if finished:
            target_metrics = attack_metrics(target.labels, _scores(result))
            row.update({f"target.{k}": v for k, v in target_metrics.items() if np.isscalar(v)})
        rows.append(row)
    frame = pd.DataFrame(rows).sort_values("trial", ignore_index=True)
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
