"""The names of an output folder's files, declared once beside the tables' schema (dlmia.schema).

A grid run's folder, `dlmia grid run --out OUT` (`GridFolder`):

    OUT/results/<cell_id>.parquet   a cell's row of the results table
    OUT/scores/<cell_id>.parquet    its target users' member scores (user, label, score)
    OUT/trials/<cell_id>.parquet    a searched cell's trials table
    OUT/searches/<search>/          each trial's record (tune.trials): what a resumed search reads
    OUT/optuna.log                  every search's Optuna study, one journal per grid
    OUT/tune/                       Ray Tune's experiment folders (pickles: written, never read)
    OUT/grid.yaml                   the resolved grid
    OUT/sides/                      the side cache, unless --cache names another folder
    OUT/analysis/                   what `dlmia analyze` writes

A cell run's folder, `dlmia cell --out DIR`: `DIR/result.parquet` and `DIR/scores.parquet`.
An audit's folder, `dlmia audit --out DIR`: `DIR/scores/<attack>.parquet`,
`DIR/results/<attack>.parquet` (with members given) and `DIR/audit.json`.
The writers (tune.outputs, dlmia.results) and the readers (analysis) take every name from here.
"""

from __future__ import annotations

from pathlib import Path

RESULTS_DIR = "results"
SCORES_DIR = "scores"
TRIALS_DIR = "trials"
SEARCHES_DIR = "searches"
STUDY_FILE = "optuna.log"
TUNE_DIR = "tune"
GRID_FILE = "grid.yaml"
SIDES_DIR = "sides"
ANALYSIS_DIR = "analysis"
CELL_RESULT = "result.parquet"  # in a `dlmia cell --out` folder
CELL_SCORES = "scores.parquet"
AUDIT_FILE = "audit.json"  # in a `dlmia audit --out` folder


class GridFolder:
    """The paths of a grid run's output folder `root`."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)
        self.results = self.root / RESULTS_DIR
        self.scores = self.root / SCORES_DIR
        self.trials = self.root / TRIALS_DIR
        self.searches = self.root / SEARCHES_DIR
        self.tune = self.root / TUNE_DIR
        self.study_file = self.root / STUDY_FILE
        self.grid_file = self.root / GRID_FILE
        self.sides = self.root / SIDES_DIR
        self.analysis = self.root / ANALYSIS_DIR

    def search(self, name: str) -> Path:
        """Where search `name` keeps its trial records."""
        return self.searches / name
