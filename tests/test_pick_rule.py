"""A search's pick without target labels (tune.search.PickRule): the defaults stand unless a
trial beats them by more than the objective's noise, and degenerate trials are refused."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from dlmia.attacks import ATTACKS
from dlmia.errors import ConfigError
from dlmia.records import ServedInfo, SideInfo
from dlmia.sides import SideOutput
from tune.search import PickRule, SearchConfig, selected_trial, trials_frame
from tune.trials import TrialRecord


def finished(objectives: list[float], degenerate: list[bool] | None = None) -> pd.DataFrame:
    """Finished trials 1, 2, ... with these objectives; trial 1 holds the defaults."""
    n = len(objectives)
    return pd.DataFrame({
        "trial": range(1, n + 1), "objective": objectives, "defaults": [True] + [False] * (n - 1),
        "degenerate": degenerate or [False] * n,
    })  # fmt: skip


def picked(frame: pd.DataFrame, rule: PickRule) -> int:
    return int(frame.loc[selected_trial(frame, rule), "trial"])


def test_the_defaults_stand_unless_beaten_by_more_than_the_margin() -> None:
    frame = finished([-0.50, -0.46, -0.48])
    assert picked(frame, PickRule(margin=0.1)) == 1  # 0.04 better, the noise 0.1 x 0.5
    assert picked(frame, PickRule(margin=0.05)) == 2  # 0.04 better, the noise 0.05 x 0.5
    assert picked(finished([-2.0, -1.5]), PickRule(margin=0.2)) == 2  # 0.5 beyond 0.2 x 2
    assert picked(finished([-0.5, -0.5]), PickRule(margin=0.0)) == 1  # a tie keeps the defaults


def test_a_degenerate_trial_is_never_picked_while_another_is_not() -> None:
    frame = finished([-0.50, -0.10, -0.45], degenerate=[False, True, False])
    assert picked(frame, PickRule(margin=0.01)) == 3
    defaults_degenerate = finished([-0.30, -0.60], degenerate=[True, False])
    assert picked(defaults_degenerate, PickRule(margin=1.0)) == 2  # margin or not
    every_one = finished([-0.30, -0.20], degenerate=[True, True])
    assert picked(every_one, PickRule(margin=0.0)) == 2  # nothing fair: the best objective


def side(labels: np.ndarray) -> SideOutput:
    served = ServedInfo(int(labels.sum()), int((1 - labels).sum()), 0.0, 0.0, 0.0, {}, 1)
    info = SideInfo(served, 0, 1.0, 1.0, 0.0)
    n = len(labels)
    lists = np.zeros((n, 1), np.int32)
    return SideOutput(np.zeros((n, 2), np.float32), labels, np.arange(n), lists, info)


def test_the_trials_table_flags_a_constant_prediction_as_degenerate() -> None:
    labels = np.array([1, 1, 0, 0, 1, 0])
    scores = {
        0: np.array([0.9, 0.8, 0.2, 0.1, 0.7, 0.3]),  # the defaults: half members
        1: np.full(6, 0.9),  # every user a member: degenerate, though its objective is best
        2: np.array([0.9, 0.6, 0.4, 0.2, 0.8, 0.6]),
    }
    objectives = {0: -0.6, 1: -0.1, 2: -0.3}
    records = [TrialRecord(n, "complete", {"lr": 1e-3} if n == 0 else {"lr": 0.01 * n},
                           {"objective": objectives[n]}, scores[n]) for n in range(3)]  # fmt: skip
    frame = trials_frame(records, side(labels), "dlmia", {}, PickRule(0.05, 0.35),
                         shadow_share=0.5)  # fmt: skip
    assert frame["degenerate"].tolist() == [False, True, False]
    assert frame["predicted_share"].tolist() == pytest.approx([0.5, 1.0, 4 / 6])
    assert frame.loc[frame["selected"], "trial"].tolist() == [3]  # beats trial 1 by 0.3
    assert frame["defaults"].sum() == 1


def test_a_search_takes_the_attacks_margin_unless_it_sets_its_own() -> None:
    assert SearchConfig().pick_rule("dlmia").margin == ATTACKS["dlmia"].search_margin > 0
    assert SearchConfig(margin=0.2).pick_rule("dlmia").margin == 0.2
    assert SearchConfig().pick_rule("reference").margin == 0.0  # exact given its pool
    with pytest.raises(ConfigError, match="margin"):
        SearchConfig(margin=-1.0)
    with pytest.raises(ConfigError, match="max_share_gap"):
        SearchConfig(max_share_gap=0.0)
