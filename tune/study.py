"""One cell's search as an Optuna study driven by ask and tell, its trials recorded first.

`CellStudy` is what both kinds of search (tune.tune_search, tune.local_search) share: it opens
the cell's study in the grid's journal (tune.journal), brings it in line with the trial records
a killed run left (`reconcile`, `restore`), queues the attack's defaults as the first trial
while no record holds them, and then hands out points (`ask`) and takes results (`tell`). A
trial's record (tune.trials) is written before the study is told, so a trial is done exactly
when its record exists, and a resumed search asks only for the trials still missing. Only
Optuna's public API is used: `Study.ask`, `Study.tell` (with a trial or its number),
`Study.enqueue_trial`, `Study.add_trial`, `Trial.report` and `Trial.set_user_attr`.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import optuna
from optuna.trial import TrialState

from dlmia.layout import GridFolder
from tune.journal import STATES, open_journal, restore
from tune.search import SearchConfig, first_point, trial_store
from tune.space import distributions
from tune.trials import TrialRecord, TrialStore

SAMPLERS = {"tpe": optuna.samplers.TPESampler, "random": optuna.samplers.RandomSampler}


class CellStudy:
    """The study `name` in the journal `study_file`, over `space`, with its trial records in
    `store`; `first` is the point tried first (the attack's defaults, moved into the space)."""

    def __init__(
        self,
        study_file: Path,
        name: str,
        store: TrialStore,
        space: dict[str, Any],
        *,
        sampler: str,
        seed: int,
        first: dict[str, Any],
    ) -> None:
        self.store, self.first = store, first
        self.distributions = distributions(space)
        self.study = optuna.create_study(
            storage=open_journal(study_file), study_name=name, direction="maximize",
            sampler=SAMPLERS[sampler](seed=seed), load_if_exists=True,
        )  # fmt: skip
        self.asked: dict[int, optuna.Trial] = {}  # trial number -> the trial, until told
        records = store.load()
        reconcile(self.study, records)
        restore(self.study, records, self.distributions)  # trials a torn journal lost
        waiting = self.study.get_trials(deepcopy=False, states=(TrialState.WAITING,))
        if not waiting and all(record.params != first for record in records):
            self.study.enqueue_trial(first)

    @classmethod
    def of_search(
        cls, attack: str, search: SearchConfig, fixed: dict[str, Any], folder: GridFolder,
        name: str, seed: int,
    ) -> CellStudy:
        """The study of search `name` of `attack` (its space resolved, `fixed` not searched) in
        the output folder `folder`: the grid's journal, the search's trial records."""
        space = search.searched_space(fixed)
        return cls(
            folder.study_file, name, trial_store(folder.root, name), space,
            sampler=search.sampler, seed=seed, first=first_point(attack, space, fixed),
        )  # fmt: skip

    def ask(self) -> tuple[int, dict[str, Any]]:
        """A new trial: its number and the point to try."""
        trial = self.study.ask(self.distributions)
        self.asked[trial.number] = trial
        return trial.number, dict(trial.params)

    def report(self, number: int, objective: float, step: int) -> None:
        """An intermediate objective of a running trial (pruned trials keep the last one)."""
        self.asked[number].report(objective, step)

    def rung_values(self) -> dict[int, list[float]]:
        """step -> the intermediate objectives finished trials reported at that step."""
        values: dict[int, list[float]] = {}
        ended = (TrialState.COMPLETE, TrialState.PRUNED)
        for trial in self.study.get_trials(deepcopy=False, states=ended):
            for step, value in trial.intermediate_values.items():
                values.setdefault(step, []).append(value)
        return values

    def tell(self, record: TrialRecord) -> None:
        """How a trial ended: its criteria as user attributes, then its record, then the
        study's state (so a record always exists before the study hears of the end)."""
        trial = self.asked.pop(record.number)
        for key, value in record.metrics.items():
            trial.set_user_attr(key, value)
        self.store.write(record)
        tell(self.study, record.number, record)

    def forget(self, number: int) -> None:
        """A trial cut short by an interruption: left running in the study, so the next run
        marks it failed (`reconcile`) and tries a new one in its place."""
        self.asked.pop(number, None)


def tell(study: optuna.Study, number: int, record: TrialRecord) -> None:
    """Tell `study` how its running trial `number` ended, as `record` says (a complete trial
    with a NaN objective is recorded failed, with Optuna's warning)."""
    if record.state == "complete":
        study.tell(number, record.objective)
    else:
        study.tell(number, state=STATES[record.state])


def reconcile(study: optuna.Study, records: list[TrialRecord]) -> None:
    """Bring a study left by an interrupted run in line with the records: a running trial that
    was recorded gets its recorded end, one that was not is FAIL (it runs again as a new trial)."""
    recorded = {record.number: record for record in records}
    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        if trial.number in recorded:
            tell(study, trial.number, recorded[trial.number])
        else:
            study.tell(trial.number, state=TrialState.FAIL)
