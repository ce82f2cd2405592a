"""Seeded user splits: the three-way dataset split and the member halves (method.md section 2).

A user's whole history always goes to one part. Every part is returned sorted by user index,
so the result depends only on the seed, not on the order in which parts are used.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from dlmia.config import check_seed
from dlmia.data.histories import IntArray
from dlmia.errors import ConfigError
from dlmia.seeding import numpy_rng

PARTS = ("vectorization", "shadow", "target")
ROLES = ("shadow", "target")


@dataclass(frozen=True)
class SplitConfig:
    """How a dataset's users are divided into the vectorization, shadow and target parts."""

    fractions: tuple[float, float, float] = (1 / 3, 1 / 3, 1 / 3)  # vectorization, shadow, target
    seed: int | None = None  # seed of the user permutation; None = the run's seed (pinned if set)

    def __post_init__(self) -> None:
        values = tuple(self.fractions)
        numbers = all(isinstance(v, (int, float)) and not isinstance(v, bool) for v in values)
        if (
            len(values) != 3
            or not numbers
            or not all(math.isfinite(v) and v > 0 for v in values)
            or abs(sum(values) - 1) > 1e-6
        ):
            raise ConfigError(
                "data.split.fractions: expected 3 positive numbers (vectorization, shadow, "
                f"target) summing to 1, got {list(values)}"
            )
        check_seed(self)


def split_users(n_users: int, config: SplitConfig) -> dict[str, IntArray]:
    """Divide users 0..n_users-1 at random into the three parts.

    Sizes are the fractions times `n_users`, rounded by largest remainder so that they sum to
    `n_users` (ties go to the earlier part).

    Returns:
        {"vectorization", "shadow", "target"} -> (n_part,) sorted int64 user indices; disjoint,
        together covering every user.
    """
    exact = np.asarray(config.fractions, dtype=np.float64) * n_users
    sizes = np.floor(exact).astype(np.int64)
    short = n_users - int(sizes.sum())
    sizes[np.argsort(-(exact - sizes), kind="stable")[:short]] += 1
    if config.seed is None:
        raise ConfigError("data.split.seed: unresolved; build specs with dlmia.sides.seeded")
    order = numpy_rng(config.seed, "split_users").permutation(n_users)  # (n_users,)
    bounds = np.concatenate([[0], np.cumsum(sizes)])
    return {part: np.sort(order[bounds[i] : bounds[i + 1]]) for i, part in enumerate(PARTS)}


def member_halves(user_index: IntArray, seed: int, role: str) -> tuple[IntArray, IntArray]:
    """Split one part's users into members (who train that side's recommender) and non-members.

    The members are a seeded random half; with an odd number of users the members get the extra
    one (ceil(n / 2) members, floor(n / 2) non-members).

    Args:
        user_index: (n,) the user indices of the part.
        seed: the run seed; the draw is derived from it and `role`.
        role: "shadow" or "target" (the two sides draw independently).

    Returns:
        (members, non_members): sorted int64 arrays, disjoint, together `user_index`.
    """
    if role not in ROLES:
        allowed = ", ".join(ROLES)
        raise ConfigError(f"member_halves: role {role!r} is not allowed; use one of {allowed}")
    user_index = np.asarray(user_index, dtype=np.int64)
    shuffled = numpy_rng(seed, "member_halves", role).permutation(user_index)  # (n,)
    n_members = (len(user_index) + 1) // 2
    return np.sort(shuffled[:n_members]), np.sort(shuffled[n_members:])


def reference_half(population: IntArray, seed: int, index: int) -> IntArray:
    """The seeded random half of `population` that reference model `index` trains on (sorted;
    ceil(n / 2) users): each model of a pool draws its own, independently of the sides."""
    population = np.asarray(population, dtype=np.int64)
    shuffled = numpy_rng(seed, "reference_half", index).permutation(population)  # (n,)
    return np.sort(shuffled[: (len(population) + 1) // 2])
