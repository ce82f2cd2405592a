"""The hardware a number was measured on, in one line.

Timings depend on it, and so do a result's last digits: MKL and oneDNN choose their float
kernels by CPU vendor and vector width, so the same seed gives the same numbers only on the
same kind of CPU (an AVX-512 Intel core and an AVX-512 AMD core already round differently).
Result rows and bench tables carry this line so that numbers from two machines are never
compared as if from one.
"""

from __future__ import annotations

import os
import platform
from functools import cache
from pathlib import Path

import torch

CPUINFO = Path("/proc/cpuinfo")


def cpu_model(cpuinfo: str) -> str:
    """The first processor's name, vendor, family and model from /proc/cpuinfo's text
    ("" when it names none)."""
    fields: dict[str, str] = {}
    for line in cpuinfo.splitlines():
        if not line.strip():
            break  # the first processor's block ends here
        key, _, value = line.partition(":")
        fields.setdefault(key.strip(), value.strip())
    name = fields.get("model name", "")
    kind = " ".join(
        f"{label} {fields[key]}" if label else fields[key]
        for key, label in (("vendor_id", ""), ("cpu family", "family"), ("model", "model"))
        if fields.get(key)
    )
    return f"{name} ({kind})" if name and kind else name or kind


@cache
def machine() -> str:
    """This machine in one line: CPU model, cores, the vector instructions torch's CPU kernels
    use, and the CUDA devices (if any), e.g. 'AMD EPYC (AuthenticAMD family 25 model 17),
    2 cores, AVX512'."""
    text = CPUINFO.read_text(errors="replace") if CPUINFO.is_file() else ""
    parts = [
        cpu_model(text) or platform.processor() or platform.machine() or "unknown CPU",
        f"{os.cpu_count() or 1} cores",
        torch.backends.cpu.get_cpu_capability(),
    ]
    if torch.cuda.is_available():
        parts += [torch.cuda.get_device_name(i) for i in range(torch.cuda.device_count())]
    return ", ".join(parts)
