"""ASHA's stopping rule for trials inside a side-by-side group (tune.rungs), without Ray."""

from __future__ import annotations

import math

from tune.rungs import RungRule


def test_the_first_trial_at_a_rung_passes_and_later_ones_face_the_quantile() -> None:
    rule = RungRule({4, 12}, reduction_factor=3)
    assert not rule.stops(4, -1.0)  # nothing recorded: no cutoff
    assert not rule.stops(4, -0.5)  # above the cutoff (-1.0)
    assert rule.stops(4, -0.9)  # below the 2/3 quantile of [-1.0, -0.5]: -0.667
    assert not rule.stops(12, -3.0)  # another rung starts empty


def test_earlier_trials_rung_values_set_the_cutoff() -> None:
    rule = RungRule({4}, reduction_factor=2, recorded={4: [0.0, 1.0, 2.0, 3.0], 99: [5.0]})
    assert rule.stops(4, 1.4)  # the median of 0..3 is 1.5
    assert not rule.stops(4, 1.6)
    assert rule.recorded[4] == [0.0, 1.0, 2.0, 3.0, 1.4, 1.6]
    assert 99 not in rule.recorded  # not a rung of this search


def test_a_nan_objective_counts_as_the_worst_and_stops() -> None:
    rule = RungRule({2}, reduction_factor=3, recorded={2: [0.1]})
    assert rule.stops(2, math.nan)
    assert rule.recorded[2][-1] == -math.inf


def test_only_rung_epochs_are_rungs() -> None:
    rule = RungRule({4, 12}, reduction_factor=3)
    assert [e for e in range(1, 20) if rule.is_rung(e)] == [4, 12]
