"""Check that every pin of the project's locks is a public release on the default package index.

Each lock line must be an exact pin, `name==version`, of a public version: no local build label
(`+cpu` exists in one machine's wheel folder only), no direct URL, no path (tests/test_locks.py
checks that offline). This script then asks the index itself, as a user's machine would see it:
`pip index versions NAME --isolated --pre` (the default index; no pip config, no local folders) for
every pin, and prints one line each. It needs the network; the tests never run it.

    .venv/bin/python tools/check_lock.py                       # requirements*.lock
    .venv/bin/python tools/check_lock.py requirements.lock     # one lock
"""

from __future__ import annotations

import argparse
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from packaging.requirements import InvalidRequirement, Requirement
from packaging.version import InvalidVersion, Version

ROOT = Path(__file__).resolve().parents[1]


def lock_pins(path: Path) -> dict[str, str]:
    """The `name -> version` pins of lock `path`.

    Raises:
        ValueError: a line that is not an exact pin of a public version, naming file and line.
    """
    pins: dict[str, str] = {}
    for number, line in enumerate(path.read_text().splitlines(), start=1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        where = f"{path.name}:{number}: {text!r}"
        try:
            requirement = Requirement(text)
        except InvalidRequirement as exc:
            raise ValueError(f"{where}: not a requirement ({exc})") from None
        if requirement.url:
            raise ValueError(f"{where}: a direct URL or path; pin a public version")
        specifiers = list(requirement.specifier)
        if len(specifiers) != 1 or specifiers[0].operator != "==":
            raise ValueError(f"{where}: not an exact pin (name==version)")
        version = Version(specifiers[0].version)
        if version.local is not None:
            label = f"local version label +{version.local}"
            raise ValueError(f"{where}: {label}; pin {version.public}")
        pins[requirement.name] = str(version)
    return pins


def index_versions(name: str) -> set[Version]:
    """The versions the default index lists for `name` (empty when it lists none; the few
    non-PEP 440 names some old releases carry are left out)."""
    done = subprocess.run(
        [sys.executable, "-m", "pip", "index", "versions", name, "--isolated", "--pre",
         "--disable-pip-version-check"],
        capture_output=True, text=True, timeout=300,
    )  # fmt: skip
    for line in done.stdout.splitlines():
        if line.startswith("Available versions:"):
            return {Version(v) for v in line.split(":", 1)[1].split(",") if _valid(v)}
    return set()


def _valid(version: str) -> bool:
    try:
        Version(version)
    except InvalidVersion:
        return False
    return True


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("locks", nargs="*", type=Path,
                        default=sorted(ROOT.glob("requirements*.lock")))  # fmt: skip
    args = parser.parse_args()
    pins = {name: version for lock in args.locks for name, version in lock_pins(lock).items()}
    with ThreadPoolExecutor(max_workers=8) as pool:
        listed = dict(zip(pins, pool.map(index_versions, pins)))
    missing = 0
    for name, version in pins.items():
        found = Version(version) in listed[name]
        missing += not found
        print(f"{name:<36} {version:<24} {'on the index' if found else 'NOT ON THE INDEX'}")
    print(f"{len(pins) - missing} of {len(pins)} pins are on the default index "
          f"({', '.join(str(lock.name) for lock in args.locks)})")  # fmt: skip
    return 1 if missing else 0


if __name__ == "__main__":
    sys.exit(main())
