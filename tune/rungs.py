"""ASHA's stopping rule for trials trained side by side, where Tune's scheduler cannot reach them.

Tune's `ASHAScheduler` stops whole Tune trials; a group of DL-MIA trials stacked in one Tune
trial (dlmia.attacks.dlmia.side_by_side) needs the same decision per member. The rule is ASHA's
(Li et al., MLSys 2020), as Tune's scheduler applies it with mode "max": when a trial reaches a
rung (an epoch in `rungs`), its objective is compared with the (1 - 1/reduction_factor) quantile
of the objectives recorded at that rung before it; below it, the trial stops. Either way its
value is recorded. A rung with nothing recorded yet lets every trial pass.

`recorded` starts with the rung values of the search's earlier trials (the study's intermediate
values), and the members of a group report in turn, so each member is judged against everything
seen before it, as trials arriving one after another are.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping

import numpy as np


class RungRule:
    """Stop-or-continue decisions at ASHA's rungs, for one group of trials."""

    def __init__(
        self,
        rungs: Iterable[int],
        reduction_factor: int,
        recorded: Mapping[int, Iterable[float]] | None = None,
    ) -> None:
        self.rungs = frozenset(rungs)
        self.quantile = (1 - 1 / reduction_factor) * 100
        self.recorded: dict[int, list[float]] = {rung: [] for rung in self.rungs}
        for rung, values in (recorded or {}).items():
            if rung in self.rungs:
                self.recorded[rung].extend(values)

    def is_rung(self, epoch: int) -> bool:
        """True when `epoch` (1-based joint epochs done) is a rung."""
        return epoch in self.rungs

    def stops(self, epoch: int, objective: float) -> bool:
        """Record `objective` at rung `epoch`; True when it falls below the rung's cutoff (a NaN
        objective counts as the worst value, as Tune counts a missing one)."""
        values = self.recorded[epoch]
        cutoff = float(np.nanpercentile(values, self.quantile)) if values else None
        value = -math.inf if math.isnan(objective) else objective
        values.append(value)
        return cutoff is not None and value < cutoff
