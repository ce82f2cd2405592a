"""The distributed path end to end: a grid submitted as a Ray job to a two-node cluster with the
dashboard's job server (as the README's `ray job submit` line does), its results under the
stable output folder, and a job stopped mid-grid that a resubmission finishes, every cell once."""

from __future__ import annotations

import os
import socket
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
import ray
import yaml

from tests.test_grid_runner import tiny_grid
from tune.outputs import JOB_ENV, OUT_ENV, output_root

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
ENTRYPOINT = "dlmia grid run {grid}"  # the README's `ray job submit ... -- dlmia grid run FILE`


@pytest.fixture(scope="module")
def cluster() -> Iterator[Any]:
    """Two nodes, one CPU each, the head with the dashboard (and so the job server)."""
    from ray.cluster_utils import Cluster

    ray.shutdown()
    # free agent ports: another Ray on this machine (default port 52365) must not block jobs
    head = {"num_cpus": 1, "include_dashboard": True, "dashboard_port": 0,
            "dashboard_agent_listen_port": free_port()}  # fmt: skip
    nodes = Cluster(initialize_head=True, head_node_args=head)
    try:
        nodes.add_node(num_cpus=1, dashboard_agent_listen_port=free_port())
        nodes.wait_for_nodes()
        unpack_the_checkout_on_every_node(nodes)
        yield nodes
    finally:
        nodes.shutdown()


# a task on each node, from a driver that imports nothing of the checkout once Ray is up
WARM_UP = (
    "python -c \"import ray; ray.init(); "
    "from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy as On; "
    "f = ray.remote(lambda: 0); "
    "ray.get([f.options(scheduling_strategy=On(n['NodeID'], soft=False)).remote() "
    "for n in ray.nodes() if n['Alive']])\""
)


def unpack_the_checkout_on_every_node(nodes: Any) -> None:
    """Have every node's runtime-env agent unpack the job's working directory once.

    The test's two nodes share one session folder (one machine), and an agent that has not yet
    unpacked a package removes the folder and unpacks it anew, under the feet of a job driver
    importing from it on the other node (a FileNotFoundError for a module imported late). On
    a real cluster each node unpacks into its own disk. Once both agents hold the package, a
    later job with the same checkout is never unpacked again.
    """
    client = client_of(nodes)
    assert wait_for(client, submit(client, WARM_UP), {"SUCCEEDED", "FAILED"}) == "SUCCEEDED"


def free_port() -> int:
    """A TCP port nothing on this machine listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def client_of(cluster: Any) -> Any:
    from ray.job_submission import JobSubmissionClient

    return JobSubmissionClient(f"http://{cluster.head_node.address_info['webui_url']}")


def submit(client: Any, entrypoint: str, env: dict[str, str] | None = None) -> str:
    """Submit `entrypoint` from the repository, as `ray job submit --working-dir . -- ...`."""
    path = f"{Path(sys.executable).parent}:{os.environ.get('PATH', '')}"  # this venv's dlmia
    env = {"PATH": path, "RAY_AUTH_MODE": "disabled", **(env or {})}
    runtime_env = {"working_dir": str(ROOT), "env_vars": env,
                   "excludes": ["out/", ".venv/", "bench/results/"]}
    deadline = time.monotonic() + 120  # the head's job agent registers a while after start
    while True:
        try:
            return client.submit_job(entrypoint=entrypoint, runtime_env=runtime_env)
        except RuntimeError as exc:
            if "No available agent" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(2)


def test_the_demo_grid_runs_as_a_job_into_the_absolute_out(cluster: Any, tmp_path: Path) -> None:
    from analysis.results import load_results

    client = client_of(cluster)
    out = tmp_path / "demo"
    job = submit(client, f"dlmia grid run grids/demo.yaml --no-search --out {out}")
    assert wait_for(client, job, {"SUCCEEDED", "FAILED", "STOPPED"}) == "SUCCEEDED", (
        client.get_job_logs(job)[-3000:])
    frame = load_results(out)
    assert len(frame) == 16 and (frame["status"] == "ok").all()
    assert f"results go to {out}" in client.get_job_logs(job)


def wait_for(client: Any, job: str, states: set[str], timeout: float = 420.0) -> str:
    deadline = time.monotonic() + timeout
    while (status := str(client.get_job_status(job)).rsplit(".", 1)[-1]) not in states:
        assert time.monotonic() < deadline, client.get_job_logs(job)[-3000:]
        time.sleep(0.5)
    return status


def results(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.parquet")}


def test_a_grid_job_writes_where_the_user_looks_and_resumes(
    cluster: Any, tmp_path: Path
) -> None:
    client = client_of(cluster)
    raw = tiny_grid("job", ("lfm", "itemcf", "popularity"), max_concurrent_cells=1)
    grid = tmp_path / "job.yaml"
    grid.write_text(yaml.safe_dump(raw))
    out_root = tmp_path / "stable"
    out = out_root / "job"

    env = {OUT_ENV: str(out_root)}  # the stable output root, as a cluster would set it
    first = submit(client, ENTRYPOINT.format(grid=grid), env)
    deadline = time.monotonic() + 300
    while not results(out) and time.monotonic() < deadline:
        time.sleep(0.2)
    client.stop_job(first)  # mid-grid, as `ray job stop`
    assert wait_for(client, first, {"STOPPED", "SUCCEEDED", "FAILED"}) == "STOPPED"
    finished = results(out)
    assert 1 <= len(finished) < 9, client.get_job_logs(first)[-3000:]

    second = submit(client, ENTRYPOINT.format(grid=grid), env)
    assert wait_for(client, second, {"SUCCEEDED", "FAILED", "STOPPED"}) == "SUCCEEDED", (
        client.get_job_logs(second)[-3000:])
    logs = client.get_job_logs(second)
    assert f"results go to {out}" in logs and f"{len(finished)} already done" in logs
    after = results(out)
    assert len(after) == 9 and all(after[p] == t for p, t in finished.items())
    frame = pd.concat([pd.read_parquet(p) for p in after], ignore_index=True)
    assert frame["cell_id"].is_unique and (frame["status"] == "ok").all()
    assert not list(out.rglob(".*.tmp"))


def test_a_job_without_dlmia_out_writes_under_the_home_folder(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.delenv(OUT_ENV, raising=False)
    monkeypatch.setenv(JOB_ENV, "{}")  # what Ray sets for a job's entrypoint
    assert output_root("paper-general") == Path.home() / "dlmia-out" / "paper-general"
    monkeypatch.delenv(JOB_ENV)
    monkeypatch.chdir(tmp_path)
    assert output_root("demo") == tmp_path / "out" / "demo"
    assert output_root("demo", "rel") == tmp_path / "rel"
    monkeypatch.setenv(OUT_ENV, str(tmp_path / "all"))
    assert output_root("demo") == tmp_path / "all" / "demo"
