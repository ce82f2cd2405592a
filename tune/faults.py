"""A test hook: make chosen sides or cells fail, to exercise retries and failure records.

DLMIA_GRID_FAULTS="side:GLOB:N,cell:GLOB:N" fails the first N attempts (or `always`) of every
side or cell whose id matches GLOB. Only the driver reads the variable; it tells the remote call
to raise, so the hook needs nothing on the workers.
"""

from __future__ import annotations

import fnmatch
import os

from dlmia.errors import ConfigError

FAULTS_ENV = "DLMIA_GRID_FAULTS"
ALWAYS = 1 << 30


class Faults:
    """The failures `FAULTS_ENV` asks for (none when it is unset)."""

    def __init__(self, text: str | None = None) -> None:
        text = os.environ.get(FAULTS_ENV, "") if text is None else text
        self.rules: list[tuple[str, str, int]] = []
        for item in filter(None, (part.strip() for part in text.split(","))):
            kind, _, rest = item.partition(":")
            pattern, _, count = rest.rpartition(":")
            valid = count.isdigit() or count == "always"
            if kind not in ("side", "cell") or not pattern or not valid:
                raise ConfigError(
                    f"{FAULTS_ENV}: {item!r}: expected side:GLOB:N or cell:GLOB:N "
                    "(N: a count, or always)"
                )
            self.rules.append((kind, pattern, ALWAYS if count == "always" else int(count)))

    def __call__(self, kind: str, name: str, attempt: int) -> bool:
        """Whether attempt `attempt` (from 1) of side or cell `name` is to fail."""
        return any(
            k == kind and fnmatch.fnmatchcase(name, p) and attempt <= n for k, p, n in self.rules
        )
