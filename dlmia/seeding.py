"""Named, stable seeds: every random stage derives its own generator from the run seed.

Deriving by name (not by call order) keeps one stage's randomness independent of whether
another stage ran first, which is what lets cached sides be reused across cells.
"""

from __future__ import annotations

import contextlib
import hashlib
from collections.abc import Iterator

import numpy as np
import torch


def derive_seed(seed: int, *names: object) -> int:
    """A 63-bit seed that depends only on `seed` and the names (stable across processes)."""
    text = "/".join([str(seed), *map(str, names)])
    return int.from_bytes(hashlib.sha256(text.encode()).digest()[:8], "little") >> 1


def numpy_rng(seed: int, *names: object) -> np.random.Generator:
    """A NumPy generator for the stage called `names` of the run seeded with `seed`."""
    return np.random.default_rng(derive_seed(seed, *names))


def torch_generator(
    seed: int, *names: object, device: str | torch.device = "cpu"
) -> torch.Generator:
    """A torch generator for the stage called `names`, on `device`."""
    generator = torch.Generator(device=device)
    generator.manual_seed(derive_seed(seed, *names))
    return generator


def seed_torch(seed: int, *names: object) -> None:
    """Seed torch's global generator (parameter initialisation) for the stage called `names`."""
    torch.manual_seed(derive_seed(seed, *names))


@contextlib.contextmanager
def deterministic_kernels(device: torch.device) -> Iterator[None]:
    """Torch's deterministic kernels while training on a CPU.

    With more than one thread, the backward of advanced indexing (`x[rows]`, an accumulating
    index_put_) adds its rows in whatever order the threads finish: the same seed gave a
    different NCF model on every run (ML-1M, 2 threads: 0% identical top-100 lists). In
    deterministic mode torch adds them in a fixed order, so a seed and a thread count give one
    model (another thread count still splits other sums differently). Not on CUDA, where
    deterministic cuBLAS needs a workspace setting made before start-up.
    """
    if device.type != "cpu" or torch.are_deterministic_algorithms_enabled():
        yield
        return
    torch.use_deterministic_algorithms(True, warn_only=True)
    try:
        yield
    finally:
        torch.use_deterministic_algorithms(False)
