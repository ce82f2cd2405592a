"""Ray and Optuna are used through their public APIs only: no code of the project (the packages
and the benches) reads an attribute with a leading underscore of anything but its own objects,
or imports a private module of Ray or Optuna. Attributes with an underscore belong to the
library and change without notice (the search once read OptunaSearch's `_ot_study` and built
`optuna.Trial(study, frozen._trial_id)`; it now drives the study through ask and tell)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("dlmia", "tune", "analysis", "bench")
LIBRARIES = {"ray", "optuna"}
#: The one exception, and why: a local Ray binds its servers to loopback only when Ray's
#: multi-node flag is off, and Ray has no public setting for that after it is imported
#: (tune.cluster.loopback_node flips it for the start of a local Ray, and only then).
ALLOWED = {("tune/cluster.py", "ray._private")}


def private_uses(path: Path) -> list[str]:
    """`._name` reads on anything but `self` or `cls`, and private modules of Ray or Optuna
    imported, in a module that uses Ray or Optuna."""
    tree = ast.parse(path.read_text(), str(path))
    imported = set()
    found = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
            found += [alias.name for alias in node.names if private_module(alias.name)]
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            imported.add(node.module.split(".")[0])
            if private_module(node.module) or any(a.name.startswith("_") for a in node.names):
                found.append(node.module)
    if not imported & LIBRARIES:
        return []
    for node in ast.walk(tree):
        if isinstance(node, ast.Attribute) and node.attr.startswith("_"):
            dunder = node.attr.startswith("__") and node.attr.endswith("__")
            own = isinstance(node.value, ast.Name) and node.value.id in ("self", "cls")
            if not dunder and not own:
                found.append(ast.unparse(node))
    return found


def private_module(name: str) -> bool:
    parts = name.split(".")
    return parts[0] in LIBRARIES and any(part.startswith("_") for part in parts[1:])


def test_no_private_attribute_of_ray_or_optuna_is_read() -> None:
    found = {
        (str(path.relative_to(ROOT)), use)
        for package in PACKAGES
        for path in sorted((ROOT / package).rglob("*.py"))
        for use in private_uses(path)
    }
    assert found - ALLOWED == set()


def test_the_check_finds_what_the_search_once_did(tmp_path: Path) -> None:
    old = tmp_path / "old.py"
    old.write_text(
        "import optuna\n"
        "from ray.tune.search.optuna import OptunaSearch\n"
        "def tell(search, frozen):\n"
        "    study = search._ot_study\n"
        "    return optuna.Trial(study, frozen._trial_id)\n"
    )
    assert private_uses(old) == ["search._ot_study", "frozen._trial_id"]
