"""The locks pin public versions only, so `make` installs them from any package index: no local
build label (`+cpu` lives in one machine's wheel folder), no direct URL, no path. Offline;
tools/check_lock.py asks the public index itself."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement

from tools.check_lock import lock_pins

ROOT = Path(__file__).resolve().parents[1]
LOCKS = sorted(ROOT.glob("requirements*.lock"))


def test_there_are_two_locks() -> None:
    assert [lock.name for lock in LOCKS] == ["requirements-cluster.lock", "requirements.lock"]


@pytest.mark.parametrize("lock", LOCKS, ids=[lock.name for lock in LOCKS])
def test_every_pin_is_an_exact_public_version(lock: Path) -> None:
    pins = lock_pins(lock)
    assert len(pins) > 5


@pytest.mark.parametrize(
    ("line", "problem"),
    [
        ("torch==2.13.0+cpu", "local version label +cpu; pin 2.13.0"),
        ("torch @ file:///opt/wheels/torch-2.13.0-cp311-linux_x86_64.whl", "direct URL or path"),
        ("dlmia @ git+https://github.com/org/dlmia@v0.2.0", "direct URL or path"),
        ("./wheels/torch-2.13.0.whl", "not a requirement"),
        ("numpy>=2.0", "not an exact pin"),
        ("numpy==2.4.6,<3", "not an exact pin"),
    ],
)
def test_a_private_or_loose_pin_is_refused(tmp_path: Path, line: str, problem: str) -> None:
    lock = tmp_path / "requirements.lock"
    lock.write_text(f"# a comment\nsix==1.17.0\n{line}\n")
    with pytest.raises(ValueError, match=re.escape(problem)) as caught:
        lock_pins(lock)
    assert str(caught.value).startswith("requirements.lock:3:")


def pinned(*locks: str) -> dict[str, str]:
    """The pins of `locks`, by normalised project name."""
    pins = {name: v for lock in locks for name, v in lock_pins(ROOT / lock).items()}
    return {name.lower().replace("_", "-"): version for name, version in pins.items()}


def declared(extra: str | None = None) -> list[Requirement]:
    """The package's dependencies (or those of one extra) as pyproject.toml declares them."""
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    texts = project["optional-dependencies"][extra] if extra else project["dependencies"]
    return [Requirement(text) for text in texts]


@pytest.mark.parametrize(
    ("extra", "locks"),
    [(None, ("requirements.lock",)), ("dev", ("requirements.lock",)),
     ("cluster", ("requirements.lock", "requirements-cluster.lock"))],
)  # fmt: skip
def test_the_locks_pin_every_declared_dependency(
    extra: str | None, locks: tuple[str, ...]
) -> None:
    pins = pinned(*locks)
    for requirement in declared(extra):
        name = requirement.name.lower().replace("_", "-")
        assert name in pins, f"{requirement} is not pinned in {locks}"
        assert requirement.specifier.contains(pins[name]), (str(requirement), pins[name])
