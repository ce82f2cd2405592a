"""Item vectors and difference vectors: what the attacks see of a user (method.md section 4).

The adversary factorises the interactions of the vectorization part of a dataset (users that
are neither shadow nor target) into item vectors. A user is then summarised by the difference
between the centre of their history and the centre of their recommendation list:
`d_u = mean(e_i, i in history) - centre(e_r, r in list)`. Members' lists sit near their history
(the recommender learnt from it); non-members' lists do not, which is the membership signal.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

import numpy as np
import numpy.typing as npt
import scipy.sparse as sp
import torch

from dlmia.config import MAX_WIDTH, check_domain, check_seed
from dlmia.data.histories import Histories
from dlmia.device import check_device, resolve_device
from dlmia.errors import ConfigError, TrainingError
from dlmia.factorization import MFSettings, train_mf
from dlmia.seeding import torch_generator

FloatArray = npt.NDArray[np.float32]

#: Whose histories train the item vectors (method.md section 4). `vectorization`: the users of
#: the vectorization part only (the paper's protocol). `all-histories`: every user of the
#: dataset (vectorization, shadow and target parts): the adversary holds every shadow and target
#: user's history anyway, since those are its input, and no membership label is involved, so
#: this stays within the threat model while every listed item gets a vector. (Sequential
#: recommenders hold out each member's last item; that item is then in the vectorization data
#: although the adversary's view of the user omits it, for members and non-members alike.)
VectorFitOn = Literal["vectorization", "all-histories"]
VECTOR_FIT_ON: tuple[str, ...] = get_args(VectorFitOn)


@dataclass(frozen=True)
class ItemVectorConfig:
    """The paper's latent factor model for item vectors (reference `LFM.py`, method.md section 4).

    Note:
        The reference runs per-sample SGD in pure Python; here each minibatch applies the
        per-sample updates at once, averaging those of a row repeated in the batch (see
        `dlmia.factorization`). Keep `batch_size` well below the catalogue size.
    """

    factors: int = 100  # vector dimension
    epochs: int = 30  # passes over the vectorization interactions
    lr: float = 0.02  # SGD step of the first epoch
    lr_decay: float = 0.9  # step multiplier after each epoch
    l2: float = 0.01  # L2 weight per sample on user and item rows
    init_scale: float = 1.0  # initial factors are uniform in [0, init_scale)
    batch_size: int = 1024  # samples per SGD step (a row's repeats in a step are averaged)
    fit_on: VectorFitOn = "vectorization"  # whose histories train the vectors (see VectorFitOn)
    seed: int | None = None  # init, negatives and order; None = the run's seed (pinned if set)
    device: str = "auto"  # auto, cpu or cuda[:N]

    def __post_init__(self) -> None:
        for key in ("factors", "epochs", "batch_size"):
            if getattr(self, key) < 1:
                raise ConfigError(f"vectors.{key}: must be >= 1, got {getattr(self, key)}")
        for key in ("lr", "lr_decay", "init_scale"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"vectors.{key}: must be > 0, got {getattr(self, key)}")
        if self.l2 < 0:
            raise ConfigError(f"vectors.l2: must be >= 0, got {self.l2}")
        check_domain(self, at_most={"factors": MAX_WIDTH})
        check_seed(self)
        check_device(self.device)


@dataclass(frozen=True, eq=False)
class ItemVectors:
    """Item vectors of one dataset.

    Attributes:
        vectors: (n_items, factors) float32; zero rows where `has_vector` is False.
        has_vector: (n_items,) bool, the items that occur in the vectorization histories.
    """

    vectors: FloatArray
    has_vector: npt.NDArray[np.bool_]


def fit_item_vectors(histories: Histories, config: ItemVectorConfig) -> ItemVectors:
    """Train item vectors on `histories` (dataset-wide item ids; the users `fit_on` names).

    Nothing but histories goes in: no membership label can reach the vectors.
    """
    if config.seed is None:
        raise ConfigError("vectors.seed: unresolved; build specs with dlmia.sides.seeded")
    settings = MFSettings(
        factors=config.factors, epochs=config.epochs, lr=config.lr, lr_decay=config.lr_decay,
        l2=config.l2, negatives=1, init="uniform", init_scale=config.init_scale,
        batch_size=config.batch_size, average_repeats=True,
    )
    generator = torch_generator(config.seed, "item-vectors", device=resolve_device(config.device))
    model = train_mf(histories, settings, generator=generator)
    has_vector = model.trained_items.cpu().numpy()
    vectors = model.item_factors.cpu().numpy().astype(np.float32)
    vectors[~has_vector] = 0.0
    if not np.isfinite(vectors).all():
        raise TrainingError(
            "vectors: item-vector training diverged (non-finite values); lower vectors.lr or "
            "vectors.batch_size"
        )
    return ItemVectors(vectors, has_vector)


Center = Literal["uniform", "rank"]  # how a list's item vectors are averaged (see below)
CENTERS: tuple[str, ...] = get_args(Center)


def difference_vectors(
    item_vectors: ItemVectors,
    histories: Histories,
    rec_lists: torch.Tensor | npt.NDArray[np.integer],
    center: Center = "uniform",
) -> tuple[FloatArray, int]:
    """Difference vectors `d_u = mean(history vectors) - centre(list vectors)`, one per user.

    Items without a vector are skipped and the weights of the rest renormalised; a side left
    with no vector contributes a zero centre (the reference's SR behaviour), so a user with no
    vector on either side gets the zero vector.

    Args:
        item_vectors: the dataset's item vectors.
        histories: (n users) what the adversary sees of each user.
        rec_lists: (n, k) ranked item ids, row r for `histories` row r.
        center: `uniform` (plain mean of the list) or `rank` (rank j of k weighs k - j + 1,
            the baseline paper's centre).

    Returns:
        (n, factors) float32 difference vectors, and the number of users whose vector is zero
        because neither their history nor their list has an item with a vector.
    """
    if center not in CENTERS:
        raise ConfigError(f"center: {center!r} is not allowed; use {' or '.join(CENTERS)}")
    lists = np.asarray(torch.as_tensor(rec_lists).cpu(), dtype=np.int64)  # (n, k)
    n, k = lists.shape
    if n != histories.n_users:
        raise ConfigError(f"{n} recommendation lists for {histories.n_users} users")
    history_weights = np.ones(len(histories.items))  # (nnz,)
    history_centre, history_empty = _weighted_means(
        item_vectors, histories.row_of_entries(), histories.items, history_weights, n
    )
    rank_weights = np.arange(k, 0, -1.0) if center == "rank" else np.ones(k)  # (k,) k - j + 1
    list_centre, list_empty = _weighted_means(
        item_vectors, np.repeat(np.arange(n), k), lists.ravel(), np.tile(rank_weights, n), n
    )
    n_zero = int((history_empty & list_empty).sum())
    return (history_centre - list_centre).astype(np.float32, copy=False), n_zero


def _weighted_means(
    item_vectors: ItemVectors,
    rows: npt.NDArray[np.int64],
    items: npt.NDArray[np.int64],
    weights: npt.NDArray[np.float64],
    n_rows: int,
) -> tuple[FloatArray, npt.NDArray[np.bool_]]:
    """Per-row weighted mean of the vectors of `items`, skipping items without a vector.

    Returns:
        (n_rows, factors) means (zero for a row with no vector) and (n_rows,) bool "row empty".
    """
    weights = weights * item_vectors.has_vector[items]  # (E,)
    totals = np.bincount(rows, weights=weights, minlength=n_rows)  # (n_rows,)
    empty = totals == 0
    normalised = weights / np.where(empty, 1.0, totals)[rows]  # (E,)
    matrix = sp.csr_matrix(
        (normalised.astype(np.float32), (rows, items)),
        shape=(n_rows, len(item_vectors.has_vector)),
    )  # (n_rows, n_items), duplicates summed
    return matrix @ item_vectors.vectors, empty
