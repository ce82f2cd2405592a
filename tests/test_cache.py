"""The side cache trusts no file name: an entry is a side only when its info and its arrays both
name the key asked for and the arrays are the ones the info recorded. Swapped, copied or edited
entries are cache misses with a warning (the side is trained again), never a result."""

from __future__ import annotations

import logging
import os
from pathlib import Path

import numpy as np
import pytest

from dlmia.sides import DatasetSpec, SideOutput, SideSpec
from tests.records import side_info
from tune.cache import SideCache

SPEC = SideSpec(DatasetSpec(name="synthetic"), "target", "lfm")
KEYS = ("a1" * 32, "b2" * 32)


def side(value: float) -> SideOutput:
    """A small side whose arrays all hold `value`."""
    return SideOutput(np.full((3, 2), value, np.float32), np.array([1, 0, 0]),
                      np.arange(3), np.full((3, 4), int(value), np.int32),
                      side_info(fingerprint=str(value)))


def filled(tmp_path: Path) -> SideCache:
    """A cache holding two sides, one per key of KEYS (values 1 and 2)."""
    cache = SideCache(tmp_path)
    for value, key in enumerate(KEYS, start=1):
        cache.store(key, SPEC, side(float(value)), lists_key=key[::-1])
    return cache


def swap(a: Path, b: Path) -> None:
    """Exchange the contents of files `a` and `b`."""
    tmp = a.with_name("swap.tmp")
    os.replace(a, tmp)
    os.replace(b, a)
    os.replace(tmp, b)


@pytest.mark.parametrize("swapped", ["arrays", "arrays and info"])
def test_swapped_entries_are_misses_with_a_warning_never_the_other_side(
    tmp_path: Path, swapped: str, caplog: pytest.LogCaptureFixture
) -> None:
    cache = filled(tmp_path)
    (arrays_a, info_a), (arrays_b, info_b) = cache.paths(KEYS[0]), cache.paths(KEYS[1])
    swap(arrays_a, arrays_b)
    if swapped == "arrays and info":
        swap(info_a, info_b)
    with caplog.at_level(logging.WARNING, logger="tune.cache"):
        assert cache.get(KEYS[0]) is None and cache.get(KEYS[1]) is None
    assert caplog.text.count("cannot be used (CacheMismatch: its ") == 2
    assert "trained again" in caplog.text
    assert KEYS[0] not in cache and KEYS[1] not in cache  # removed: trained and stored again


def test_edited_arrays_and_a_wrong_lists_index_are_misses(tmp_path: Path) -> None:
    cache = filled(tmp_path)
    assert cache.get(KEYS[0]) is not None
    index = tmp_path / "lists" / f"{KEYS[0][::-1]}.json"
    index.write_text(f'{{"key": "{KEYS[1]}"}}')  # names an entry made for other lists
    assert cache.lists(KEYS[0][::-1]) is None
    arrays = cache.paths(KEYS[0])[0]
    values = dict(np.load(arrays))
    values["vectors"] = values["vectors"] + 1  # same key, other numbers
    with arrays.open("wb") as handle:
        np.savez(handle, **values)
    assert cache.get(KEYS[0]) is None


def test_an_entry_reads_back_as_stored(tmp_path: Path) -> None:
    cache = filled(tmp_path)
    loaded = cache.get(KEYS[1])
    served = cache.lists(KEYS[1][::-1])
    assert loaded is not None and loaded.info == side(2.0).info
    assert served is not None and np.array_equal(served.lists, side(2.0).lists)
    np.testing.assert_array_equal(loaded.vectors, side(2.0).vectors)
