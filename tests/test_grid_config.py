"""Grid files: schema validation and its messages, expansion into sides and cells, the CLI.

No Ray here (fast); the runner's tests are in test_grid_runner.py.
"""

from __future__ import annotations

import dataclasses
import io
import os
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import yaml

from dlmia.cli import main
from dlmia.data.loaders import Columns
from dlmia.errors import ConfigError
from dlmia.sides import DatasetSpec, SideOutput, SideSpec
from tests.records import side_info
from tune.cache import SideCache
from tune.faults import Faults
from tune.grid import grid_dict, load_grid, locate_grid, packaged_grids, parse_grid
from tune.plan import data_file_digest, data_fingerprint, expand
from tune.progress import Progress

GRIDS = sorted((Path(__file__).resolve().parents[1] / "grids").glob("*.yaml"))
EXPECTED = {
    "demo": (4, 16), "paper-general": (12, 144), "paper-sequential": (12, 144),
    "policies": (24, 192), "realistic": (432, 168), "realistic-unseen": (216, 84),
}


def tiny() -> dict:
    """A small valid grid as plain data (what YAML gives)."""
    return {
        "name": "tiny",
        "datasets": {"syn": {"name": "synthetic", "synthetic": {"n_users": 300, "n_items": 80}}},
        "recommenders": {
            "lfm": {"name": "lfm", "settings": {"epochs": 2}},
            "pop": {"name": "popularity"},
        },
        "cells": {"product": {"shadow": ["syn.lfm", "syn.pop"], "target": ["syn.lfm"]}},
        "attacks": {"biased": {"settings": {"epochs": 2}}},
        "k": 20,
        "seeds": [0, 1],
    }


def error_of(raw: dict, tmp_path: Path) -> str:
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError) as info:
        load_grid(path)
    message = str(info.value)
    assert message.startswith(str(path)), message  # every error names the file
    return message


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.stem)
def test_shipped_grids_load_and_expand(path: Path) -> None:
    grid = load_grid(path)
    plan = expand(grid, data_root="/nonexistent")
    assert grid.name == path.stem
    assert set(grid.attacks) >= {"norm", "list-frequency", "biased", "dlmia"}  # baselines beside
    if grid.name in EXPECTED:
        assert (len(plan.sides), len(plan.cells)) == EXPECTED[grid.name]
    assert len({c.id for c in plan.cells}) == len(plan.cells)


@pytest.mark.parametrize("path", GRIDS, ids=lambda p: p.stem)
def test_shipped_grids_are_documented(path: Path) -> None:
    lines = path.read_text().splitlines()
    header = lines[: [line.startswith("#") for line in lines].index(False)]
    assert any("Purpose" in line for line in header) and any("Cells" in line for line in header)
    assert any("Runtime" in line for line in header)
    keys = [line for line in lines if re.match(r"^\s*[\w-]+:", line)]
    undocumented = [line for line in keys if not re.search(r"  # \(", line)]
    assert not undocumented  # every key has a trailing `# (type) meaning` comment


def _set(*path: str, value: object):  # type: ignore[no-untyped-def]
    """A change to a grid: set the key at `path` to `value`."""

    def change(raw: dict) -> None:
        node = raw
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value

    return change


def _rename(old: str, new: str):  # type: ignore[no-untyped-def]
    return lambda raw: raw.update({new: raw.pop(old)})


ERRORS = [  # (change, the message it gives, as a regular expression)
    (_rename("recommenders", "recomenders"),
     r"recomenders: unknown key; allowed keys are .*recommenders"),
    (_set("datasets", "syn", "splitt", value={}),
     r"datasets\.syn\.splitt: unknown key; allowed keys are .*split"),
    (_set("recommenders", "lfm", "name", value="lfmm"),
     r"recommenders\.lfm\.name: unknown recommender 'lfmm'; known: .*itemcf"),
    (_set("recommenders", "lfm", "settings", "factor", value=8),
     r"recommenders\.lfm\.settings\.factor: unknown key; allowed keys are .*factors"),
    (_set("recommenders", "lfm", "settings", "epochs", value="two"),
     r"recommenders\.lfm\.settings\.epochs: expected an integer, got 'two'"),
    (_set("recommenders", "lfm", "resources", value={"num_gpu": 1}),
     r"recommenders\.lfm\.resources\.num_gpu: unknown key; allowed keys are num_cpus, num_gpus"),
    (_set("k", value="ten"), r"k: expected an integer, got 'ten'"),
    (_set("k", value=500), r"k: 500 is larger than datasets\.syn\.synthetic\.n_items \(80\)"),
    (_set("nonmember_lists", value="pop"),
     r"nonmember_lists: 'pop' is not allowed; use one of popular"),
    (_set("seeds", value=[0, 0]), r"seeds: expected a non-empty list of distinct integers"),
    (_set("cells", "product", "target", value=["syn.lfmm"]),
     r"cells\.product\.target: 'syn\.lfmm' names recommender 'lfmm'; recommenders are lfm, pop"),
    (_set("cells", "product", "shadow", value=["ml.lfm"]),
     r"cells\.product\.shadow: 'ml\.lfm' names dataset 'ml'; datasets are syn"),
    (_set("cells", value=[{"shadow": "syn.lfm", "target": "lfm"}]),
     r"cells\[0\]\.target: expected 'dataset\.recommender'"),
    (_set("cells", value=[{"shadow": "syn.lfm", "targe": "syn.lfm"}]),
     r"cells\[0\]\.targe: unknown key"),
    (_set("attacks", "biassed", value={}),
     r"attacks\.biassed: unknown attack; known attacks are .*biased"),
    (_set("attacks", "biased", "settings", "lr", value="fast"),
     r"attacks\.biased\.settings\.lr: expected a number"),
    (_set("datasets", "syn", "path", value="x.csv"),
     r"datasets\.syn: give exactly one of name .* or path"),
    (_set("datasets", "syn", "name", value="ml-2m"),
     r"datasets\.syn: unknown dataset 'ml-2m'; known: ml-1m, ml-100k, ml-20m"),
    (_set("datasets", "syn", "columns", value={"user": 0, "item": 1}),
     r"datasets\.syn\.columns: only for a file given by path"),
    (lambda raw: raw["datasets"].update(f={"path": "r.tsv", "columns": {"usr": 0, "item": 1}}),
     r"datasets\.f\.columns\.usr: unknown key; allowed keys are item, timestamp, user"),
    (lambda raw: raw["datasets"].update(f={"path": "r.tsv", "columns": {"user": 0}}),
     r"datasets\.f\.columns: give both user and item"),
    (lambda raw: raw["datasets"].update(f={"path": "r.tsv", "columns": {"user": 0, "item": "a"}}),
     r"datasets\.f\.columns: give all positions"),
    (lambda raw: raw["datasets"].update(f={"path": "r.tsv", "columns": {"user": 0, "item": 1.5}}),
     r"datasets\.f\.columns\.item: 1\.5 matches no allowed type"),
    (lambda raw: raw.pop("cells"),
     r"cells: missing; a grid needs name, datasets, recommenders, cells and attacks"),
    (_set("runtime", value={"max_retries": "2"}), r"runtime\.max_retries: expected an integer"),
    (_set("name", value="my grid"), r"name: 'my grid' is not a valid name"),
]


@pytest.mark.parametrize(("change", "expected"), ERRORS, ids=[e[1][:40] for e in ERRORS])
def test_validation_errors_name_the_key_and_what_is_allowed(  # type: ignore[no-untyped-def]
    change, expected: str, tmp_path: Path
) -> None:
    raw = tiny()
    change(raw)
    assert re.search(expected, error_of(raw, tmp_path))


def test_duplicate_yaml_keys_are_rejected(tmp_path: Path) -> None:
    path = tmp_path / "dup.yaml"
    path.write_text(yaml.safe_dump(tiny()) + "k: 10\n")
    message = r"dup\.yaml: not valid YAML \(line 1, column 1: key 'k' appears twice"
    with pytest.raises(ConfigError, match=message):
        load_grid(path)


def test_expansion_shares_sides_and_keys_follow_content() -> None:
    plan = expand(parse_grid(tiny()))
    # 2 shadows x 1 target x 2 seeds; sides: (lfm, pop) shadow + lfm target, per seed
    assert len(plan.cells) == 4 and len(plan.sides) == 6
    assert plan.cells[0].id == "syn.lfm__syn.lfm__biased__s0"
    shadows = {f"syn.{r}.shadow.s{s}" for r in ("lfm", "pop") for s in (0, 1)}
    assert {c.shadow for c in plan.cells} == shadows
    keys = {s.key for s in plan.sides.values()}
    assert len(keys) == 6  # roles and seeds give different sides
    again = expand(parse_grid(tiny()), data_root="/elsewhere")  # synthetic: no root involved
    assert [s.key for s in again.sides.values()] == [s.key for s in plan.sides.values()]
    changed = tiny()
    changed["recommenders"]["lfm"]["settings"]["epochs"] = 3
    other = expand(parse_grid(changed))
    assert other.sides["syn.lfm.shadow.s0"].key != plan.sides["syn.lfm.shadow.s0"].key
    assert other.sides["syn.pop.shadow.s0"].key == plan.sides["syn.pop.shadow.s0"].key
    assert other.cells[0].key != plan.cells[0].key and other.cells[0].id == plan.cells[0].id


def test_resolved_grid_round_trips() -> None:
    grid = parse_grid(tiny(), source="x.yaml")
    again = parse_grid(yaml.safe_load(yaml.safe_dump(grid_dict(grid))), source="x.yaml")
    assert again == grid


def test_path_datasets_resolve_under_the_data_root(tmp_path: Path) -> None:
    raw = tiny()
    raw["datasets"]["syn"] = {"path": "sub/ratings.csv"}
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "ratings.csv").write_text("user,item\n1,2\n")
    plan = expand(parse_grid(raw), data_root=tmp_path)
    spec = next(iter(plan.datasets.values()))
    assert spec.path == str(tmp_path / "sub" / "ratings.csv") and spec.name == ""
    before = next(iter(plan.sides.values())).key
    (tmp_path / "sub" / "ratings.csv").write_text("user,item\n1,2\n1,3\n")  # new content, new key
    assert next(iter(expand(parse_grid(raw), data_root=tmp_path).sides.values())).key != before


def test_side_keys_follow_the_data_files_bytes_not_their_times(tmp_path: Path) -> None:
    raw = tiny()
    raw["datasets"]["syn"] = {"path": "ratings.csv"}
    keys = []
    for root, text, mtime_ns in ((tmp_path / "a", "user,item\n1,2\n", 10**18),
                                 (tmp_path / "b", "user,item\n1,2\n", 2 * 10**18),  # a copy
                                 (tmp_path / "b", "user,item\n1,3\n", 2 * 10**18)):  # an edit
        root.mkdir(exist_ok=True)
        (root / "ratings.csv").write_text(text)
        os.utime(root / "ratings.csv", ns=(mtime_ns, mtime_ns))  # same size and time: bytes differ
        data_file_digest.cache_clear()  # as in a new process (within one, a write's ctime tells)
        keys.append(next(iter(expand(parse_grid(raw), data_root=root).sides.values())).key)
    assert keys[0] == keys[1] != keys[2]


def test_a_data_file_that_cannot_be_read_is_left_to_the_data_check(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "ratings.csv").write_text("user,item\n1,2\n")
    spec = DatasetSpec(name="", path="ratings.csv", data_root=str(tmp_path))

    def unreadable(path: Path, version: tuple[int, ...]) -> str:
        raise PermissionError(13, "Permission denied", str(path))

    monkeypatch.setattr("tune.plan.data_file_digest", unreadable)
    assert data_fingerprint(spec) == "unreadable"
    (tmp_path / "ratings.csv").unlink()
    os.mkfifo(tmp_path / "ratings.csv")  # never opened: opening a FIFO waits for a writer
    assert data_fingerprint(spec) == "not a regular file"


def test_grid_columns_are_part_of_the_dataset_and_its_side_keys(tmp_path: Path) -> None:
    raw = tiny()
    (tmp_path / "r.tsv").write_text("u1\ti1\t5\t100\n")
    raw["datasets"]["syn"] = {"path": "r.tsv", "columns": {"user": 0, "item": 1}}
    grid = parse_grid(raw)
    assert grid.datasets["syn"].columns == Columns(user=0, item=1)
    assert parse_grid(yaml.safe_load(yaml.safe_dump(grid_dict(grid)))) == grid  # round trip
    plan = expand(grid, data_root=tmp_path)
    raw["datasets"]["syn"]["columns"]["timestamp"] = 3
    other = expand(parse_grid(raw), data_root=tmp_path)
    assert other.sides["syn.lfm.shadow.s0"].key != plan.sides["syn.lfm.shadow.s0"].key


def test_a_relative_path_resolves_alike_in_a_grid_and_in_dlmia_cell(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    from dlmia.cli import build_parser, cell_config

    root = tmp_path / "root"
    (root / "sub").mkdir(parents=True)
    (root / "sub" / "r.tsv").write_text("1\t2\t5\t100\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("DLMIA_DATA_ROOT", str(root))
    for data_root in (str(root), None):  # --data-root, then the default ($DLMIA_DATA_ROOT)
        raw = tiny()
        raw["datasets"]["syn"] = {"path": "sub/r.tsv"}
        grid_spec = next(iter(expand(parse_grid(raw), data_root=data_root).datasets.values()))
        argv = ["cell", "--shadow", "sub/r.tsv:lfm", "--target", "sub/r.tsv:lfm", "--device",
                "cpu"]
        root_flag = ["--data-root", data_root] if data_root else []
        args = build_parser().parse_args([*argv, *root_flag])
        cli_spec = cell_config(args).shadow.dataset
        assert grid_spec.path == cli_spec.path == str(root / "sub" / "r.tsv")
        assert grid_spec.file() == cli_spec.file()
        assert data_fingerprint(grid_spec) == data_fingerprint(cli_spec) != "missing"
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "r.tsv").write_text("1\t2\n")  # as given, it now exists: it wins
    cli_spec = cell_config(build_parser().parse_args(argv)).shadow.dataset
    grid_spec = next(iter(expand(parse_grid(raw)).datasets.values()))
    assert grid_spec.path == cli_spec.path == str(tmp_path / "sub" / "r.tsv")


def test_validate_reports_a_missing_file_and_columns_that_do_not_fit(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny()
    raw["datasets"]["syn"] = {"path": "r.tsv", "columns": {"user": 0, "item": 1, "timestamp": 5}}
    grid = tmp_path / "grid.yaml"
    grid.write_text(yaml.safe_dump(raw))
    command = ["grid", "validate", str(grid), "--data-root", str(tmp_path)]
    assert main(command) == 2
    where = f"dlmia: error: {grid}: datasets.syn: "
    assert f"{where}unknown dataset 'r.tsv': neither a known name" in capsys.readouterr().err
    (tmp_path / "r.tsv").write_text("u1\ti1\t5\t100\n")
    assert main(command) == 2
    err = capsys.readouterr().err
    assert f"{where}{tmp_path / 'r.tsv'}: columns timestamp=5 is beyond the file's 4 col" in err
    assert "--columns (a grid dataset: columns:)" in err
    raw["datasets"]["syn"]["columns"]["timestamp"] = 3
    grid.write_text(yaml.safe_dump(raw))
    assert main(command) == 0


def test_validate_command(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["grid", "validate", str(GRIDS[0].parent / "demo.yaml")]) == 0
    summary = (
        "4 sides to train, 4 shadow x target pairs x 4 attacks (norm, list-frequency, biased, "
        "dlmia) x 1 non-member policies (popular) x 1 seeds = 16 cells"
    )
    assert summary in capsys.readouterr().out
    policies = ["grid", "validate", str(GRIDS[0].parent / "policies.yaml"), "--no-search",
                "--vectors-fit-on", "all-histories", "--data-root", str(tmp_path)]
    assert main(policies) == 2  # its data files are not there
    assert "dataset 'ml-1m' not found" in capsys.readouterr().err
    files = {"ml-1m/ratings.dat": "1::2::5::978300760\n",
             "amazon-digital-music/interactions.tsv": "user\titem\nu1\ti1\n"}
    for name, text in files.items():  # validate reads the first rows, not the whole file
        (tmp_path / name).parent.mkdir(parents=True)
        (tmp_path / name).write_text(text)
    assert main(policies) == 0
    out = capsys.readouterr().out
    assert "valid grid 'policies-all-histories-fixed'" in out
    assert "x 3 non-member policies (popular, popular-random, model) x 1 seeds = 192 cells" in out
    bad = tmp_path / "bad.yaml"
    bad.write_text(yaml.safe_dump({**tiny(), "kk": 1}))
    assert main(["grid", "validate", str(bad)]) == 2
    assert f"dlmia: error: {bad}: kk: unknown key" in capsys.readouterr().err


def test_cli_and_validation_do_not_import_ray() -> None:
    demo = GRIDS[0].parent / "demo.yaml"
    code = (
        "import sys, dlmia.cli; assert 'ray' not in sys.modules, 'dlmia.cli imported ray'; "
        f"assert dlmia.cli.main(['-q', 'grid', 'validate', {str(demo)!r}]) == 0; "
        "assert 'ray' not in sys.modules, 'grid validate imported ray'"
    )
    run = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr


def test_side_cache_round_trip(tmp_path: Path) -> None:
    cache = SideCache(tmp_path)
    side = SideOutput(
        vectors=np.arange(6, dtype=np.float32).reshape(3, 2),
        labels=np.array([1, 0, 0]),
        users=np.array([5, 7, 9]),
        lists=np.array([[1, 2], [2, 3], [4, 1]], dtype=np.int32),
        info=side_info(n_zero_vectors=np.int64(3)),
        statistics={"own": np.array([0.5, 0.0, 1.0]), "norm": np.array([-1.0, -2.0, -3.0])},
    )
    spec = SideSpec(DatasetSpec(name="synthetic"), "shadow", "lfm")
    assert "ab" * 32 not in cache
    cache.store("ab" * 32, spec, side)
    loaded = cache.load("ab" * 32)
    assert "ab" * 32 in cache and loaded.info == side_info(n_zero_vectors=3)
    np.testing.assert_array_equal(loaded.vectors, side.vectors)
    np.testing.assert_array_equal(loaded.users, side.users)
    np.testing.assert_array_equal(loaded.lists, side.lists)
    assert loaded.statistics.keys() == side.statistics.keys()
    for name, values in side.statistics.items():
        np.testing.assert_array_equal(loaded.statistics[name], values)
    assert not list(tmp_path.rglob("*.tmp"))


def test_fault_hook_parsing() -> None:
    faults = Faults("cell:*itemcf*:always, side:syn.lfm.*:1")
    assert faults("cell", "a.itemcf__b__biased__s0", 7)
    assert faults("side", "syn.lfm.shadow.s0", 1)
    assert not faults("side", "syn.lfm.shadow.s0", 2)
    assert not faults("side", "syn.pop.shadow.s0", 1)
    assert not Faults("")("cell", "x", 1)
    with pytest.raises(ConfigError, match="expected side:GLOB:N or cell:GLOB:N"):
        Faults("cells:x:1")


def test_plain_progress_lines_and_eta() -> None:
    stream = io.StringIO()
    progress = Progress(stream=stream)
    progress.begin(sides=2, cells=4, skipped=1)
    progress.done("side", "a", cached=True)
    progress.started("side", "b")
    progress.done("side", "b")
    progress.started("cell", "c")
    progress.done("cell", "c", failed=True)
    text = stream.getvalue()
    assert "2 sides to make ready, 4 cells to run (1 already done)" in text
    assert "side a from cache" in text and "cell c FAILED (sides 2/2, cells 1/5, 1 failed" in text
    assert progress.eta() is not None and progress.eta() >= 0  # type: ignore[operator]
    assert dataclasses.asdict(progress.cells)["failed"] == 1

    progress.begin(sides=0, cells=2, skipped=0, trials=12)
    progress.trials(3)
    progress.trials(5)  # within 30 s of the last trial line: no line
    progress.started("cell", "d")
    progress.done("cell", "d")
    text = stream.getvalue()
    assert "2 cells to run (0 already done), 12 search trials" in text
    assert "cell d done (sides 0/0, cells 1/2, trials 5/12 done, 0 failed" in text
    assert "search trials done (sides 0/0, cells 0/2, trials 3/12 done" in text
    assert "trials 5/12 done, 0 failed, ETA" not in text.split("cell d done")[0]
    progress.started_at -= 6.0  # 6 of 14 units (2 cells + 12 trials) done in 6 s: 8 s left
    assert progress.eta() == pytest.approx(8.0, abs=0.1)


def test_a_bare_name_is_the_packaged_grid(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.chdir(tmp_path)  # no grids/ folder in reach
    assert sorted(packaged_grids()) == sorted(path.stem for path in GRIDS)
    assert locate_grid("demo") == packaged_grids()["demo"]
    assert load_grid("paper-general").name == "paper-general"
    (tmp_path / "demo").write_text(yaml.safe_dump(tiny()))  # an existing path wins
    assert load_grid("demo").name == "tiny"
    with pytest.raises(ConfigError, match="the packaged grid of that name is `policies`"):
        locate_grid("grids/policies.yaml")
    with pytest.raises(ConfigError, match="packaged grids: demo, paper-general, "):
        locate_grid("nope")
    assert main(["grid", "show", "paper-sequential"]) == 0
    assert capsys.readouterr().out == packaged_grids()["paper-sequential"].read_text()
    assert main(["grid", "show"]) == 0
    listed = [line.split()[0] for line in capsys.readouterr().out.splitlines()]
    assert listed == sorted(packaged_grids())
    assert main(["grid", "show", "nope"]) == 2
    assert "dlmia: error: nope: no such grid file" in capsys.readouterr().err


def test_a_reference_cell_depends_on_its_pool_which_cells_share() -> None:
    raw = tiny()
    raw["attacks"] = {"reference": {"settings": {"references": 3}}, "norm": None}
    raw["cells"] = [{"shadow": "syn.lfm", "target": "syn.lfm"},
                    {"shadow": "syn.lfm", "target": "syn.pop"},
                    {"shadow": "syn.pop", "target": "syn.lfm"}]  # fmt: skip
    raw["nonmember_lists"] = "model"
    plan = expand(parse_grid(raw))
    reference = [cell for cell in plan.cells if cell.config.attack == "reference"]
    assert len(reference) == 6 and all(len(cell.references) == 3 for cell in reference)
    assert not [cell for cell in plan.cells if cell.config.attack == "norm" and cell.references]
    by_shadow = {(cell.shadow, cell.config.seed): cell.references for cell in reference}
    for cell in reference:
        assert cell.references == by_shadow[cell.shadow, cell.config.seed]  # one pool, shared
        assert cell.side_ids == (cell.shadow, cell.target, *cell.references)
    pools = {side for cell in reference for side in cell.references}
    assert len(pools) == 2 * 2 * 3  # (lfm, pop) x seeds (0, 1) x 3 models
    assert all(plan.sides[side].spec.role == "reference" for side in pools)
    assert "syn.lfm.reference-online-2.s1" in pools
    keys = {cell.key for cell in reference}
    raw["attacks"]["reference"]["settings"]["references"] = 4
    assert not keys & {cell.key for cell in expand(parse_grid(raw)).cells}


def test_a_reference_attack_across_datasets_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    raw = tiny()
    raw["datasets"]["other"] = {"name": "synthetic", "synthetic": {"n_users": 320, "n_items": 80}}
    raw["cells"] = [{"shadow": "other.lfm", "target": "syn.lfm"}]
    raw["attacks"] = {"reference": None}
    path = tmp_path / "grid.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert main(["grid", "validate", str(path)]) == 2
    error = capsys.readouterr().err
    assert f"{path}: cell other.lfm -> syn.lfm: attack reference:" in error
    assert "must be one dataset with one split" in error
