"""Matplotlib for files: the pyplot module on a display-free backend, and atomic saving of each
figure twice: a PNG to look at and a PDF (vector) for papers."""

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
    """Write `figure` to `path` (a .png) and beside it as .pdf, each atomically (no half-written
    image), then free it; returns the PNG's path."""
    png = Path(path).with_suffix(".png")
    try:
        atomic_write(
            png.with_suffix(".pdf"),
            lambda tmp: figure.savefig(tmp, format="pdf", bbox_inches="tight"),
        )
        return atomic_write(
            png, lambda tmp: figure.savefig(tmp, format="png", dpi=150, bbox_inches="tight")
        )
    finally:
        pyplot().close(figure)
