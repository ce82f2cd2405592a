"""Matplotlib for files: the pyplot module on a display-free backend, and atomic PNG saving."""

from __future__ import annotations

from pathlib import Path
from types import ModuleType
from typing import Any

from dlmia.io import atomic_write


def pyplot() -> ModuleType:
    """`matplotlib.pyplot` on the Agg backend (writes files; needs no display)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def save_figure(figure: Any, path: str | Path) -> Path:
    """Write `figure` to `path` as a PNG, atomically (no half-written image), then free it."""
    try:
        return atomic_write(
            path, lambda tmp: figure.savefig(tmp, format="png", dpi=120, bbox_inches="tight")
        )
    finally:
        pyplot().close(figure)
