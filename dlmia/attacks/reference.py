"""The reference attack (method.md section 7): a user's list statistic under the target, set
against the same statistic under reference recommenders trained without that user (offline)
or with and without them (online). LiRA's per-example calibration (Carlini et al., S&P 2022),
per user and on top-k lists alone.

Under the `model` policy a heavy, mainstream user gets much of their history back whether they
trained the model or not; what gives a member away is getting back more than the *same* user
gets from models that never saw them. So:

- offline (only the references that did not train on the user): z(u) = (t(u) - mean_OUT(u)) / sd
  (the references of an offline pool never trained on a target user);
- online (each user was in about half of the references' training halves): the log-likelihood
  ratio log N(t(u); mean_IN(u), sd_IN) - log N(t(u); mean_OUT(u), sd_OUT).

`sd` is one spread pooled over all users (`global`, LiRA's choice with few references) or each
user's own (`per-user`, floored at a hundredth of the global variance so that a user whose
statistic never moves cannot divide by zero). Member probabilities are the score's percentile
ranks among the users scored, as for the training-free baselines. The shadow side's labels are
not used to score: the references are the adversary's training; target labels are never seen.
A per-cell search ranks settings by the attack's ROC AUC on the shadow side's users, whose labels
the adversary knows (tune.local_search; method.md section 7).

Defaults (bench/reference.py, ML-1M under the `model` policy, seed 0): 16 online references,
the rank-discounted `own-dcg` and a global spread, which beat the plain `own` share, its
normalised `own-ndcg`, per-user spreads and the offline variant on ItemCF and LFM in ROC AUC and
in TPR at 1% FPR.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Literal, get_args

import numpy as np
import numpy.typing as npt

from dlmia.attacks.base import FloatArray, PoolRequest, References, TargetView
from dlmia.attacks.baselines import TrainingFreeAttack
from dlmia.errors import ConfigError, DataError
from dlmia.statistics import STATISTICS

Scores = npt.NDArray[np.float64]
Variant = Literal["offline", "online"]
Spread = Literal["global", "per-user"]
PER_USER_FLOOR = 0.01  # a per-user variance is at least this share of the global one


@dataclass(frozen=True)
class ReferenceConfig:
    """Settings of the reference attack."""

    references: int = 16  # R: reference recommenders of the shadow side's kind and data
    statistic: str = "own-dcg"  # the per-user list statistic (dlmia.statistics.STATISTICS)
    variant: Variant = "online"  # offline: OUT references only; online: IN and OUT (LiRA)
    spread: Spread = "global"  # the Gaussians' spread: pooled over users, or each user's own

    def __post_init__(self) -> None:
        least = 2 if self.variant == "online" else 1
        if not isinstance(self.references, int) or not least <= self.references <= 1024:
            raise ConfigError(
                f"attack.reference.references: {self.references!r} must be an integer in "
                f"{least}..1024 ({self.variant})"
            )
        for key, value, allowed in (
            ("statistic", self.statistic, tuple(STATISTICS)),
            ("variant", self.variant, get_args(Variant)),
            ("spread", self.spread, get_args(Spread)),
        ):
            if value not in allowed:
                raise ConfigError(
                    f"attack.reference.{key}: {value!r} is not allowed; use one of "
                    f"{', '.join(allowed)}"
                )


class ReferenceAttack(TrainingFreeAttack):
    """Per-user calibration of a list statistic against a reference pool. Nothing is learnt
    from the shadow side (the references are the adversary's training), so a search ranks its
    settings by how well it scores the shadow side's users."""

    name = "reference"
    Config: ClassVar[type] = ReferenceConfig
    config: ReferenceConfig

    @classmethod
    def pool(cls, config: ReferenceConfig) -> PoolRequest:
        return PoolRequest(config.references, online=config.variant == "online")

    @classmethod
    def search_space(cls, config: ReferenceConfig) -> dict[str, Any]:
        """The statistic, the spread and R (powers of two up to the pool the cell builds,
        `config.references`, and that size itself); the variant stays the cell's, since it
        decides which pool is built."""
        least = 2 if config.variant == "online" else 1
        sizes = sorted({*(2**i for i in range(11) if least <= 2**i < config.references),
                        config.references})  # fmt: skip
        return {
            "statistic": {"choice": list(STATISTICS)},
            "spread": {"choice": list(get_args(Spread))},
            "references": {"choice": sizes},
        }

    def score(self, vectors: FloatArray, view: TargetView | None) -> Scores:
        """(n,) the calibrated score of each user given."""
        statistic, references = self._inputs(view, len(vectors))
        inside = references.inside
        self.info.update(
            n_references=int(inside.shape[0]),
            mean_in_per_user=float(inside.sum(0).mean()),
            mean_out_per_user=float((~inside).sum(0).mean()),
        )
        return calibrated_score(
            statistic, references.statistics[self.config.statistic], inside,
            self.config.variant, self.config.spread,
        )  # fmt: skip

    def _inputs(self, view: TargetView | None, n: int) -> tuple[Scores, References]:
        """The users' statistic (n,) and the references (R, n) this attack reads, checked."""
        name = self.config.statistic
        if view is None or view.references is None or name not in view.statistics:
            raise ConfigError(
                f"attack reference: needs the users' {name!r} statistic and a reference pool"
            )
        references = view.references
        if references.inside.shape[1] != n or len(view.statistics[name]) != n:
            raise DataError(f"attack reference: statistics for {n} users expected")
        if references.inside.shape[0] < self.config.references:
            raise DataError(
                f"attack reference: {self.config.references} references asked for, "
                f"{references.inside.shape[0]} given"
            )
        keep = slice(0, self.config.references)
        return np.asarray(view.statistics[name], dtype=np.float64), References(
            {key: value[keep] for key, value in references.statistics.items()},
            references.inside[keep],
        )


def calibrated_score(
    statistic: Scores,
    reference_statistics: Scores,
    inside: npt.NDArray[np.bool_],
    variant: Variant,
    spread: Spread,
) -> Scores:
    """(n,) membership score of each user, higher = member.

    Args:
        statistic: (n,) the users' statistic under the target.
        reference_statistics: (R, n) the same under each reference.
        inside: (R, n) whether reference r trained on user j.
        variant: offline (OUT references only: a z-score) or online (LiRA's likelihood ratio).
        spread: global (one variance per Gaussian, pooled over users) or per-user.
    """
    out_mean, out_var = gaussian(reference_statistics, ~inside, spread)
    if variant == "offline":
        return (statistic - out_mean) / np.sqrt(out_var)
    in_mean, in_var = gaussian(reference_statistics, inside, spread)
    return log_normal(statistic, in_mean, in_var) - log_normal(statistic, out_mean, out_var)


def gaussian(
    values: Scores, chosen: npt.NDArray[np.bool_], spread: Spread
) -> tuple[Scores, Scores]:
    """Per-user mean (n,) and variance (n,) of the `chosen` entries of each column of `values`
    (R, n). A user with no chosen entry gets the chosen entries' overall mean; with one, the
    global variance."""
    count = chosen.sum(0)  # (n,)
    pooled_mean = values[chosen].mean() if chosen.any() else 0.0
    total = np.where(chosen, values, 0.0).sum(0)
    mean = np.divide(total, count, out=np.full(len(count), pooled_mean), where=count > 0)
    squares = np.where(chosen, (values - mean) ** 2, 0.0)  # (R, n)
    degrees = int((count - 1).clip(min=0).sum())
    global_var = squares.sum() / degrees if degrees else float(values.var())
    global_var = max(global_var, 1e-12)
    if spread == "global":
        return mean, np.full(len(count), global_var)
    own = np.divide(squares.sum(0), count - 1, out=np.full(len(count), global_var),
                    where=count > 1)  # fmt: skip
    return mean, np.maximum(own, PER_USER_FLOOR * global_var)


def log_normal(x: Scores, mean: Scores, var: Scores) -> Scores:
    """log N(x; mean, var), elementwise."""
    return -0.5 * (np.log(2 * np.pi * var) + (x - mean) ** 2 / var)
