"""Device choice shared by every model: `auto` means CUDA when present, else CPU."""

from __future__ import annotations

import torch

from dlmia.errors import ConfigError


def resolve_device(device: str = "auto") -> torch.device:
    """Turn a device setting (`auto`, `cpu`, `cuda`, `cuda:1`) into a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(f"device {device!r} is not a torch device; use auto, cpu or cuda[:N]") from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(f"device {device!r} asked for, but CUDA is not available; use auto or cpu")
    return resolved
