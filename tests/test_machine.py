"""The machine line that result rows and bench tables carry (dlmia.machine)."""

from __future__ import annotations

import os

import torch

from dlmia.machine import cpu_model, machine

AMD = """processor\t: 0
vendor_id\t: AuthenticAMD
cpu family\t: 25
model\t\t: 17
model name\t: AMD EPYC
flags\t\t: fpu avx2 avx512f

processor\t: 1
vendor_id\t: GenuineIntel
model name\t: another core
"""


def test_cpu_model_names_the_first_processor_and_its_kind() -> None:
    assert cpu_model(AMD) == "AMD EPYC (AuthenticAMD family 25 model 17)"


def test_cpu_model_keeps_what_cpuinfo_gives() -> None:
    assert cpu_model("model name\t: Some CPU\n") == "Some CPU"
    assert cpu_model("vendor_id\t: GenuineIntel\ncpu family\t: 6\n") == "GenuineIntel family 6"
    assert cpu_model("processor\t: 0\nBogoMIPS\t: 50.00\n") == ""
    assert cpu_model("") == ""


def test_machine_line_names_cores_and_vector_width() -> None:
    line = machine()
    assert f", {os.cpu_count()} cores, " in line
    assert f" cores, {torch.backends.cpu.get_cpu_capability()}" in line
    assert not line.startswith(",")  # a CPU name first, whatever the platform
