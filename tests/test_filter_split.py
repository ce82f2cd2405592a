"""The k-core filter against a brute-force reference, and the user splits' properties."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest

from dlmia.config import build
from dlmia.data.filtering import FilterConfig, kcore
from dlmia.data.interactions import Interactions
from dlmia.data.splits import SplitConfig, member_halves, split_users
from dlmia.errors import ConfigError, DataError


def random_interactions(seed: int, n: int = 300) -> Interactions:
    """Sparse random data with skewed items and string ids, so that filtering removes a lot."""
    rng = np.random.default_rng(seed)
    users = rng.integers(0, 50, n)
    items = rng.zipf(1.3, n) % 80
    return Interactions.from_raw(
        "random", [f"u{u}" for u in users], [f"i{i}" for i in items], rng.integers(0, 10**6, n)
    )


def brute_force(data: Interactions, config: FilterConfig) -> list[tuple[str, str, int]]:
    """The filter written literally on (raw user, raw item, time) rows, passes of 3 steps."""
    assert data.times is not None
    rows = [
        (data.user_ids[u], data.item_ids[i], int(t))
        for u, i, t in zip(data.users, data.items, data.times, strict=True)
    ]
    done = 0
    while config.passes is None or done < config.passes:
        done += 1
        before = len(rows)
        for column, minimum in ((0, config.min_user), (1, config.min_item), (0, config.min_user)):
            counts = Counter(row[column] for row in rows)
            rows = [row for row in rows if counts[row[column]] >= minimum]
        if len(rows) == before:
            break
    return rows


@pytest.mark.parametrize("seed", range(14))
@pytest.mark.parametrize("passes", [None, 1, 2])
def test_kcore_matches_brute_force(seed: int, passes: int | None) -> None:
    data = random_interactions(seed)
    minimum = 9 if seed >= 12 else 2 + seed % 3  # seeds 12, 13: nothing survives
    config = FilterConfig(min_user=minimum + 2, min_item=minimum, passes=passes)
    expected = brute_force(data, config)
    if not expected:
        with pytest.raises(DataError):
            kcore(data, config)
        return
    result = kcore(data, config)
    assert result.times is not None
    got = [
        (result.user_ids[u], result.item_ids[i], int(t))
        for u, i, t in zip(result.users, result.items, result.times, strict=True)
    ]
    assert got == expected
    # Contiguous ids; surviving ids keep their old relative order.
    assert np.array_equal(np.unique(result.users), np.arange(result.n_users))
    assert np.array_equal(np.unique(result.items), np.arange(result.n_items))
    for old, new in ((data.user_ids, result.user_ids), (data.item_ids, result.item_ids)):
        rank = {raw: k for k, raw in enumerate(old)}
        assert np.all(np.diff([rank[raw] for raw in new]) > 0)
    if passes is None:
        assert np.bincount(result.users).min() >= config.min_user
        assert np.bincount(result.items).min() >= config.min_item


def test_one_pass_can_leave_rare_items() -> None:
    """The paper's single pass: the last user step can push an item back under the threshold."""
    # The user step drops u1 (1 item). The item step drops i9, i2b, i3b (1 rating each), which
    # leaves u3 with only i3, so the second user step drops u3, and i3 keeps u2's rating alone.
    rows = [("u2", "i1"), ("u2", "i2"), ("u2", "i3"), ("u3", "i3"), ("u3", "i9"), ("u4", "i1"),
            ("u4", "i2"), ("u4", "i2b"), ("u5", "i1"), ("u5", "i2"), ("u5", "i3b"),
            ("u1", "i1")]  # fmt: skip
    data = Interactions.from_raw("t", [u for u, _ in rows], [i for _, i in rows])
    one = kcore(data, FilterConfig(min_user=2, min_item=2, passes=1))
    stable = kcore(data, FilterConfig(min_user=2, min_item=2))
    assert np.bincount(one.items).min() == 1  # i3 kept with only u2's rating
    assert np.bincount(stable.items).min() >= 2
    assert stable.n_interactions < one.n_interactions


def test_nothing_left_says_which_threshold() -> None:
    data = Interactions.from_raw("tiny", ["a", "a", "b", "b"], ["x", "y", "z", "w"])
    with pytest.raises(DataError) as err:
        kcore(data, FilterConfig(min_user=2, min_item=2))
    message = str(err.value)
    assert message.startswith("tiny: filtering (min_user=2, min_item=2, until stable) left no")
    assert "the min_item=2 step removed the last 2 users and 4 items (4 interactions)" in message
    expected = r"^data\.csv: .* in pass 1, the min_user=3 step removed the last 2 users"
    with pytest.raises(DataError, match=expected):
        kcore(data, FilterConfig(min_user=3, min_item=1), source="data.csv")


@pytest.mark.parametrize(
    "values", [{"min_user": 0}, {"min_item": -1}, {"passes": 0}, {"min_user": True}]
)
def test_filter_config_validation(values: dict[str, object]) -> None:
    with pytest.raises(ConfigError, match=f"data.filter.{next(iter(values))}"):
        FilterConfig(**values)  # type: ignore[arg-type]


def test_filter_config_builds_from_yaml_values() -> None:
    assert build(FilterConfig, {"min_user": 10, "passes": 1}) == FilterConfig(10, 5, 1)


@pytest.mark.parametrize("n_users", [0, 1, 2, 3, 10, 1001])
def test_split_users_is_a_partition_with_rounded_sizes(n_users: int) -> None:
    parts = split_users(n_users, SplitConfig(seed=0))
    assert list(parts) == ["vectorization", "shadow", "target"]
    joined = np.concatenate(list(parts.values()))
    assert np.array_equal(np.sort(joined), np.arange(n_users))  # disjoint and covering
    sizes = [len(p) for p in parts.values()]
    assert max(sizes) - min(sizes) <= 1
    assert all(np.all(np.diff(p) > 0) for p in parts.values())


def test_split_sizes_follow_uneven_fractions() -> None:
    parts = split_users(101, SplitConfig(fractions=(0.5, 0.25, 0.25), seed=0))
    assert [len(p) for p in parts.values()] == [51, 25, 25]  # 50.5 rounds up (largest remainder)
    parts = split_users(10, SplitConfig(fractions=(0.05, 0.05, 0.9), seed=0))
    assert [len(p) for p in parts.values()] == [1, 0, 9]  # remainders 0.5, 0.5: the earlier wins


def test_split_seed_determinism() -> None:
    a, b = split_users(500, SplitConfig(seed=4)), split_users(500, SplitConfig(seed=4))
    c = split_users(500, SplitConfig(seed=5))
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert not np.array_equal(a["shadow"], c["shadow"])


@pytest.mark.parametrize(
    "fractions",
    [(0.5, 0.5), (0.5, 0.5, 0.0), (0.4, 0.4, 0.4), (-0.2, 0.6, 0.6), (0.5, 0.25, float("nan"))],
)
def test_split_config_validation(fractions: tuple[float, ...]) -> None:
    with pytest.raises(ConfigError, match=r"data.split.fractions: expected 3 positive") as err:
        SplitConfig(fractions=fractions)  # type: ignore[arg-type]
    assert str(list(fractions)) in str(err.value)


def test_split_config_accepts_a_yaml_list() -> None:
    config = build(SplitConfig, {"fractions": [0.2, 0.4, 0.4], "seed": 1})
    assert config.fractions == (0.2, 0.4, 0.4)


@pytest.mark.parametrize("n", [0, 1, 7, 8, 333])
def test_member_halves_disjoint_covering_members_get_the_extra(n: int) -> None:
    index = np.arange(1000, 1000 + 3 * n, 3)
    members, non_members = member_halves(index, seed=0, role="shadow")
    assert len(members) == (n + 1) // 2 and len(non_members) == n // 2
    assert np.intersect1d(members, non_members).size == 0
    assert np.array_equal(np.sort(np.concatenate([members, non_members])), index)


def test_member_halves_seeded_and_role_dependent() -> None:
    index = np.arange(400)
    first = member_halves(index, seed=1, role="target")
    assert np.array_equal(first[0], member_halves(index, seed=1, role="target")[0])
    assert not np.array_equal(first[0], member_halves(index, seed=2, role="target")[0])
    assert not np.array_equal(first[0], member_halves(index, seed=1, role="shadow")[0])
    with pytest.raises(ConfigError, match="role 'victim' is not allowed; use one of shadow, targ"):
        member_halves(index, seed=1, role="victim")
