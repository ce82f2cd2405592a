"""A generated dataset with the structure recommenders exploit, for the demo and the tests.

Items have power-law popularity and each belongs to one taste (a cluster). Each user has one
favourite taste. A user's sequence is built step by step: with probability `transition_strength`
the next item is the fixed successor of the previous one (a random cycle through each taste's
items, the planted next-item rule that sequential models can learn); otherwise it is a fresh pick,
from the favourite taste with probability `taste_strength` (weighted by popularity) and from the
whole catalogue by popularity otherwise. Repeated items are dropped (first occurrence kept)
and each sequence is cut to its drawn length.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from dlmia.config import check_domain, check_seed
from dlmia.data.histories import IntArray
from dlmia.data.interactions import Interactions
from dlmia.errors import ConfigError
from dlmia.seeding import numpy_rng

FloatArray = npt.NDArray[np.float64]
_OVERSAMPLE = 2  # draws per wanted interaction; the surplus covers the repeats that are dropped
MAX_COUNT = 10_000_000  # users or items generated
MAX_INTERACTIONS = 100_000_000  # users x mean length (the generator draws twice as many)
MAX_SECONDS = 2**40  # start time and time span (about 35,000 years); gaps are at most 2**30


@dataclass(frozen=True)
class SyntheticConfig:
    """Size and structure of the generated dataset (defaults: a demo that runs in seconds)."""

    n_users: int = 1500  # users generated
    n_items: int = 600  # catalogue size
    n_tastes: int = 12  # taste clusters; every item belongs to one, every user favours one
    mean_length: float = 40.0  # mean sequence length (distinct items per user)
    min_length: int = 10  # shortest sequence, unless repeats leave a user fewer distinct items
    popularity_exponent: float = 1.0  # Zipf skew: the item of rank r has weight r ** -exponent
    taste_strength: float = 0.7  # probability that a fresh pick comes from the favourite taste
    transition_strength: float = 0.3  # probability that the next item is the last one's successor
    start_time: int = 978_300_000  # earliest first timestamp (Unix seconds)
    time_span: int = 63_072_000  # users start uniformly within this many seconds of start_time
    mean_gap: float = 86_400.0  # mean seconds between a user's consecutive interactions
    seed: int = 0  # generator seed: part of the dataset's identity, not of a run's randomness

    def __post_init__(self) -> None:
        positive = ("n_users", "n_items", "n_tastes", "min_length", "time_span", "mean_gap")
        bad = [k for k in positive if not getattr(self, k) > 0]
        strengths = ("taste_strength", "transition_strength")
        bad += [k for k in strengths if not 0 <= getattr(self, k) <= 1]
        if self.n_tastes > self.n_items:
            bad.append("n_tastes (at most n_items)")
        if not self.mean_length >= self.min_length:
            bad.append("mean_length (at least min_length)")
        if not self.popularity_exponent >= 0:
            bad.append("popularity_exponent (>= 0)")
        if bad:
            raise ConfigError(
                f"data.synthetic: invalid {', '.join(bad)}; counts, spans and gaps must be > 0, "
                f"strengths in [0, 1] (got {self})"
            )
        check_domain(self, non_negative=("start_time",), at_most={
            "n_users": MAX_COUNT, "n_items": MAX_COUNT, "start_time": MAX_SECONDS,
            "time_span": MAX_SECONDS, "mean_gap": 2**30,
        })
        if self.n_users * self.mean_length > MAX_INTERACTIONS:
            raise ConfigError(
                f"mean_length: {self.n_users:,} users of mean length {self.mean_length:g} make "
                f"more than {MAX_INTERACTIONS:,} interactions"
            )
        check_seed(self)


def generate(config: SyntheticConfig, seed: int) -> Interactions:
    """Generate the dataset `config` describes; the same seed gives identical data.

    Returns:
        Interactions named "synthetic", grouped by user in time order, timestamps strictly
        increasing within each user; raw ids are the generator's user and item numbers.
    """
    rng = numpy_rng(seed, "synthetic")
    popularity = _popularity(config, rng)  # (n_items,)
    taste_of_item = rng.permutation(np.arange(config.n_items) % config.n_tastes)  # (n_items,)
    successor = _successors(taste_of_item, rng)  # (n_items,)
    spread = max(config.mean_length - config.min_length, 0.0)
    lengths = config.min_length + rng.geometric(1.0 / (spread + 1.0), config.n_users) - 1
    drawn = _OVERSAMPLE * lengths  # draw more, since repeats are dropped
    user_of = np.repeat(np.arange(config.n_users), drawn)  # (n_drawn,)
    favourite = rng.integers(config.n_tastes, size=config.n_users)  # (n_users,)

    fresh = np.where(
        rng.random(len(user_of)) < config.taste_strength,
        _pick_in_taste(favourite[user_of], taste_of_item, popularity, rng),
        rng.choice(config.n_items, size=len(user_of), p=popularity),
    )  # (n_drawn,)
    starts = np.concatenate([[0], np.cumsum(drawn)[:-1]])
    follows = rng.random(len(user_of)) < config.transition_strength
    follows[starts] = False  # a sequence opens with a fresh pick
    items = _follow_successors(fresh, follows, successor)  # (n_drawn,)

    gaps = 1 + np.floor(rng.exponential(config.mean_gap, len(user_of))).astype(np.int64)  # >= 1
    elapsed = np.cumsum(gaps)
    elapsed -= np.repeat(elapsed[starts] - gaps[starts], drawn)  # restart the sum at each user
    first = config.start_time + rng.integers(config.time_span, size=config.n_users)
    times = first[user_of] + elapsed  # (n_drawn,) strictly increasing within each user

    keep = _first_occurrences(user_of, items, config.n_items)
    keep = keep[_rank_within_user(user_of[keep]) < lengths[user_of[keep]]]  # truncate to length
    return Interactions.from_raw("synthetic", user_of[keep], items[keep], times[keep])


def _first_occurrences(user_of: IntArray, items: IntArray, n_items: int) -> IntArray:
    """(n_kept,) sorted positions of each (user, item) pair's first occurrence."""
    _, first_seen = np.unique(user_of * n_items + items, return_index=True)
    return np.sort(first_seen)


def _rank_within_user(user_of: IntArray) -> IntArray:
    """(n,) each entry's position within its user's run (entries grouped by user)."""
    position = np.arange(len(user_of))
    new_user = np.concatenate([[True], user_of[1:] != user_of[:-1]])
    return position - np.maximum.accumulate(np.where(new_user, position, 0))


def _popularity(config: SyntheticConfig, rng: np.random.Generator) -> FloatArray:
    """(n_items,) probabilities; a random item order gets Zipf weights rank ** -exponent."""
    rank = rng.permutation(config.n_items) + 1
    weight = rank.astype(np.float64) ** -config.popularity_exponent
    return weight / weight.sum()


def _successors(taste_of_item: IntArray, rng: np.random.Generator) -> IntArray:
    """(n_items,) each item's successor: the next item on a random cycle through its taste."""
    order = np.lexsort((rng.random(len(taste_of_item)), taste_of_item))  # grouped by taste
    taste_sorted = taste_of_item[order]
    block_start = np.searchsorted(taste_sorted, taste_sorted, side="left")
    block_end = np.searchsorted(taste_sorted, taste_sorted, side="right")
    position = np.arange(len(order))
    following = np.where(position + 1 < block_end, position + 1, block_start)
    successor = np.empty_like(order)
    successor[order] = order[following]
    return successor


def _pick_in_taste(
    taste: IntArray, taste_of_item: IntArray, popularity: FloatArray, rng: np.random.Generator
) -> IntArray:
    """(n,) one item per entry of `taste`, drawn from that taste in proportion to popularity.

    The tastes' cumulative distributions are laid end to end, taste t spanning (t, t + 1], so
    one `searchsorted` of t + uniform draws them all.
    """
    order = np.argsort(taste_of_item, kind="stable")  # items grouped by taste
    taste_sorted = taste_of_item[order]
    weight = popularity[order]
    total = np.bincount(taste_sorted, weights=weight)
    cumulative = np.cumsum(weight) - np.repeat(np.cumsum(total) - total, np.bincount(taste_sorted))
    shifted = taste_sorted + cumulative / total[taste_sorted]  # (n_items,)
    index = np.searchsorted(shifted, taste + rng.random(len(taste)), side="right")
    first = np.searchsorted(taste_sorted, taste, side="left")  # guards against rounding at edges
    last = np.searchsorted(taste_sorted, taste, side="right") - 1
    return order[np.clip(index, first, last)]


def _follow_successors(
    fresh: IntArray, follows: npt.NDArray[np.bool_], successor: IntArray
) -> IntArray:
    """(n,) items where a following entry is the successor of the entry before it.

    A following entry k steps after the last fresh one is successor applied k times to that
    fresh item, so the loop runs over k (a few steps), never over positions.
    """
    position = np.arange(len(fresh))
    anchor = np.maximum.accumulate(np.where(follows, 0, position))  # last fresh entry
    steps = position - anchor
    items = fresh[anchor]
    for k in range(int(steps.max(initial=0))):
        moving = steps > k
        items[moving] = successor[items[moving]]
    return items
