"""Training-free baselines (method.md section 8): membership scores with no shadow and no labels.

- `norm` scores a user by -|d_u|: a member's list was made from their history, so its centre
  sits near the history's centre and the difference vector is short.
- `list-frequency` scores a user by how rare their list items are across all target users'
  lists: under the `popular` policy every non-member gets (nearly) the same list, so a list made
  of items that every other list also holds marks a non-member.
- `own-hits` scores a user by how much of their own visible history their list hands back,
  discounted by rank (the `own-dcg` list statistic, uncalibrated): what the reference attack
  calibrates per user. Where a model can only hand back items it trained on and most items
  belong to a user or two (Amazon Digital Music), this alone gives members away.

Neither reads the shadow side: `fit` only checks shapes. Both are transductive over the users
they score (the percentile is taken among them). An attack's contribution is what it adds over
these two; under the `model` policy they should fall to chance, and where they do not, the
protocol (not the attack) is what leaks.

Member probabilities are percentile ranks of the raw score among the scored users (ties
averaged), so the ROC AUC is the raw score's, and the balanced accuracy at 0.5 is that of
calling the higher-scoring half members: a label-free threshold that assumes, as the protocol
does, that about half of the users are members.
"""

from __future__ import annotations

from abc import abstractmethod
from dataclasses import dataclass
from typing import ClassVar, Self

import numpy as np
import numpy.typing as npt
from scipy.stats import rankdata

from dlmia.attacks.base import (
    Attack,
    FloatArray,
    LabelArray,
    TargetView,
    check_labels,
    check_vectors,
)
from dlmia.errors import ConfigError


@dataclass(frozen=True)
class BaselineConfig:
    """The training-free baselines have no settings."""


class TrainingFreeAttack(Attack):
    """A fixed membership score, turned into member probabilities by its percentile rank."""

    Config: ClassVar[type] = BaselineConfig
    learns_from_shadow = False

    def fit(
        self, shadow_vectors: FloatArray, shadow_labels: LabelArray, target_vectors: FloatArray
    ) -> Self:
        """Nothing to learn: check the inputs' shapes, record that nothing was fit."""
        shadow = check_vectors(shadow_vectors, "shadow vectors")
        check_labels(shadow_labels, len(shadow))
        check_vectors(target_vectors, "target vectors", dim=shadow.shape[1])
        self.info = {"trained": False, "n_shadow_used": 0}
        return self

    def predict_proba(
        self, vectors: FloatArray, view: TargetView | None = None
    ) -> npt.NDArray[np.float64]:
        """(n,) percentile ranks in (0, 1] of `score` among the users given."""
        return percentile_ranks(self.score(check_vectors(vectors, "vectors"), view))

    @abstractmethod
    def score(self, vectors: FloatArray, view: TargetView | None) -> npt.NDArray[np.float64]:
        """(n,) raw membership score, higher = more likely member."""


def percentile_ranks(score: npt.NDArray[np.float64]) -> npt.NDArray[np.float64]:
    """(n,) member probabilities from a raw score: its percentile ranks in (0, 1] among the
    users scored (ties averaged), so the ROC AUC is the score's own and the 0.5 threshold calls
    the higher-scoring half members."""
    return rankdata(score, method="average") / len(score)


class NormAttack(TrainingFreeAttack):
    """-|d_u|: members' lists sit closer to their histories."""

    name = "norm"

    def score(self, vectors: FloatArray, view: TargetView | None) -> npt.NDArray[np.float64]:
        return -np.linalg.norm(vectors.astype(np.float64), axis=1)


class OwnHitsAttack(TrainingFreeAttack):
    """Rank-discounted hits of the user's visible history in their list (`own-dcg`)."""

    name = "own-hits"

    def score(self, vectors: FloatArray, view: TargetView | None) -> npt.NDArray[np.float64]:
        if view is None or "own-dcg" not in view.statistics:
            raise ConfigError("attack own-hits needs the target users' own-dcg list statistic")
        return np.asarray(view.statistics["own-dcg"], dtype=np.float64)


class ListFrequencyAttack(TrainingFreeAttack):
    """Rarity of a user's list items among all scored users' lists."""

    name = "list-frequency"

    def score(self, vectors: FloatArray, view: TargetView | None) -> npt.NDArray[np.float64]:
        """-(mean over the user's list of the share of all lists that hold each item)."""
        lists = view.lists if view is not None else None
        if lists is None:
            raise ConfigError("attack list-frequency needs the target users' top-k lists")
        items = np.asarray(lists, dtype=np.int64)  # (n, k)
        if items.ndim != 2 or len(items) != len(vectors) or items.min(initial=0) < 0:
            raise ConfigError(
                f"attack list-frequency: expected ({len(vectors)}, k) item ids, got {items.shape}"
            )
        # Distinct items per list, so that a list repeating an item does not count it twice.
        distinct = np.sort(items, axis=1)
        first = np.ones_like(distinct, dtype=bool)
        first[:, 1:] = distinct[:, 1:] != distinct[:, :-1]
        share = np.bincount(distinct[first], minlength=int(items.max()) + 1) / len(items)
        return -share[items].mean(axis=1)
