"""The layers import one way: `dlmia` is the core (no Ray, no Optuna, no plotting), `tune` (Ray)
and `analysis` (tables and figures) build on it and not on each other; only the command line
(`dlmia.cli`) reaches up into both, inside its command handlers. Read from the source, so a new
import anywhere is caught without running it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
#: package -> the top-level packages its modules may not import.
FORBIDDEN = {
    "dlmia": {"ray", "optuna", "matplotlib", "tune", "analysis"},
    "tune": {"analysis"},
    "analysis": {"tune", "ray"},
}
#: The command layer: it starts grid runs (tune) and prints their reports (analysis).
COMMAND_LAYER = {"dlmia/cli.py"}
#: Modules of `tune` that decide without Ray: tested without it.
RAY_FREE = (
    "tune/schedule.py", "tune/plan.py", "tune/grid.py", "tune/space.py", "tune/search.py",
    "tune/study.py", "tune/search_local.py",
)  # fmt: skip


def imports(path: Path) -> set[str]:
    """The top-level packages `path` imports, wherever in the file the import stands."""
    found = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            found.add(node.module.split(".")[0])
    return found


@pytest.mark.parametrize("package", sorted(FORBIDDEN))
def test_a_layer_imports_no_layer_it_must_not(package: str) -> None:
    wrong = {
        str(path.relative_to(ROOT)): sorted(imports(path) & FORBIDDEN[package])
        for path in sorted((ROOT / package).rglob("*.py"))
        if str(path.relative_to(ROOT)) not in COMMAND_LAYER
    }
    assert {path: names for path, names in wrong.items() if names} == {}


def test_the_command_layer_reaches_tune_and_analysis_only_inside_handlers() -> None:
    """`import dlmia.cli` stays light: tune and analysis are imported inside the functions."""
    tree = ast.parse((ROOT / "dlmia" / "cli.py").read_text())
    top = set()
    for node in tree.body:
        if isinstance(node, ast.Import):
            top |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            top.add(node.module.split(".")[0])
    assert not top & {"tune", "analysis", "ray"}


@pytest.mark.parametrize("module", RAY_FREE)
def test_the_decisions_of_tune_need_no_ray(module: str) -> None:
    assert "ray" not in imports(ROOT / module)
