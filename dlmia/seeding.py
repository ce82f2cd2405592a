"""Named, stable seeds: every random stage derives its own generator from the run seed.

Deriving by name (not by call order) keeps one stage's randomness independent of whether
another stage ran first, which is what lets cached sides be reused across cells.
"""

from __future__ import annotations

import hashlib

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
