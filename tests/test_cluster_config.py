"""cluster.yaml and cluster-local.yaml pass the checks `ray up` makes before touching a node.

`ray up` runs Ray's `prepare_config` (defaults merged; `prepare_local` for provider: local) and
then `validate_config` (the JSON schema of ray-schema.json) before it creates or contacts any
machine; both work offline, so a stale or misspelt key fails here rather than on a cluster.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import jsonschema
import pytest
import yaml
from ray.autoscaler._private.util import prepare_config, validate_config

import dlmia

ROOT = Path(__file__).resolve().parents[1]
CONFIGS = ["cluster.yaml", "cluster-local.yaml"]


def load(name: str) -> dict[str, Any]:
    with open(ROOT / name) as f:
        raw = yaml.safe_load(f)
    assert isinstance(raw, dict)
    return raw


def ray_up_checks(config: dict[str, Any]) -> dict[str, Any]:
    """What `ray up` does to the file before any node: prepare, then validate."""
    prepared = prepare_config(copy.deepcopy(config))
    validate_config(prepared)
    return prepared


@pytest.mark.parametrize("name", CONFIGS)
def test_config_passes_ray_up_checks(name: str) -> None:
    prepared = ray_up_checks(load(name))
    assert prepared["cluster_name"].startswith("dlmia")
    assert prepared["head_node_type"] in prepared["available_node_types"]
    commands = " ".join(prepared["setup_commands"])
    assert "pip install" not in commands and "rsync" not in commands  # all in the image; no data


@pytest.mark.parametrize("name", CONFIGS)
def test_the_head_takes_no_task_cpus(name: str) -> None:
    prepared = ray_up_checks(load(name))
    (head,) = [c for c in prepared["head_start_ray_commands"] if "ray start" in c]
    assert "--num-cpus=0" in head and "--num-gpus=0" in head


@pytest.mark.parametrize("name", CONFIGS)
def test_the_image_is_the_project_image_at_the_package_version(name: str) -> None:
    image = load(name)["docker"]["image"]
    assert image.endswith(f"/dlmia:{dlmia.__version__}")  # what `make push` tags


def test_aws_config_has_cpu_head_and_autoscaling_gpu_workers() -> None:
    config = load("cluster.yaml")
    types = config["available_node_types"]
    head = types[config["head_node_type"]]["node_config"]["InstanceType"]
    workers = [t for name, t in types.items() if name != config["head_node_type"]]
    assert not head.startswith(("g", "p"))  # a CPU instance family
    assert workers and all(t["node_config"]["InstanceType"].startswith("g5.") for t in workers)
    assert all(t["min_workers"] < t["max_workers"] for t in workers)


def test_local_config_lists_machines() -> None:
    provider = load("cluster-local.yaml")["provider"]
    prepared = ray_up_checks(load("cluster-local.yaml"))
    node_type = next(iter(prepared["available_node_types"].values()))
    assert provider["head_ip"] and len(provider["worker_ips"]) == node_type["max_workers"]


@pytest.mark.parametrize("name", CONFIGS)
def test_typo_is_rejected(name: str) -> None:
    config = load(name)
    config["idle_timout_minutes"] = config.pop("idle_timeout_minutes", 5)  # misspelt key
    with pytest.raises(jsonschema.ValidationError, match="idle_timout_minutes"):
        ray_up_checks(config)


def test_typo_in_node_config_section_is_rejected() -> None:
    config = load("cluster.yaml")
    worker = config["available_node_types"]["gpu_worker"]
    worker["max_worker"] = worker.pop("max_workers")  # misspelt key in a node type
    with pytest.raises(jsonschema.ValidationError):
        ray_up_checks(config)


@pytest.mark.parametrize("name", CONFIGS)
def test_dashboard_on_loopback_and_token_auth_on_every_node(name: str) -> None:
    prepared = ray_up_checks(load(name))
    head = [c for c in prepared["head_start_ray_commands"] if "ray start" in c]
    workers = [c for c in prepared["worker_start_ray_commands"] if "ray start" in c]
    assert head and workers
    assert all("RAY_AUTH_MODE=token ray start " in c for c in head + workers)
    assert all("--dashboard-host=127.0.0.1" in c and "0.0.0.0" not in c for c in head)
    tokens = {remote: local for remote, local in prepared["file_mounts"].items()
              if remote.endswith("/.ray/auth_token")}  # fmt: skip
    assert list(tokens.values()) == ["~/.ray/auth_token"]  # `ray get-auth-token --generate`'s
