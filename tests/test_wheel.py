"""The package builds into a wheel and an sdist that run outside the checkout: the wheel is
installed without dependencies into a folder of its own (the project's .venv supplies them) and
used from a scratch folder, where no checkout file is in reach. The packaged grids resolve by
bare name there."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tarfile
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
GRIDS = sorted(path.name for path in (ROOT / "tune" / "grids").glob("*.yaml"))
SKIP = shutil.ignore_patterns(".git", ".venv", "out", "data", "build", "dist", "*.egg-info",
                              "__pycache__", ".pytest_cache", ".mypy_cache", ".ruff_cache")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def dist(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """`python -m build` on a copy of the checkout (the build writes metadata into its tree):
    an sdist, and a wheel built from that sdist. No isolation: no download."""
    source = tmp_path_factory.mktemp("source") / "dlmia"
    shutil.copytree(ROOT, source, ignore=SKIP, symlinks=True)
    out = tmp_path_factory.mktemp("dist")
    done = subprocess.run([sys.executable, "-m", "build", "--no-isolation", "--outdir", str(out),
                           str(source)], capture_output=True, text=True)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return out


@pytest.fixture(scope="module")
def installed(dist: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The wheel installed with --no-deps into a folder that goes first on PYTHONPATH."""
    (wheel,) = dist.glob("dlmia-*.whl")
    target = tmp_path_factory.mktemp("site")
    done = subprocess.run(
        [sys.executable, "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
         "--disable-pip-version-check", "--target", str(target), str(wheel)],
        capture_output=True, text=True,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    return target


def dlmia(installed: Path, cwd: Path, *argv: str) -> subprocess.CompletedProcess[str]:
    """The installed `dlmia` console script, run in `cwd` with only the wheel's code in reach."""
    env = {**os.environ, "PYTHONPATH": str(installed), "RAY_AUTH_MODE": "disabled",
           "RAY_USAGE_STATS_ENABLED": "0"}  # fmt: skip
    return subprocess.run([str(installed / "bin" / "dlmia"), *argv], cwd=cwd, env=env,
                          capture_output=True, text=True, timeout=600)  # fmt: skip


def test_the_sdist_and_the_wheel_carry_the_grids(dist: Path) -> None:
    (sdist,) = dist.glob("dlmia-*.tar.gz")
    (wheel,) = dist.glob("dlmia-*.whl")
    with tarfile.open(sdist) as archive:
        in_sdist = {Path(name).name for name in archive.getnames() if "/tune/grids/" in name}
    with zipfile.ZipFile(wheel) as archive:
        names = archive.namelist()
    assert set(GRIDS) <= in_sdist
    assert {f"tune/grids/{name}" for name in GRIDS} <= set(names)
    assert "analysis/paper_heatmap.csv" in names
    assert not [name for name in names if name.startswith(("tests/", "bench/", "grids/"))]


def test_the_wheel_runs_outside_the_checkout(installed: Path, tmp_path: Path) -> None:
    where = dlmia(installed, tmp_path, "--version")
    assert where.returncode == 0 and where.stdout.startswith("dlmia "), where.stderr
    code = "import dlmia, tune, analysis; print(dlmia.__file__, tune.__file__, analysis.__file__)"
    env = {**os.environ, "PYTHONPATH": str(installed)}
    files = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, env=env,
                           capture_output=True, text=True, check=True).stdout.split()  # fmt: skip
    assert all(Path(file).is_relative_to(installed) for file in files), files

    shown = dlmia(installed, tmp_path, "grid", "show", "demo")
    assert shown.returncode == 0 and shown.stdout == (ROOT / "grids" / "demo.yaml").read_text()
    valid = dlmia(installed, tmp_path, "grid", "validate", "demo")
    assert valid.returncode == 0, valid.stderr
    assert "valid grid 'demo'" in valid.stdout and str(installed) in valid.stdout

    synthetic = "synthetic={n_users: 300, n_items: 80, mean_length: 12.0}"
    cell = dlmia(installed, tmp_path, "-q", "cell", "--shadow", "synthetic:itemcf", "--target",
                 "synthetic:itemcf", "--attack", "norm", "--k", "10", "--dataset-set", synthetic,
                 "--out", "one")  # fmt: skip
    assert cell.returncode == 0, cell.stderr
    result = json.loads(cell.stdout.splitlines()[-1])
    assert result["n_target"] > 50 and 0.5 < result["roc_auc"] <= 1.0
    assert (tmp_path / "one" / "result.parquet").is_file()
    assert sorted(path.name for path in tmp_path.iterdir()) == ["one"]
