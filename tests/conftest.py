"""Shared fixtures: the optional real data folder, and a quiet Ray environment."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import torch

os.environ.setdefault("RAY_AUTH_MODE", "disabled")
os.environ.setdefault("RAY_USAGE_STATS_ENABLED", "0")
# One thread: the suite's tensors are small, and on a loaded 2-core machine two threads per
# process make loops of small operations many times slower.
torch.set_num_threads(1)

SHARED_DATA = Path(__file__).resolve().parents[2] / "shared" / "data"


@pytest.fixture
def shared_data() -> Path:
    """../shared/data beside the checkout; the test is skipped where it is absent (a user's
    clone)."""
    if not (SHARED_DATA / "ml-1m" / "ratings.dat").exists():
        pytest.skip("../shared/data is absent")
    return SHARED_DATA


@pytest.fixture(scope="module")
def local_ray() -> Iterator[Any]:
    """A local Ray with 2 CPUs for the module's tests, started as every local run starts one
    (tune.cluster.start_local_ray: loopback only, no dashboard); one already running is used as
    it is."""
    import ray

    from tune.cluster import start_local_ray

    started = not ray.is_initialized()
    if started:
        start_local_ray(num_cpus=2)
    yield ray
    if started:
        ray.shutdown()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every test that starts Ray is `slow` (`make test-fast` leaves them out)."""
    for item in items:
        if "local_ray" in getattr(item, "fixturenames", ()):
            item.add_marker(pytest.mark.slow)
