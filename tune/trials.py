"""A search's trials as the project writes them: one JSON record (and its target scores) per trial.

These records, not Tune's experiment state, are what a search resumes from: Tune's state files
hold pickles, and nothing in an output folder is ever unpickled. A record is written by the
search's driver the moment Tune reports the trial over, before Optuna's study is told, so a
trial is done exactly when its record exists:

    <folder>/trial-0007.json   number, state, params, criteria, epochs, fit seconds
    <folder>/trial-0007.npy    the trial's target member scores (finished trials only)

Both are written atomically, the scores first. Scores are read back with `allow_pickle=False`.
"""

from __future__ import annotations

import base64
import json
import math
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np

from dlmia.io import atomic_write, write_json
from dlmia.schema import CRITERIA

State = Literal["complete", "pruned", "failed"]
SCORES_KEY = "target_scores"  # the final report's key for the encoded scores


@dataclass(frozen=True)
class TrialRecord:
    """One trial of a search: `number` is Optuna's (0-based) trial number in the cell's study."""

    number: int
    state: State  # complete: ran to the end; pruned: ASHA stopped it; failed: it raised
    params: dict[str, Any]  # the sampled point (the searched settings only)
    metrics: dict[str, float] = field(default_factory=dict)  # criteria, objective, epoch, ...
    scores: np.ndarray | None = None  # target member scores of a complete trial

    @classmethod
    def of(cls, number: int, params: dict[str, Any], result: dict[str, Any] | None,
           error: bool) -> TrialRecord:
        """The record of a trial that Tune reports over, from its last (flattened) result."""
        result = result or {}
        state: State = "failed" if error else "complete" if result.get("final") else "pruned"
        metrics = {k: float(result[k]) for k in (*CRITERIA, "epoch", "fit_seconds")
                   if isinstance(result.get(k), (int, float))}
        scores = decode_scores(result[SCORES_KEY]) if state == "complete" else None
        return cls(number, state, dict(params), metrics, scores)

    @property
    def objective(self) -> float:
        """The label-free objective (NaN for a failed trial)."""
        return self.metrics.get("objective", math.nan)


def encode_scores(scores: np.ndarray) -> str:
    """Scores as text for a Tune result (float64 bytes, base64: exact and compact)."""
    return base64.b64encode(np.asarray(scores, dtype="<f8").tobytes()).decode("ascii")


def decode_scores(text: str) -> np.ndarray:
    """The inverse of `encode_scores`."""
    return np.frombuffer(base64.b64decode(text), dtype="<f8").copy()


class TrialStore:
    """The trial records of one search, in `folder`."""

    def __init__(self, folder: str | Path) -> None:
        self.folder = Path(folder)

    def _paths(self, number: int) -> tuple[Path, Path]:
        stem = self.folder / f"trial-{number:04d}"
        return stem.with_suffix(".json"), stem.with_suffix(".npy")

    def write(self, record: TrialRecord) -> None:
        """Write `record` atomically: its scores first, the JSON (which marks it done) last."""
        info_path, scores_path = self._paths(record.number)
        if record.scores is not None:
            scores = record.scores

            def write_scores(tmp: Path) -> None:
                with tmp.open("wb") as handle:  # a path would get ".npy" appended
                    np.save(handle, scores, allow_pickle=False)

            atomic_write(scores_path, write_scores)
        body = {k: v for k, v in asdict(record).items() if k != "scores"}
        write_json(body | {"has_scores": record.scores is not None}, info_path)

    def load(self) -> list[TrialRecord]:
        """Every record in the folder, by trial number (an unreadable one is skipped: that trial
        runs again)."""
        records = []
        for path in sorted(self.folder.glob("trial-*.json")):
            try:
                records.append(self._read(path))
            except (OSError, ValueError, KeyError, TypeError):
                continue
        return records

    def _read(self, info_path: Path) -> TrialRecord:
        body = json.loads(info_path.read_text())
        scores = None
        if body["has_scores"]:
            scores = np.load(info_path.with_suffix(".npy"), allow_pickle=False)
        return TrialRecord(int(body["number"]), body["state"], dict(body["params"]),
                           {k: float(v) for k, v in body["metrics"].items()}, scores)

    def count(self) -> int:
        """How many trials are done (cheap: for progress)."""
        return len(list(self.folder.glob("trial-*.json")))
