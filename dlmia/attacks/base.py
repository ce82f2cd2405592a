"""The one interface every membership-inference attack implements.

Lifecycle: construct with a settings dataclass, a device and a seed; `fit` once on the labelled
shadow difference vectors and the *unlabelled* target vectors; then `predict_proba` on the
target users' vectors and, for attacks that read them, the rest of what the adversary holds of
those users (`TargetView`: their top-k lists, per-user list statistics, the same statistics
under a reference pool). Target membership labels are never an argument of anything here: only
the metrics read them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, ClassVar, Self

import numpy as np
import numpy.typing as npt

from dlmia.device import resolve_device
from dlmia.errors import DataError

FloatArray = npt.NDArray[np.float32]
LabelArray = npt.NDArray[np.int64]
ListArray = npt.NDArray[np.integer]  # (n, k) item ids of each user's top-k list
Statistics = Mapping[str, npt.NDArray[np.float64]]  # statistic name -> one value per user


@dataclass(frozen=True, eq=False)
class References:
    """The users' list statistics under R reference recommenders (method.md section 7)."""

    statistics: Statistics  # name -> (R, n): model r's statistic of user j
    inside: npt.NDArray[np.bool_]  # (R, n) whether user j was in model r's training half

    def __post_init__(self) -> None:
        shapes = {value.shape for value in self.statistics.values()} | {self.inside.shape}
        if len(shapes) != 1 or len(self.inside.shape) != 2:
            raise DataError(f"references: statistics and masks differ in shape: {shapes}")


@dataclass(frozen=True, eq=False)
class TargetView:
    """What the adversary holds of the users it scores beyond their difference vectors, row for
    row with them; each attack reads what it needs and checks it is there."""

    lists: ListArray | None = None  # (n, k) each user's top-k list
    statistics: Statistics = field(default_factory=dict)  # name -> (n,), see dlmia.statistics
    references: References | None = None  # the same statistics under a reference pool


@dataclass(frozen=True)
class PoolRequest:
    """The reference recommenders an attack needs beside the shadow and target sides: `size`
    models of the shadow's kind, each on a seeded half of the shadow part (online: of the shadow
    and target parts)."""

    size: int = 0
    online: bool = False


class Attack(ABC):
    """A membership classifier over difference vectors; higher probability = more likely member.

    After `fit`, `info` holds what a result row should record beyond the metrics (stage timings,
    training losses, counts); it must be JSON-serialisable.

    An attack is searchable per cell when `search_space` declares the settings a search may
    vary. How the search ranks settings without target labels depends on `learns_from_shadow`:
    an attack that fits on the shadow side's labels (DL-MIA) is ranked by held-out criteria
    (dlmia.selection), one that does not (the reference attack) by how well it scores the
    shadow side's users, whose labels the adversary knows.
    """

    name: ClassVar[str]
    Config: ClassVar[type]
    learns_from_shadow: ClassVar[bool] = True  # fit trains on the shadow side's labels
    # how much a searched trial's objective must beat the defaults' to be picked, as a share
    # of the defaults' objective's size: its noise over seeds (an exact objective: 0)
    search_margin: ClassVar[float] = 0.0

    def __init__(self, config: Any = None, *, device: str = "auto", seed: int = 0) -> None:
        self.config = config if config is not None else self.Config()
        self.device = resolve_device(device)
        self.seed = seed
        self.info: dict[str, Any] = {}

    @abstractmethod
    def fit(
        self, shadow_vectors: FloatArray, shadow_labels: LabelArray, target_vectors: FloatArray
    ) -> Self:
        """Train on shadow vectors (n_s, d) with labels (n_s,) in {0, 1}; target vectors (n_t, d)
        unlabelled."""

    @classmethod
    def pool(cls, config: Any) -> PoolRequest:
        """The reference pool an attack with settings `config` needs (most need none)."""
        return PoolRequest()

    @classmethod
    def search_space(cls, config: Any) -> dict[str, Any] | None:
        """The settings a per-cell search varies around the cell's settings `config`, as
        `{setting: {kind: args}}` (kinds: choice, uniform, loguniform, randint; tune.space);
        None: the attack is not searchable."""
        return None

    @classmethod
    def searched_settings(cls, settings: dict[str, Any]) -> dict[str, Any]:
        """`settings` (a search's sampled point over the fixed settings) made valid: an attack
        whose space holds combinations it cannot run maps them to ones it can."""
        return settings

    @abstractmethod
    def predict_proba(
        self, vectors: FloatArray, view: TargetView | None = None
    ) -> npt.NDArray[np.float64]:
        """(n,) member probabilities in [0, 1] for the users of vectors (n, d).

        `view` holds the rest of what the adversary knows of the same users, row for row;
        attacks that read lists or statistics need it, the others ignore it.
        """


def check_vectors(vectors: npt.ArrayLike, name: str, dim: int | None = None) -> np.ndarray:
    """`vectors` as a finite (n, d) float32 array, with d == dim when given; else DataError."""
    array = np.asarray(vectors, dtype=np.float32)
    if array.ndim != 2 or (dim is not None and array.shape[1] != dim):
        want = f"(n, {dim})" if dim is not None else "(n, d)"
        raise DataError(f"{name}: expected an array of shape {want}, got {array.shape}")
    if not np.isfinite(array).all():
        raise DataError(f"{name}: contains non-finite values")
    return array


def check_labels(labels: npt.ArrayLike, n: int, name: str = "shadow labels") -> np.ndarray:
    """`labels` as an (n,) int64 array of 0/1 holding both classes; else DataError."""
    array = np.asarray(labels)
    if array.shape != (n,):
        raise DataError(f"{name}: expected shape ({n},), got {array.shape}")
    if not np.isin(array, (0, 1)).all():
        raise DataError(f"{name}: must be 0 (non-member) or 1 (member)")
    array = array.astype(np.int64)
    if array.min() == array.max():
        raise DataError(f"{name}: need both members and non-members, got only {array[0]}")
    return array
