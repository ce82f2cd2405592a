"""Run a bench script's measurement in a fresh process on another tree's code.

A bench that compares code with code (`--baseline TREE`) runs each measurement as
`python SCRIPT ARGS...` with PYTHONPATH=TREE, so that process imports that tree's packages and
pays its own start-up, and reads back the JSON object the script prints last.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def json_in_fresh_process(tree: Path, script: str, *args: str, what: str) -> dict[str, Any]:
    """The JSON object `script` (run with `args` on `tree`'s code) prints last; exits naming
    `what` and the end of its stderr when it fails."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    done = subprocess.run([sys.executable, script, *args], env=env, capture_output=True,
                          text=True, check=False)
    if done.returncode:
        raise SystemExit(f"{tree}: {what} failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])  # type: ignore[no-any-return]


def machine_line() -> str:
    """This machine in one line (`dlmia.machine`), for the parent's table. Imported here, not at
    a bench's top: the fresh processes run the same script on a `--baseline` tree, whose dlmia
    may predate that module."""
    from dlmia.machine import machine

    return machine()


def side_facts(info: Any) -> dict[str, Any]:
    """A side's info as one flat dict, whichever tree built it: a `dlmia.records.SideInfo`
    (its served facts merged in), or the plain dict of trees before that record existed."""
    if isinstance(info, dict):
        return info
    import dataclasses

    facts = dataclasses.asdict(info)
    return {**facts.pop("served"), **facts}
