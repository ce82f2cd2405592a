"""docker/Dockerfile builds the cluster image from the checkout. No Docker engine runs here, so
these tests check what can be checked without one: every file it copies exists and is not left
out by .dockerignore, torch's CUDA build comes from PyTorch's index before the locks, nothing is
fetched from a repository or a tag, and `make image` tags it with the package version."""

from __future__ import annotations

import fnmatch
import re
import subprocess
from pathlib import Path

import dlmia

ROOT = Path(__file__).resolve().parents[1]
DOCKERFILE = ROOT / "docker" / "Dockerfile"
#: what `pip install` of the copied checkout needs (pyproject.toml names README.md and LICENSE)
PACKAGE_FILES = ("pyproject.toml", "README.md", "LICENSE", "dlmia/__init__.py",
                 "tune/__init__.py", "analysis/__init__.py", "tune/grids/demo.yaml",
                 "analysis/paper_heatmap.csv")  # fmt: skip


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's (INSTRUCTION, arguments), continuation lines joined, comments dropped."""
    lines = [line for line in DOCKERFILE.read_text().splitlines()
             if not line.lstrip().startswith("#")]  # fmt: skip
    joined = re.sub(r"\\\n", " ", "\n".join(lines))
    return [(line.split(None, 1)[0].upper(), line.split(None, 1)[1])
            for line in joined.splitlines() if line.strip()]  # fmt: skip


def ignored(path: str) -> bool:
    """Whether .dockerignore leaves `path` (relative to the checkout) out of the build context."""
    patterns = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
                if line.strip() and not line.startswith("#")]  # fmt: skip
    parts = Path(path).parts
    prefixes = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(prefix, pattern.removeprefix("**/"))
               or fnmatch.fnmatch(part, pattern.removeprefix("**/"))
               for pattern in patterns for prefix in prefixes for part in parts)  # fmt: skip


def test_it_builds_on_rays_gpu_image_at_the_pinned_ray() -> None:
    lock = (ROOT / "requirements.lock").read_text()
    ray_pin = re.search(r"^ray==(\S+)$", lock, re.MULTILINE)
    assert ray_pin is not None
    assert instructions()[0] == ("FROM", f"rayproject/ray:{ray_pin.group(1)}-py311-gpu")


def test_every_copied_file_is_in_the_checkout_and_the_build_context() -> None:
    copies = [args.split() for op, args in instructions() if op == "COPY"]
    assert copies
    for words in copies:
        sources = [word for word in words if not word.startswith("--")][:-1]
        for source in sources:
            assert (ROOT / source).exists(), source
            assert source == "." or not ignored(source), source
    assert ["--chown=ray:users", ".", "/home/ray/dlmia-src"] in copies  # the checkout
    for path in PACKAGE_FILES:
        assert (ROOT / path).is_file() and not ignored(path), path
    assert ignored(".venv/bin/python") and ignored("out/demo/results/x.parquet")


def test_torch_is_the_cuda_build_then_the_locks_then_the_checkout() -> None:
    runs = [args for op, args in instructions() if op == "RUN"]
    text = " ".join(runs)
    torch = text.index("pip install --no-cache-dir torch==2.13.0 --index-url")
    locks = text.index("-r /tmp/dlmia/requirements.lock -r /tmp/dlmia/requirements-cluster.lock")
    checkout = text.index("--no-deps --no-build-isolation /home/ray/dlmia-src")
    assert torch < locks < checkout
    assert "ARG TORCH_INDEX_URL=https://download.pytorch.org/whl/cu" in DOCKERFILE.read_text()
    assert "torch.version.cuda" in text and "dlmia grid validate demo" in text


def test_nothing_comes_from_a_repository_or_a_placeholder() -> None:
    text = " ".join(args for _, args in instructions())
    assert "git+" not in text and "git clone" not in text and "<" not in text


def test_make_image_tags_the_package_version() -> None:
    argv = ["make", "--no-print-directory", "-n", "image", "REGISTRY=registry.example/team"]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, check=True)
    version = dlmia.__version__
    assert done.stdout.split() == [
        "docker", "build", "-f", "docker/Dockerfile", "--build-arg", f"DLMIA_VERSION={version}",
        "-t", f"registry.example/team/dlmia:{version}", ".",
    ]  # fmt: skip
