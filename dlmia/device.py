"""Device choice shared by every model: `auto` means CUDA when present, else CPU."""

from __future__ import annotations

import re

import torch

from dlmia.errors import ConfigError


def check_device(device: str) -> str:
    """`device` when it is a form dlmia accepts (auto, cpu, cuda, cuda:N), whether or not this
    machine has it: a grid checked on a laptop may name the cluster's GPUs."""
    if device in ("auto", "cpu", "cuda") or re.fullmatch(r"cuda:\d+", device):
        return device
    raise ConfigError(f"device {device!r}: use auto, cpu, cuda or cuda:N")


def resolve_device(device: str = "auto") -> torch.device:
    """Turn a device setting (`auto`, `cpu`, `cuda`, `cuda:1`) into a torch device."""
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        resolved = torch.device(device)
    except RuntimeError as exc:
        raise ConfigError(
            f"device {device!r} is not a torch device; use auto, cpu or cuda[:N]"
        ) from exc
    if resolved.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {device!r} asked for, but CUDA is not available; use auto or cpu"
        )
    return resolved
