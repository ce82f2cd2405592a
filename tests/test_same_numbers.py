"""Same seed, same numbers across redesigns: a demo-like grid (the demo's four attacks, DL-MIA
searched, on the tiny synthetic data) gives the result rows and trials pinned in
`tests/data/same_numbers.json`, which the code before the issue-26 redesign wrote.

The search runs one trial at a time with no ASHA stop (grace_epochs past the horizon), so which
trials finish does not depend on timing. Continuous numbers agree to a relative 1e-6, not
bit for bit: MKL and oneDNN choose their float32 kernels by CPU kind (dlmia.machine), so the same
seed gives networks whose outputs differ in their last bits on another CPU (an AMD EPYC moved the
losses and objectives here by ~1e-8 relative, and no ROC AUC, rank or pick); a change to the
method moves them by far more. To pin new numbers after a change that is meant to move
them: `python -m tests.test_same_numbers OUT_DIR` writes the file again (say why in the commit).
"""

from __future__ import annotations

import json
import math
import sys
from pathlib import Path
from typing import Any

import pytest

from analysis.results import load_results, load_trials
from tests.test_grid_runner import QUIET, tiny_grid
from tune.grid import parse_grid
from tune.plan import expand
from tune.runner import run_grid

PINNED = Path(__file__).parent / "data" / "same_numbers.json"
ROW_COLUMNS = ("roc_auc", "roc_auc_low", "roc_auc_high", "balanced_accuracy", "tpr_at_1pct_fpr",
               "n_shadow", "n_target", "trial", "n_trials", "objective")
TRIAL_COLUMNS = ("study_trial", "state", "objective", "shadow_val_loss", "roc_auc",
                 "param.lambda_align", "param.lr", "selected", "shadow_pick", "oracle_pick")
REL_TOL = 1e-6  # agreement of continuous numbers across CPU kinds (module doc)


def demo_like_grid() -> dict[str, Any]:
    """The demo's attacks (two baselines, Biased, searched DL-MIA) on a tiny LFM -> ItemCF
    pair."""
    raw = tiny_grid("same-numbers")
    raw["cells"] = [{"shadow": "syn.lfm", "target": "syn.itemcf"}]
    fixed = {"latent_inv": 4, "latent_spe": 4, "hidden": 16, "epochs_vae": 2, "epochs_heads": 2,
             "epochs_joint": 3, "period": 2, "batch_size": 64, "patience": 0}
    space = {"lambda_align": {"choice": [0.0, 1.0, 10.0]}, "lr": {"loguniform": [1e-4, 1e-2]}}
    search = {"num_samples": 3, "max_concurrent": 1, "grace_epochs": 8, "space": space}
    raw["attacks"] = {"norm": {}, "list-frequency": {}, "biased": {"settings": {"epochs": 3}},
                      "dlmia": {"settings": fixed, "search": search}}
    return raw


def plain(value: Any) -> Any:
    """A table value as JSON data (NA as None)."""
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return None
    try:
        if value != value:  # pandas NA compares as NA
            return None
    except TypeError:
        return None
    return value.item() if hasattr(value, "item") else value


def measure(out: Path) -> dict[str, Any]:
    """The pinned numbers of a finished run of `demo_like_grid` in `out`."""
    rows = load_results(out).set_index("cell_id").sort_index()
    trials = load_trials(out).sort_values(["cell_id", "trial"])
    return {
        "results": {
            cell: {c: plain(row[c]) for c in ROW_COLUMNS} for cell, row in rows.iterrows()
        },
        "trials": {
            cell: [{c: plain(row[c]) for c in TRIAL_COLUMNS} for _, row in group.iterrows()]
            for cell, group in trials.groupby("cell_id")
        },
    }


def agree(got: Any, want: Any) -> bool:
    """Floats within `REL_TOL` (NaN equals NaN); everything else (counts, states, flags, None)
    exactly, type included."""
    if isinstance(got, float) and isinstance(want, float):
        both_nan = math.isnan(got) and math.isnan(want)
        return both_nan or math.isclose(got, want, rel_tol=REL_TOL, abs_tol=1e-9)
    return type(got) is type(want) and bool(got == want)


def disagreements(got: dict[str, Any], want: dict[str, Any]) -> dict[str, tuple[Any, Any]]:
    """The entries where `got` and `want` do not `agree`, as (got, want)."""
    pairs = {key: (got.get(key), want.get(key)) for key in sorted(set(got) | set(want))}
    return {key: pair for key, pair in pairs.items() if not agree(*pair)}


def run(out: Path) -> dict[str, Any]:
    summary = run_grid(expand(parse_grid(demo_like_grid())), out=out, progress=QUIET)
    assert summary.exit_code == 0, summary.line()
    return measure(out)


@pytest.mark.usefixtures("local_ray")
def test_the_demo_like_grid_gives_the_pinned_numbers(tmp_path: Path) -> None:
    pinned = json.loads(PINNED.read_text())
    measured = run(tmp_path / "out")
    assert sorted(measured["results"]) == sorted(pinned["results"])
    for cell, row in pinned["results"].items():
        assert not disagreements(measured["results"][cell], row), cell
    assert sorted(measured["trials"]) == sorted(pinned["trials"])
    for cell, trials in pinned["trials"].items():
        assert len(measured["trials"][cell]) == len(trials)
        for got, want in zip(measured["trials"][cell], trials):
            assert not disagreements(got, want), cell


if __name__ == "__main__":
    from tune.cluster import start_local_ray

    start_local_ray(num_cpus=2)
    PINNED.write_text(json.dumps(run(Path(sys.argv[1])), indent=1, sort_keys=True) + "\n")
