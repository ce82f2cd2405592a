"""A real browser for the report tests: Debian's headless Chromium (.ci/run installs it)."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import pytest


def chromium_console(page: Path, screenshot: Path) -> str:
    """Open `page` in headless Chromium, save a screenshot; return what its console logged."""
    browser = shutil.which("chromium") or shutil.which("chromium-browser")
    if browser is None:
        pytest.skip("chromium is not installed (apt-get install chromium)")
    done = subprocess.run(
        [browser, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic",
         "--no-first-run", "--disable-background-networking", "--disable-component-update",
         "--disable-sync", f"--user-data-dir={screenshot.parent / 'profile'}",
         "--enable-logging=stderr", "--v=0", "--window-size=1280,4000",
         f"--screenshot={screenshot}", page.as_uri()],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-2000:]
    return "\n".join(line for line in done.stderr.splitlines() if "CONSOLE" in line)
