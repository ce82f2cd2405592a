"""The grid runner on a real (local) Ray: end to end, resume after SIGKILL, failures, two nodes.

Every test uses tiny synthetic grids. The in-process tests share one local Ray (module fixture);
the two-node test shuts it down and brings its own cluster, so it comes last.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pandas as pd
import pytest
import ray
import yaml

from dlmia.attacks import ATTACKS
from dlmia.cell import run_cell
from dlmia.cli import main as cli_main
from dlmia.machine import machine
from dlmia.schema import RESULTS, undeclared
from tune.cache import SideCache
from tune.faults import FAULTS_ENV
from tune.grid import load_grid, parse_grid
from tune.plan import expand
from tune.progress import Progress
from tune.runner import run_grid

pytestmark = pytest.mark.slow
QUIET = Progress(stream=None)
KINDS = ("prepare", "side", "cell")


def tiny_grid(
    name: str, recommenders: tuple[str, ...] = ("lfm", "itemcf"), **runtime: int
) -> dict:
    """A grid small enough for a second or two per side and per cell on one CPU."""
    settings = {"lfm": {"epochs": 3, "factors": 16}, "itemcf": {}, "popularity": {}}
    sides = [f"syn.{r}" for r in recommenders]
    dataset = {
        "name": "synthetic",
        "synthetic": {"n_users": 240, "n_items": 60, "mean_length": 12.0},
        "vectors": {"epochs": 3, "factors": 16, "batch_size": 64},
    }
    return {
        "name": name,
        "datasets": {"syn": dataset},
        "recommenders": {r: {"name": r, "settings": settings[r]} for r in recommenders},
        "cells": {"product": {"shadow": sides, "target": sides}},
        "attacks": {"biased": {"settings": {"epochs": 3}}},
        "k": 10,
        "runtime": {"max_retries": 1, **runtime},
    }


def results(out: Path) -> pd.DataFrame:
    """Every result row under `out`."""
    paths = sorted((out / "results").glob("*.parquet"))
    return pd.concat([pd.read_parquet(p) for p in paths], ignore_index=True)


def mtimes(out: Path) -> dict[Path, int]:
    return {p: p.stat().st_mtime_ns for p in (out / "results").glob("*.parquet")}


def kill_session(sid: int) -> None:
    """SIGKILL what is left in session `sid` (the processes the test's driver started)."""
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            fields = stat.read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if int(fields[3]) == sid:  # field 6 of /proc/PID/stat: the session id
            with contextlib.suppress(ProcessLookupError):
                os.kill(int(stat.parent.name), signal.SIGKILL)



@pytest.mark.usefixtures("local_ray")
def test_end_to_end_writes_every_cell_once_and_resumes_from_disk(tmp_path: Path) -> None:
    raw = tiny_grid("e2e")
    if "dlmia" in ATTACKS:
        epochs = {"epochs_vae": 2, "epochs_heads": 2, "epochs_joint": 2}
        raw["attacks"]["dlmia"] = {"settings": epochs}
    grid = parse_grid(raw)
    plan = expand(grid)
    out = tmp_path / "out"
    summary = run_grid(expand(grid), out=out, progress=QUIET)
    assert summary.exit_code == 0 and summary.ok == len(plan.cells) == summary.cells
    assert (summary.sides_trained, summary.sides_cached) == (4, 0)
    frame = results(out)
    assert sorted(frame["cell_id"]) == sorted(c.id for c in plan.cells)
    assert (frame["status"] == "ok").all() and (frame["error"] == "").all()
    assert (frame["attempts"] == 1).all() and (frame["grid"] == "e2e").all()
    assert frame["roc_auc"].between(0, 1).all()
    for column in ("shadow_side_id", "target_side_id", "cell_key", "git_commit", "host", "config"):
        assert column in frame
    assert (frame["machine"] == machine()).all()
    scores = pd.read_parquet(out / "scores" / f"{plan.cells[0].id}.parquet")
    assert list(scores.columns) == ["user", "label", "score"]
    assert len(scores) == frame.set_index("cell_id").loc[plan.cells[0].id, "n_target"]
    assert load_grid(out / "grid.yaml") == parse_grid(raw, source=str(out / "grid.yaml"))
    assert all(side.key in SideCache(out / "sides") for side in plan.sides.values())
    assert {t["kind"] for t in summary.tasks} == {"prepare", "side", "cell"}
    assert all(t["task_end"] >= t["task_start"] for t in summary.tasks)
    pids = {k: {t["pid"] for t in summary.tasks if t["kind"] == k} for k in KINDS}
    assert pids["prepare"] <= pids["side"]  # on this machine, workers prepare their datasets
    assert pids["cell"] <= pids["side"]  # the cells ran on the workers that built the sides

    before = mtimes(out)
    again = run_grid(expand(grid), out=out, progress=QUIET)  # all done: nothing runs again
    assert again.skipped == again.cells and again.ok == 0 and not again.tasks
    assert mtimes(out) == before

    scores = out / "scores" / f"{plan.cells[0].id}.parquet"
    scores.unlink()  # a cell is done only when all of its files are: it runs again
    redone = run_grid(expand(grid), out=out, progress=QUIET)
    assert (redone.skipped, redone.ok, redone.sides_trained) == (len(plan.cells) - 1, 1, 0)
    assert scores.is_file()

    other = run_grid(expand(grid), out=tmp_path / "other", cache=out / "sides", progress=QUIET)
    assert (other.sides_cached, other.sides_trained, other.ok) == (4, 0, len(plan.cells))


@pytest.mark.usefixtures("local_ray")
def test_a_reference_pool_trains_on_ray_and_gives_dlmia_cells_numbers(tmp_path: Path) -> None:
    raw = tiny_grid("pool", recommenders=("itemcf",))
    raw["attacks"] = {"reference": {"settings": {"references": 3, "variant": "online"}}}
    raw["nonmember_lists"] = "model"
    grid = parse_grid(raw)
    plan = expand(grid)
    summary = run_grid(expand(grid), out=tmp_path / "out", progress=QUIET)
    assert summary.exit_code == 0 and (summary.sides_trained, summary.ok) == (5, 1)
    (cell,) = plan.cells
    scores = pd.read_parquet(tmp_path / "out" / "scores" / f"{cell.id}.parquet")
    alone = run_cell(cell.config)  # dlmia cell's path: the pool trained in this process
    assert scores["score"].tolist() == alone.scores.tolist()
    assert results(tmp_path / "out")["roc_auc"].item() == alone.metrics["roc_auc"]


@pytest.mark.usefixtures("local_ray")
def test_a_recommender_class_of_your_own_trains_on_the_workers(tmp_path: Path) -> None:
    raw = tiny_grid("own", recommenders=("itemcf",))
    raw["recommenders"] = {"als": {"name": "examples.als:ALS", "settings": {"factors": 8}}}
    raw["cells"] = [{"shadow": "syn.als", "target": "syn.als"}]
    raw["attacks"] = {"norm": None, "reference": {"settings": {"references": 2}}}
    summary = run_grid(expand(parse_grid(raw)), out=tmp_path / "out", progress=QUIET)
    assert summary.exit_code == 0 and (summary.sides_trained, summary.ok) == (4, 2)
    frame = results(tmp_path / "out")
    assert set(frame["target_recommender"]) == {"examples.als:ALS"}


@pytest.mark.usefixtures("local_ray")
def test_injected_failures_are_retried_then_recorded(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    grid = parse_grid(tiny_grid("faults"))
    broken = "syn.itemcf__syn.lfm__biased__s0"
    monkeypatch.setenv(FAULTS_ENV, f"cell:{broken}:always,side:syn.lfm.target.s0:1")
    out = tmp_path / "out"
    summary = run_grid(expand(grid), out=out, progress=QUIET)
    assert summary.exit_code == 1 and (summary.ok, summary.failed) == (3, 1)
    frame = results(out).set_index("cell_id")
    failed = frame.loc[broken]
    assert failed["status"] == "failed" and failed["attempts"] == 2  # the first try and one retry
    assert failed["error"].startswith("InjectedFailure: injected failure in cell")
    assert pd.isna(failed["roc_auc"]) and failed["n_target"] > 0
    assert not (out / "scores" / f"{broken}.parquet").exists()
    columns = {tuple(pd.read_parquet(p).columns) for p in (out / "results").glob("*.parquet")}
    assert len(columns) == 1  # a failed row has exactly an ok row's columns
    assert frame.loc["syn.lfm__syn.lfm__biased__s0", "status"] == "ok"  # its side failed once

    monkeypatch.setenv(FAULTS_ENV, "side:syn.itemcf.shadow.s0:always")  # a side that never works
    bad = run_grid(expand(grid), out=tmp_path / "bad", max_retries=0, progress=QUIET)
    assert (bad.failed, bad.sides_failed, bad.exit_code) == (2, 1, 1)
    errors = results(tmp_path / "bad").set_index("cell_id")["error"]
    expected = "side syn.itemcf.shadow.s0 failed: InjectedFailure"
    assert errors["syn.itemcf__syn.itemcf__biased__s0"].startswith(expected)

    monkeypatch.delenv(FAULTS_ENV)
    rerun = run_grid(expand(grid), out=out, progress=QUIET)  # only the failed cell runs again
    assert (rerun.skipped, rerun.ok, rerun.sides_trained, rerun.exit_code) == (3, 1, 0, 0)


@pytest.mark.usefixtures("local_ray")
def test_grid_seed_and_cli_seed_are_the_same_experiment(tmp_path: Path) -> None:
    """`dlmia cell --seed 1` gives exactly the row a grid's seed 1 gives for that cell."""
    raw = tiny_grid("seeded", ("lfm", "itemcf"))
    raw["cells"] = [{"shadow": "syn.lfm", "target": "syn.itemcf"}]
    raw["seeds"] = [1]
    raw["attacks"]["norm"] = {}
    run_grid(expand(parse_grid(raw)), out=tmp_path / "grid", progress=QUIET)
    grid_rows = results(tmp_path / "grid").set_index("attack")
    dataset = raw["datasets"]["syn"]
    for attack, settings in (("biased", ["--set", "epochs=3"]), ("norm", [])):
        out = tmp_path / attack
        code = cli_main([
            "-q", "cell", "--shadow", "synthetic:lfm", "--target", "synthetic:itemcf",
            "--seed", "1", "--k", "10", "--device", "auto", "--attack", attack, *settings,
            "--shadow-set", "epochs=3", "--shadow-set", "factors=16", "--out", str(out),
            *synthetic_flags(dataset),
        ])
        assert code == 0
        cli_row = pd.read_parquet(out / "result.parquet").iloc[0]
        assert undeclared(cli_row.index, RESULTS) == []
        grid_row = grid_rows.loc[attack]
        same = ["config", "attack_settings", "roc_auc", "roc_auc_low", "balanced_accuracy",
                "tpr_at_1pct_fpr", "target_list_coverage", "nonmember_lists", "vectors_fit_on"]
        assert {c: cli_row[c] for c in same} == {c: grid_row[c] for c in same}


def synthetic_flags(dataset: dict) -> list[str]:
    """The tiny grid's dataset settings as `dlmia cell` dataset flags."""
    return [
        "--dataset-set", f"synthetic={json.dumps(dataset['synthetic'])}",
        "--dataset-set", f"vectors={json.dumps(dataset['vectors'])}",
    ]


@pytest.mark.usefixtures("local_ray")
def test_each_nonmember_policy_is_its_own_set_of_sides_and_cells(tmp_path: Path) -> None:
    raw = tiny_grid("policies", ("lfm",))
    raw["nonmember_lists"] = ["popular", "model"]
    raw["attacks"] = {"list-frequency": {}}
    plan = expand(parse_grid(raw))
    assert sorted(plan.sides) == [
        "syn.lfm.shadow.model.s0", "syn.lfm.shadow.popular.s0",
        "syn.lfm.target.model.s0", "syn.lfm.target.popular.s0",
    ]
    summary = run_grid(expand(parse_grid(raw)), out=tmp_path / "out", progress=QUIET)
    assert summary.exit_code == 0 and summary.ok == 2
    frame = results(tmp_path / "out").set_index("nonmember_lists")
    assert frame.loc["popular", "cell_id"] == "syn.lfm__syn.lfm__list-frequency__popular__s0"
    # the shared popular list gives members away; the model's own lists do not
    assert frame.loc["popular", "roc_auc"] > frame.loc["model", "roc_auc"]


def run_and_kill(
    grid: Path, out: Path, until: Callable[[], bool], log: Path, grace: float = 0.0
) -> None:
    """Run `dlmia grid run GRID --out OUT` in a subprocess and SIGKILL the driver once `until()`
    holds (and `grace` seconds more), as `kill -9` or a crash would; then what is left of the
    Ray it started. Gives up waiting after 240 s (the test's assertions then say why)."""
    command = [
        sys.executable, "-m", "dlmia.cli", "-q", "grid", "run", str(grid), "--out", str(out)
    ]
    with log.open("w") as stream:
        driver = subprocess.Popen(command, start_new_session=True, stdout=stream, stderr=stream)
        deadline = time.monotonic() + 240
        try:
            while not until() and driver.poll() is None and time.monotonic() < deadline:
                time.sleep(0.05)
            time.sleep(grace)
            os.kill(driver.pid, signal.SIGKILL)
        finally:
            driver.wait(timeout=30)
            kill_session(driver.pid)


@pytest.mark.usefixtures("local_ray")
def test_killed_driver_resumes_without_recomputing(tmp_path: Path) -> None:
    raw = tiny_grid("killed", ("lfm", "itemcf", "popularity"), max_concurrent_cells=1)
    path, out = tmp_path / "killed.yaml", tmp_path / "out"
    path.write_text(yaml.safe_dump(raw))
    run_and_kill(path, out, lambda: bool(mtimes(out)), tmp_path / "driver.log")
    finished = mtimes(out)
    assert 1 <= len(finished) < 9, (tmp_path / "driver.log").read_text()[-3000:]

    summary = run_grid(expand(load_grid(path)), out=out, progress=QUIET)
    assert summary.exit_code == 0 and summary.skipped == len(finished)
    assert summary.ok == 9 - len(finished)
    assert summary.sides_cached >= 2  # the killed run's sides are reused, not trained again
    frame = results(out)
    assert len(frame) == 9 and frame["cell_id"].is_unique and (frame["status"] == "ok").all()
    assert {p: p.stat().st_mtime_ns for p in finished} == finished  # finished cells untouched
    assert not list(out.rglob(".*.tmp"))


def test_two_node_cluster_places_sides_on_both_nodes(tmp_path: Path) -> None:
    from ray.cluster_utils import Cluster

    ray.shutdown()  # the module's local Ray: this test brings a cluster of its own
    head = {"num_cpus": 1, "include_dashboard": False}
    cluster = Cluster(initialize_head=True, head_node_args=head)
    try:
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        grid = parse_grid(tiny_grid("two-nodes"))
        out = tmp_path / "out"
        summary = run_grid(expand(grid), out=out, address=cluster.address, progress=QUIET)
        assert summary.exit_code == 0 and summary.ok == 4 and summary.cpus == 2
        assert not ray.is_initialized()  # the runner disconnected what it connected
        infos = [json.loads(p.read_text())["info"] for p in (out / "sides").glob("??/*.json")]
        assert len(infos) == 4 and len({info["task"]["node_id"] for info in infos}) == 2
        prepared = {t["node_id"] for t in summary.tasks if t["kind"] == "prepare"}
        assert prepared == {cluster.head_node.node_id}  # the data is read on the driver's node
    finally:
        cluster.shutdown()


@pytest.mark.usefixtures("local_ray")
def test_side_workers_train_from_the_object_store_without_the_data_file(tmp_path: Path) -> None:
    """A worker node needs no data root: the prepared dataset reaches it through Ray."""
    from dlmia.data.synthetic import SyntheticConfig, generate
    from tune.actors import GridWorkerActor, prepare_task

    data = generate(SyntheticConfig(n_users=240, n_items=60, mean_length=12.0), 0)
    path = tmp_path / "data" / "ratings.csv"
    path.parent.mkdir()
    pd.DataFrame({"user": data.users, "item": data.items}).to_csv(path, index=False)
    raw = tiny_grid("objects")
    raw["datasets"]["syn"] = {"path": str(path), "vectors": raw["datasets"]["syn"]["vectors"]}
    job = next(iter(expand(parse_grid(raw)).sides.values()))
    stats, prepared = prepare_task.remote(job.spec.dataset)
    ray.get(stats)
    path.unlink()
    path.parent.rmdir()  # the data root is gone
    worker = GridWorkerActor.remote(1)
    side = ray.get(worker.build.remote(job, [prepared]))
    assert len(side.labels) == side.info.served.n_members + side.info.served.n_nonmembers
