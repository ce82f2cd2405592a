"""The catalogue of bad inputs: every one must end in one `dlmia: error:` line and exit code 2,
before any work, leaving nothing behind. tests/test_faults.py runs each case, bench/faults.py
prints the table. A case names what is wrong, the command (placeholders `{tmp}` for its scratch
folder, `{grid}` for its grid file), the files it plants first (contents, links, FIFOs), the
environment it runs in, and a fragment of the message.
"""

from __future__ import annotations

import contextlib
import copy
import io
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

Edit = Callable[[dict[str, Any]], None]


@dataclass(frozen=True)
class Link:
    """A symbolic link a case plants, to `target` ({tmp} filled in; it need not exist)."""

    target: str


@dataclass(frozen=True)
class Fifo:
    """A named pipe a case plants: reading it waits for a writer that never comes."""


Planted = str | bytes | Link | Fifo


@dataclass(frozen=True)
class Case:
    """One bad input and the error it must give."""

    group: str  # what kind of input: cell options, data files, grid files, ...
    name: str  # what is wrong with it
    argv: tuple[str, ...]  # the dlmia command line, with {tmp} and {grid}
    message: str  # a fragment the error line must hold
    files: dict[str, Planted] = field(default_factory=dict)  # planted under {tmp} first
    grid: Edit | None = None  # edits the base grid, written to {grid}
    env: dict[str, str] = field(default_factory=dict)  # environment variables of the command

    def grid_text(self) -> str | None:
        """The case's grid file, or None when it needs none."""
        if self.grid is None:
            return None
        raw = base_grid()
        self.grid(raw)
        return yaml.safe_dump(raw, sort_keys=False)


def base_grid() -> dict[str, Any]:
    """A valid two-side synthetic grid every grid case breaks in one place."""
    return copy.deepcopy({
        "name": "faults",
        "datasets": {"syn": {"name": "synthetic",
                             "synthetic": {"n_users": 240, "n_items": 60, "mean_length": 12.0}}},
        "recommenders": {"lfm": {"name": "lfm", "settings": {"epochs": 2}},
                         "itemcf": {"name": "itemcf"}},
        "cells": {"product": {"shadow": ["syn.lfm", "syn.itemcf"],
                              "target": ["syn.lfm", "syn.itemcf"]}},
        "attacks": {"biased": {"settings": {"epochs": 2}},
                    "dlmia": {"search": {"num_samples": 2}}},
        "k": 10,
    })


CELL = ("cell", "--shadow", "synthetic:lfm", "--target", "synthetic:itemcf", "--device", "cpu",
        "--out", "{tmp}/out")
VALIDATE = ("grid", "validate", "{grid}")


def cell(*extra: str, name: str, message: str, files: dict[str, str | bytes] | None = None
         ) -> Case:
    """A `dlmia cell` case on synthetic data with `extra` options (the last --out wins)."""
    return Case("cell options", name, (*CELL, *extra), message, files=files or {})


def data(name: str, text: Planted, message: str, file: str = "r.csv") -> Case:
    """A `dlmia cell` case on a ratings file `file` holding `text`."""
    side = f"{{tmp}}/{file}:itemcf"
    argv = ("cell", "--shadow", side, "--target", side, "--device", "cpu", "--out", "{tmp}/out")
    return Case("data files", name, argv, message, files={file: text})


def columns(name: str, value: str, message: str, text: str | None = None) -> Case:
    """A `dlmia cell` case on ratings file r.csv (`ROWS`, or `text`) read with `--columns`."""
    side = "{tmp}/r.csv:itemcf"
    argv = ("cell", "--shadow", side, "--target", side, "--device", "cpu", "--columns", value,
            "--out", "{tmp}/out")
    return Case("data files", name, argv, message, files={"r.csv": text or ROWS})


def grid_columns(name: str, value: Any, message: str, text: str | None = None) -> Case:
    """A grid case whose dataset is ratings file r.csv (`ROWS`, or `text`) with `columns:`."""
    edit = setting("datasets.syn", {"path": "r.csv", "columns": value})
    argv = (*VALIDATE, "--data-root", "{tmp}")
    return Case("grid files", name, argv, message, files={"r.csv": text or ROWS}, grid=edit)


def grid(name: str, edit: Edit, message: str, argv: tuple[str, ...] = VALIDATE) -> Case:
    """A grid-file case: the base grid with `edit` applied."""
    return Case("grid files", name, argv, message, grid=edit)


def output(name: str, argv: tuple[str, ...], message: str, files: dict[str, Planted],
           grid_edit: Edit | None = None) -> Case:
    """A case of an output folder (or cache, or download folder) that holds a planted file."""
    return Case("output folders", name, argv, message, files=files, grid=grid_edit)


RUN = ("grid", "run", "{grid}", "--out", "{tmp}/out")
VICTIM = {"victim.txt": "precious"}


def setting(path: str, value: Any) -> Edit:
    """An edit that sets the dotted key `path` of a grid to `value`."""
    def edit(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node.setdefault(key, {})
        node[last] = value
    return edit


def removed(path: str) -> Edit:
    """An edit that deletes the dotted key `path` of a grid."""
    def edit(raw: dict[str, Any]) -> None:
        *parents, last = path.split(".")
        node = raw
        for key in parents:
            node = node[key]
        del node[last]
    return edit


def space(entry: Any, name: str = "tau") -> Edit:
    """An edit that searches DL-MIA setting `name` over `entry`."""
    return setting("attacks.dlmia.search.space", {name: entry})


ROWS = "".join(f"u{u},i{(u * 7 + j) % 40},5,{1000 + j}\n" for u in range(60) for j in range(12))
HEADER = "user,item,rating,timestamp\n"
LONG = "9" * 5_000_000  # a 5-million-digit number


def parquet(**columns: list[Any]) -> bytes:
    """A parquet file of `columns` (name -> values), as bytes."""
    import pandas as pd

    buffer = io.BytesIO()
    pd.DataFrame(columns).to_parquet(buffer)
    return buffer.getvalue()


def result(**values: Any) -> bytes:
    """A one-row results file (the columns every row needs), with `values` set."""
    row = {"shadow_dataset": "syn", "shadow_recommender": "lfm", "target_dataset": "syn",
           "target_recommender": "itemcf", "attack": "biased", "seed": 0, "status": "ok"}
    return parquet(**{key: [value] for key, value in (row | values).items()})


def grid_data(name: str, text: Planted, message: str, file: str = "r.csv") -> Case:
    """A `grid validate` case whose dataset is the file `file` holding `text`."""
    edit = setting("datasets.syn", {"path": file})
    argv = (*VALIDATE, "--data-root", "{tmp}")
    return Case("grid files", name, argv, message, files={file: text}, grid=edit)


def alias_bomb(levels: int = 9, flow: bool = False) -> str:
    """YAML whose last alias stands for 10**levels values in a few hundred bytes; block style
    (a grid file whose `name` is the bomb) or one flow-style value (for --set)."""
    anchors = ["&a0 [x, x, x, x, x, x, x, x, x, x]"] + [
        f"&a{i} [{', '.join([f'*a{i - 1}'] * 10)}]" for i in range(1, levels)
    ]
    if flow:
        return f"[{', '.join(anchors)}]"
    return "".join(f"k{i}: {anchor}\n" for i, anchor in enumerate(anchors)) + (
        f"name: *a{levels - 1}\n")

CASES: tuple[Case, ...] = (
    # --- dlmia cell: options ------------------------------------------------------------------
    cell("--attack", "nosuch", name="unknown attack", message="unknown attack"),
    cell("--k", "0", name="k zero", message="--k 0"),
    cell("--k", "-3", name="k negative", message="--k -3"),
    cell("--k", "x", name="k not an integer", message="invalid int value"),
    cell("--k", "5000", name="k above the catalogue", message="larger than the catalogue"),
    cell("--seed", "1.5", name="seed not an integer", message="invalid int value"),
    cell("--threads", "many", name="threads not an integer", message="invalid int value"),
    cell("--threads", "10000", name="threads far above the machine's CPUs",
         message="--threads 10000: use 1 to"),
    cell("--threads", "0", name="threads zero", message="--threads 0: use 1 to"),
    cell("--set", f"hidden={alias_bomb(flow=True)}", name="--set value an alias bomb",
         message="stands for more than 100,000 values"),
    cell("--set", "lr=" + "9" * 100_000, name="--set integer of 100,000 digits",
         message="limit (4300 digits)"),
    cell("--set", "lr=" + "9" * 4000, name="--set integer of 4,000 digits as a float",
         message="attack.biased.lr: expected a finite number"),
    cell("--center", "mean", name="unknown centre", message="invalid choice"),
    cell("--nonmember-lists", "random", name="unknown non-member policy",
         message="invalid choice"),
    cell("--vectors-fit-on", "everything", name="unknown vector fit", message="invalid choice"),
    cell("--device", "tpu", name="unknown device", message="device 'tpu'"),
    cell("--device", "cuda:x", name="malformed CUDA device", message="device 'cuda:x'"),
    cell("--device", "cuda", name="CUDA device without CUDA", message="CUDA is not available"),
    cell("--set", "lr=fast", name="attack setting of the wrong type", message="attack.biased.lr"),
    cell("--set", "lr=.nan", name="attack setting NaN", message="finite number"),
    cell("--set", "lr=.inf", name="attack setting infinite", message="finite number"),
    cell("--set", "lr=-.inf", name="attack setting minus infinity", message="finite number"),
    cell("--set", "hidden=[1", name="--set unclosed list", message="not valid YAML"),
    cell("--set", "hidden={a: 1", name="--set unclosed mapping", message="not valid YAML"),
    cell("--set", "hidden=\t1", name="--set value with a tab", message="not valid YAML"),
    cell("--set", "hidden=[0]", name="attack hidden size zero", message="hidden"),
    cell("--set", "epochs=-1", name="attack epochs negative", message="epochs"),
    cell("--set", "novalue", name="--set without =", message="expected key=value"),
    cell("--set", "=1", name="--set without key", message="expected key=value"),
    cell("--set", "badkey=1", name="unknown attack setting", message="attack.biased.badkey"),
    cell("--attack", "dlmia", "--set", "tau=2", name="DL-MIA tau out of range", message="tau"),
    cell("--attack", "dlmia", "--set", "latent_inv=0", name="DL-MIA latent size zero",
         message="latent_inv"),
    cell("--attack", "dlmia", "--set", "alpha=0.8", "--set", "beta=0.8",
         name="DL-MIA head mix above 1", message="alpha"),
    cell("--attack", "dlmia", "--set", "spe_dist=cauchy", name="DL-MIA unknown distribution",
         message="spe_dist"),
    cell("--shadow-set", "factors=many", name="recommender setting of the wrong type",
         message="recommender.lfm.factors"),
    cell("--shadow-set", "nosuch=1", name="unknown recommender setting",
         message="recommender.lfm.nosuch"),
    cell("--shadow-set", "factors=0", name="LFM factors zero",
         message="recommender.lfm.factors: must be > 0, got 0"),
    cell("--shadow-set", "factors=100000000", name="LFM factors huge",
         message="recommender.lfm.factors: must be <= 4,096"),
    cell("--shadow-set", "batch_size=0", name="LFM batch size zero",
         message="recommender.lfm.batch_size: must be > 0"),
    cell("--shadow-set", "negatives=-2", name="LFM negatives negative",
         message="recommender.lfm.negatives: must be >= 0"),
    cell("--shadow-set", "lr_decay=0", name="LFM learning-rate decay zero",
         message="recommender.lfm.lr_decay"),
    cell("--target-set", "neighbours=-1", name="ItemCF neighbours negative",
         message="recommender.itemcf.neighbours: must be >= 0"),
    cell("--target-set", "block_items=0", name="ItemCF block zero",
         message="recommender.itemcf.block_items: must be > 0"),
    cell("--set", "hidden=[1000000000]", name="attack hidden size huge",
         message="attack.biased.hidden: must be <= 4,096"),
    cell("--attack", "dlmia", "--set", "hidden=100000000", name="DL-MIA hidden size huge",
         message="attack.dlmia.hidden: must be <= 4,096"),
    cell("--seed", "-1", name="seed negative", message="seed: must be in [0, 2**63)"),
    cell("--seed", str(2**64), name="seed of 2**64", message="seed: must be in [0, 2**63)"),
    cell("--target-set", "neighbours=x", name="unknown target recommender setting",
         message="recommender.itemcf"),
    cell("--shadow-set", "epochs=[1", name="--shadow-set YAML error", message="--shadow-set"),
    cell("--dataset-set", "name=ml-1m", name="dataset name through --dataset-set",
         message="--dataset-set name"),
    cell("--dataset-set", "data_root=/x", name="data root through --dataset-set",
         message="--dataset-set data_root"),
    cell("--dataset-set", "path=r.csv", name="data path through --dataset-set",
         message="--dataset-set path"),
    cell("--dataset-set", "columns={user: 0, item: 1}", name="columns through --dataset-set",
         message="--dataset-set columns"),
    cell("--columns", "user=0,item=1", name="--columns with named datasets only",
         message="--columns: applies to a data file"),
    cell("--dataset-set", "nosuch=1", name="unknown dataset setting", message="nosuch"),
    cell("--dataset-set", "split={fractions: [0.5, 0.5]}", name="split of two parts",
         message="fractions"),
    cell("--dataset-set", "split={fractions: [0.5, 0.4, 0.3]}", name="split not summing to 1",
         message="fractions"),
    cell("--dataset-set", "split={fractions: [1.2, -0.1, -0.1]}", name="negative split part",
         message="fractions"),
    cell("--dataset-set", "filter={min_user: 0}", name="filter minimum zero", message="min_user"),
    cell("--dataset-set", "filter={min_user: x}", name="filter minimum not a number",
         message="min_user"),
    cell("--dataset-set", "vectors={fit_on: all}", name="unknown vector fit in a setting",
         message="fit_on"),
    cell("--dataset-set", "vectors={factors: 0}", name="item vector size zero", message="factors"),
    cell("--dataset-set", "synthetic={n_users: 5}", name="synthetic data too small",
         message="left no users"),
    cell("--dataset-set", "synthetic={n_users: 100000000000000000000}",
         name="synthetic n_users 1e20", message="synthetic.n_users: must be <= 10,000,000"),
    cell("--dataset-set", "synthetic={mean_length: 1.0e+12}", name="synthetic mean length 1e12",
         message="synthetic.mean_length: 1,500 users of mean length 1e+12"),
    cell("--dataset-set", "synthetic={mean_gap: 1.0e+300}", name="synthetic gap 1e300",
         message="synthetic.mean_gap: must be <="),
    cell("--dataset-set", "synthetic={seed: -3}", name="synthetic seed negative",
         message="synthetic.seed: must be >= 0"),
    cell("--dataset-set", "split={seed: -5}", name="split seed negative",
         message="split.seed: must be >= 0"),
    cell("--dataset-set", "vectors={seed: -1}", name="vector seed negative",
         message="vectors.seed: must be >= 0"),
    cell("--dataset-set", "vectors={factors: 100000}", name="item vector size huge",
         message="vectors.factors: must be <= 4,096"),
    cell("--data-root", "{tmp}/nowhere", name="data root that does not exist",
         message="--data-root"),
    cell("--out", "{tmp}/file.txt", name="--out is a file", message="is a file",
         files={"file.txt": "x"}),
    cell("--out", "/proc/dlmia-out", name="--out where nothing can be written",
         message="cannot write"),
    Case("cell options", "missing --target", ("cell", "--shadow", "synthetic:lfm"),
         "required: --target"),
    Case("cell options", "side without recommender",
         ("cell", "--shadow", "synthetic", "--target", "synthetic:lfm"), "DATASET:RECOMMENDER"),
    Case("cell options", "side with empty dataset",
         ("cell", "--shadow", ":lfm", "--target", "synthetic:lfm"), "DATASET:RECOMMENDER"),
    Case("cell options", "unknown recommender",
         ("cell", "--shadow", "synthetic:svd", "--target", "synthetic:lfm"),
         "unknown recommender"),
    Case("cell options", "unknown dataset name",
         ("cell", "--shadow", "movielens:lfm", "--target", "synthetic:lfm"), "unknown dataset"),
    Case("cell options", "named dataset whose file is missing",
         ("cell", "--shadow", "ml-1m:lfm", "--target", "ml-1m:lfm", "--data-root", "{tmp}"),
         "ml-1m"),
    Case("commands", "no command", (), "required: COMMAND"),
    Case("commands", "unknown command", ("train",), "invalid choice"),
    Case("commands", "unknown option", (*CELL, "--shadwo", "x"), "unrecognized arguments"),
    Case("commands", "grid without action", ("grid",), "required: grid_command"),
    Case("commands", "data without action", ("data",), "required: data_command"),
    # --- data files ---------------------------------------------------------------------------
    Case("data files", "file that does not exist",
         ("cell", "--shadow", "{tmp}/none.csv:itemcf", "--target", "{tmp}/none.csv:itemcf"),
         "none.csv"),
    data("empty file", "", "r.csv"),
    data("header only", "user,item,rating,timestamp\n", "r.csv"),
    data("binary garbage", bytes(range(256)) * 8, "r.csv"),
    data("one column", "".join(f"u{u}\n" for u in range(50)), "r.csv"),
    data("too few users after the filter", "u1,i1,5,1\nu2,i2,5,2\n", "r.csv"),
    data("every user alike: too small to split",
         "".join(f"u{u},i{i},5,{i}\n" for u in range(6) for i in range(6)), "too small to split"),
    data("unknown extension", ROWS, "r.xyz", file="r.xyz"),
    data("corrupt gzip", b"\x1f\x8b\x08\x00garbage", "r.csv.gz", file="r.csv.gz"),
    data("corrupt zip", b"PK\x03\x04garbage", "r.zip", file="r.zip"),
    data("parquet that is not parquet", b"PAR1 not really", "r.parquet", file="r.parquet"),
    data("header with no user column", "a,b,c\n1,2,3\n", "r.csv"),
    data("UTF-16 text", (HEADER + ROWS).encode("utf-16"), "cannot be read"),
    data("a FIFO", Fifo(), "is not a regular file"),
    data("a 5-million-digit timestamp, with header", HEADER + ROWS + f"u1,i1,5,{LONG}\n",
         "line 722: 'timestamp' holds 5,000,000 characters; a field holds at most 256"),
    data("a 5-million-digit timestamp, Amazon format", ROWS + f"u1,i1,5,{LONG}\n", "line 721"),
    data("a 5-million-character item id", HEADER + ROWS + f"u1,{LONG},5,1\n",
         "'item' holds 5,000,000 characters"),
    data("a timestamp of 1e23", HEADER + ROWS + "u1,i1,5,1e23\n", "not a time"),
    data("a parquet user column of lists", parquet(user=[[1, 2]] * 3, item=[1, 2, 3]),
         "r.parquet row 1: 'user' holds a ndarray", file="r.parquet"),
    data("a parquet user column of structs", parquet(user=[{"a": 1}] * 3, item=[1, 2, 3]),
         "r.parquet row 1: 'user' holds a dict", file="r.parquet"),
    columns("--columns with an unknown role", "usr=0,item=1", "--columns.usr: unknown key"),
    columns("--columns without item", "user=0", "--columns: give both user and item"),
    columns("--columns mixing positions and names", "user=0,item=asin", "all positions"),
    columns("--columns negative position", "user=-1,item=1", "user: positions count from 0"),
    columns("--columns without =", "user", "expected ROLE=COLUMN"),
    columns("--columns position beyond the file's columns", "user=0,item=9",
            "columns item=9 is beyond the file's 4 columns"),
    columns("--columns name not in the header", "user=reviewerID,item=asin",
            "columns user='reviewerID' is not in the header",
            text="user,item,rating,timestamp\n" + ROWS),
    Case("data files", "MovieLens line malformed",
         ("cell", "--shadow", "ml-1m:itemcf", "--target", "ml-1m:itemcf", "--data-root", "{tmp}",
          "--out", "{tmp}/out"), "line 2",
         files={"ml-1m/ratings.dat": "1::2::5::978300760\nbad line\n"}),
    Case("data files", "MovieLens item id of 1e23",
         ("cell", "--shadow", "ml-1m:itemcf", "--target", "ml-1m:itemcf", "--data-root", "{tmp}",
          "--out", "{tmp}/out"), "line 1",
         files={"ml-1m/ratings.dat": "1::100000000000000000000000::5::978300760\n"}),
    Case("data files", "MovieLens with tabs",
         ("cell", "--shadow", "ml-1m:itemcf", "--target", "ml-1m:itemcf", "--data-root", "{tmp}",
          "--out", "{tmp}/out"), "ratings.dat",
         files={"ml-1m/ratings.dat": "1\t2\t5\t978300760\n"}),
    Case("data files", "MovieLens zip without ratings.dat",
         ("cell", "--shadow", "ml-1m:itemcf", "--target", "ml-1m:itemcf", "--data-root", "{tmp}",
          "--out", "{tmp}/out"), "zip", files={"ml-1m/ml-1m.zip": b"PK\x05\x06" + bytes(18)}),
    Case("data files", "Amazon file with a bad rating",
         ("cell", "--shadow", "amazon-beauty:itemcf", "--target", "amazon-beauty:itemcf",
          "--data-root", "{tmp}", "--out", "{tmp}/out"), "line 1",
         files={"amazon-beauty/ratings_Beauty.csv": "A1,B1,five,1\n"}),
    Case("data files", "data path is a folder",
         ("cell", "--shadow", "{tmp}/folder:itemcf", "--target", "{tmp}/folder:itemcf",
          "--out", "{tmp}/out"), "folder", files={"folder/x.txt": "x"}),
    # --- grid files ---------------------------------------------------------------------------
    Case("grid files", "grid file missing", ("grid", "validate", "{tmp}/none.yaml"), "none.yaml"),
    Case("grid files", "grid file not YAML", VALIDATE, "not valid YAML",
         files={"grid.yaml": "name: [x\n"}),
    Case("grid files", "grid file a list", VALIDATE, "grid.yaml", files={"grid.yaml": "- a\n"}),
    Case("grid files", "grid file empty", VALIDATE, "grid.yaml", files={"grid.yaml": ""}),
    Case("grid files", "grid file with a tab", VALIDATE, "not valid YAML",
         files={"grid.yaml": "name: x\n\tk: 3\n"}),
    Case("grid files", "grid file an alias bomb in name", VALIDATE,
         "stands for more than 100,000 values", files={"grid.yaml": alias_bomb()}),
    Case("grid files", "grid file a recursive alias", VALIDATE,
         "stands for more than 100,000 values", files={"grid.yaml": "name: &a [*a]\n"}),
    Case("grid files", "grid file nested 5,000 deep", VALIDATE, "nested too deeply",
         files={"grid.yaml": "name: " + "[" * 5000 + "]" * 5000 + "\n"}),
    Case("grid files", "grid file with a date 2001-13-45", VALIDATE, "month must be in 1..12",
         files={"grid.yaml": "name: 2001-13-45\n"}),
    Case("grid files", "grid file over 1 MiB", VALIDATE, "holds at most 1,048,576 bytes",
         files={"grid.yaml": "#" * (1 << 20) + "\n"}),
    Case("grid files", "grid file /dev/zero", ("grid", "validate", "/dev/zero"),
         "is not a regular file"),
    Case("grid files", "grid file a FIFO", VALIDATE, "is not a regular file",
         files={"grid.yaml": Fifo()}),
    Case("grid files", "grid file a folder", VALIDATE, "is not a regular file",
         files={"grid.yaml/x": "x"}),
    grid("unknown top-level key", setting("seed", [0]), "seed"),
    grid("no datasets", removed("datasets"), "datasets"),
    grid("no cells", removed("cells"), "cells"),
    grid("no attacks", removed("attacks"), "attacks"),
    grid("datasets empty", setting("datasets", {}), "datasets"),
    grid("attacks empty", setting("attacks", {}), "attacks"),
    grid("unknown dataset key", setting("datasets.syn.filters", {}), "datasets.syn.filters"),
    grid("dataset with name and path", setting("datasets.syn.path", "r.csv"), "exactly one"),
    grid("dataset with neither name nor path", removed("datasets.syn.name"), "exactly one"),
    grid("unknown dataset name", setting("datasets.syn.name", "movielens"), "movielens"),
    grid("dataset path missing", lambda raw: raw["datasets"].update(
        syn={"path": "/nonexistent/r.csv"}), "r.csv"),
    grid_columns("columns with an unknown key", {"usr": 0, "item": 1}, "datasets.syn.columns.usr"),
    grid_columns("columns without item", {"user": 0}, "give both user and item"),
    grid_columns("columns position not an integer", {"user": 0, "item": 1.5}, "columns.item"),
    grid_columns("columns position beyond the file's columns", {"user": 0, "item": 1,
                 "timestamp": 7}, "columns timestamp=7 is beyond the file's 4 columns"),
    grid_columns("columns name not in the header", {"user": "userId", "item": "asin"},
                 "columns item='asin' is not in the header", text="userId,itemId\n1,2\n"),
    grid_data("data file of binary garbage", bytes(range(256)) * 8, "r.csv"),
    grid_data("data file in UTF-16", (HEADER + ROWS).encode("utf-16"), "cannot be read"),
    grid_data("data file with a parquet user column of lists",
              parquet(user=[[1, 2]] * 3, item=[1, 2, 3]), "'user' holds a ndarray",
              file="r.parquet"),
    grid_data("data file with a 5-million-digit timestamp", HEADER + ROWS + f"u1,i1,5,{LONG}\n",
              "line 722"),
    grid_data("data file a FIFO", Fifo(), "is not a regular file"),
    grid("columns on a named dataset", setting("datasets.syn.columns", {"user": 0, "item": 1}),
         "only for a file given by path"),
    grid("split fractions wrong", setting("datasets.syn.split", {"fractions": [0.9, 0.9, 0.9]}),
         "fractions"),
    grid("filter minimum zero", setting("datasets.syn.filter", {"min_user": 0}), "min_user"),
    grid("unknown vector fit", setting("datasets.syn.vectors", {"fit_on": "all"}), "fit_on"),
    grid("vector epochs NaN", setting("datasets.syn.vectors", {"epochs": float("nan")}), "epochs"),
    grid("unknown recommender key", setting("recommenders.lfm.setings", {}), "recommenders.lfm"),
    grid("unknown recommender name", setting("recommenders.lfm.name", "svd"), "svd"),
    grid("bad recommender setting", setting("recommenders.lfm.settings", {"factors": "x"}),
         "factors"),
    grid("recommender factors zero", setting("recommenders.lfm.settings", {"factors": 0}),
         "recommenders.lfm.settings.factors: must be > 0"),
    grid("recommender batch size zero", setting("recommenders.lfm.settings", {"batch_size": 0}),
         "recommenders.lfm.settings.batch_size: must be > 0"),
    grid("recommender negatives -2", setting("recommenders.lfm.settings", {"negatives": -2}),
         "recommenders.lfm.settings.negatives: must be >= 0"),
    grid("attack hidden size huge", setting("attacks.biased.settings", {"hidden": [10**9]}),
         "attacks.biased.settings.hidden: must be <= 4,096"),
    grid("synthetic n_users 1e20", setting("datasets.syn.synthetic.n_users", 10**20),
         "datasets.syn.synthetic.n_users: must be <= 10,000,000"),
    grid("synthetic mean_length 1.0e+12", setting("datasets.syn.synthetic.mean_length", 1e12),
         "datasets.syn.synthetic.mean_length"),
    grid("search storage_path relative", setting("attacks.dlmia.search.storage_path", "tune"),
         "storage_path: 'tune' is relative"),
    grid("seeds negative", setting("seeds", [0, -1]), "seeds: expected"),
    grid("num_cpus beyond this machine (a local run)",
         setting("recommenders.lfm.resources", {"num_cpus": 4096}),
         "recommenders.lfm.resources.num_cpus: 4096 is more than this machine's", argv=RUN),
    grid("recommender setting infinite",
         setting("recommenders.lfm.settings", {"lr": float("inf")}), "finite"),
    grid("negative CPUs", setting("recommenders.lfm.resources", {"num_cpus": -1}), "num_cpus"),
    grid("unknown resource", setting("recommenders.lfm.resources", {"memory": 4}), "memory"),
    grid("cell with an unknown side", setting("cells", [{"shadow": "syn.svd",
                                                         "target": "syn.lfm"}]), "syn.svd"),
    grid("cell side without recommender", setting("cells", [{"shadow": "syn",
                                                             "target": "syn.lfm"}]), "syn"),
    grid("cells of an unknown form", setting("cells", "everything"), "cells"),
    grid("product without target", removed("cells.product.target"), "target"),
    grid("unknown attack", setting("attacks.mia", {}), "mia"),
    grid("unknown attack key", setting("attacks.biased.setting", {}), "attacks.biased"),
    grid("bad attack setting", setting("attacks.biased.settings", {"lr": "fast"}), "lr"),
    grid("attack setting NaN", setting("attacks.biased.settings", {"lr": float("nan")}),
         "finite"),
    grid("search on biased", setting("attacks.biased.search", {"num_samples": 2}),
         "biased declares no search space; searchable: dlmia, reference"),
    grid("search trials zero", setting("attacks.dlmia.search.num_samples", 0), "num_samples"),
    grid("search unknown key", setting("attacks.dlmia.search.trials", 3), "trials"),
    grid("search unknown sampler", setting("attacks.dlmia.search.sampler", "grid"), "sampler"),
    grid("search budget negative", setting("attacks.dlmia.search.time_budget_s", -5),
         "time_budget_s"),
    grid("search reduction factor 1", setting("attacks.dlmia.search.reduction_factor", 1),
         "reduction_factor"),
    grid("space: unknown setting", space({"choice": [1]}, "tua"), "tua"),
    grid("space: tau out of range", space({"uniform": [0, 2]}), "tau"),
    grid("space: latent size negative", space({"choice": [-4]}, "latent_inv"), "latent_inv"),
    grid("space: string bounds", space({"uniform": ["low", "high"]}), "finite numbers"),
    grid("space: mixed bounds", space({"uniform": ["low", 0.9]}), "finite numbers"),
    grid("space: infinite bound", space({"loguniform": [1e-4, float("inf")]}, "lr"), "finite"),
    grid("space: loguniform from 0", space({"loguniform": [0, 1]}, "lr"), "0 < low"),
    grid("space: low above high", space({"uniform": [0.9, 0.6]}), "low < high"),
    grid("space: randint of floats", space({"randint": [1.5, 4]}, "period"), "integers"),
    grid("space: unknown kind", space({"normal": [0, 1]}), "expected one of"),
    grid("space: two kinds", space({"uniform": [0.6, 0.9], "choice": [0.7]}), "expected one of"),
    grid("space: empty choice", space({"choice": []}), "expected a list"),
    grid("space: range of three", space({"uniform": [0.6, 0.7, 0.8]}), "expected a list"),
    grid("space: bad choice value", space({"choice": ["off", "sometimes"]}, "norm_feature"),
         "norm_feature"),
    grid("k zero", setting("k", 0), "k"),
    grid("k not an integer", setting("k", "ten"), "k"),
    grid("unknown non-member policy", setting("nonmember_lists", "random"), "random"),
    grid("policy list with an unknown one", setting("nonmember_lists", ["popular", "x"]), "x"),
    grid("unknown centre", setting("center", "mean"), "mean"),
    grid("seeds not integers", setting("seeds", ["zero"]), "seeds"),
    grid("seeds empty", setting("seeds", []), "seeds"),
    grid("runtime unknown key", setting("runtime.retries", 2), "runtime.retries"),
    grid("runtime device bogus", setting("runtime.device", "bogus"), "runtime.device"),
    grid("runtime device a GPU name", setting("runtime.device", "cuda:0"), "runtime.device"),
    grid("runtime retries negative", setting("runtime.max_retries", -1), "runtime"),
    grid("runtime workers negative", setting("runtime.side_workers", -2), "runtime"),
    grid("name not a string", setting("name", ["a"]), "name"),
    grid("name with a slash", setting("name", "../escape"), "name"),
    grid("name ending in a newline", setting("name", "faults\n"), "name"),
    grid("name 100,000 characters long", setting("name", "x" * 100_000 + "/"), "name"),
    grid("more than 10,000 cells without --yes", setting("seeds", list(range(2600))),
         "--yes", argv=("grid", "run", "{grid}", "--out", "{tmp}/out")),
    grid("160,000 cells without --yes", setting("seeds", list(range(20_000))),
         "160,000 cells (more than 10,000)", argv=("grid", "run", "{grid}", "--out", "{tmp}/out")),
    grid("--max-retries negative", lambda raw: None, "--max-retries",
         argv=("grid", "run", "{grid}", "--max-retries", "-1", "--out", "{tmp}/out")),
    grid("grid --out is a file", lambda raw: None, "is a file",
         argv=("grid", "run", "{grid}", "--out", "{tmp}/grid.yaml")),
    grid("grid --cache is a file", lambda raw: None, "--cache",
         argv=("grid", "run", "{grid}", "--cache", "{tmp}/grid.yaml", "--out", "{tmp}/out")),
    grid("grid --data-root missing", lambda raw: None, "--data-root",
         argv=("grid", "validate", "{grid}", "--data-root", "{tmp}/nowhere")),
    grid("grid unknown --vectors-fit-on", lambda raw: None, "invalid choice",
         argv=("grid", "validate", "{grid}", "--vectors-fit-on", "x")),
    grid("--address not a Ray address", lambda raw: None, "--address 'garbage': not a Ray",
         argv=(*RUN, "--address", "garbage")),
    grid("--address with a port that is no number", lambda raw: None, "not a Ray address",
         argv=(*RUN, "--address", "ray://127.0.0.1:port")),
    grid("--address where nothing listens", lambda raw: None,
         "nothing answers at 127.0.0.1:1", argv=(*RUN, "--address", "ray://127.0.0.1:1")),
    Case("grid files", "RAY_ADDRESS=garbage", RUN, "RAY_ADDRESS 'garbage': not a Ray address",
         grid=lambda raw: None, env={"RAY_ADDRESS": "garbage"}),
    # --- output folders -----------------------------------------------------------------------
    output("cell: lock planted as a link to a file", CELL, ".dlmia.lock is a symbolic link",
           {**VICTIM, "out/.dlmia.lock": Link("{tmp}/victim.txt")}),
    output("cell: lock planted as a link to nowhere", CELL, ".dlmia.lock is a symbolic link",
           {"out/.dlmia.lock": Link("{tmp}/created-by-the-run")}),
    output("cell: lock is a folder", CELL, ".dlmia.lock is a folder",
           {"out/.dlmia.lock/x": "x"}),
    output("cell: lock is a FIFO", CELL, ".dlmia.lock is a FIFO", {"out/.dlmia.lock": Fifo()}),
    output("grid: lock planted as a link to a file", RUN, ".dlmia.lock is a symbolic link",
           {**VICTIM, "out/.dlmia.lock": Link("{tmp}/victim.txt")}, lambda raw: None),
    output("grid: optuna.log planted as a link", RUN, "optuna.log is a symbolic link",
           {**VICTIM, "out/optuna.log": Link("{tmp}/victim.txt")}, lambda raw: None),
    output("grid: optuna.log is a FIFO", RUN, "optuna.log is a FIFO",
           {"out/optuna.log": Fifo()}, lambda raw: None),
    output("grid: grid.yaml is a folder", RUN, "grid.yaml (Is a directory)",
           {"out/grid.yaml/x": "x"}, lambda raw: None),
    output("grid: results/ planted as a link", RUN, "results is a symbolic link",
           {"elsewhere/x": "x", "out/results": Link("{tmp}/elsewhere")}, lambda raw: None),
    output("grid: tune/ planted as a link", RUN, "tune is a symbolic link",
           {"elsewhere/x": "x", "out/tune": Link("{tmp}/elsewhere")}, lambda raw: None),
    output("cell: --out a dangling link", (*CELL, "--out", "{tmp}/dangling"),
           "which does not exist", {"dangling": Link("{tmp}/nowhere")}),
    output("grid: --out a dangling link", ("grid", "run", "{grid}", "--out", "{tmp}/dangling"),
           "which does not exist", {"dangling": Link("{tmp}/nowhere")}, lambda raw: None),
    output("grid: --cache a dangling link", (*RUN, "--cache", "{tmp}/dangling"),
           "--cache", {"dangling": Link("{tmp}/nowhere")}, lambda raw: None),
    output("fetch: --to a dangling link", ("data", "fetch", "ml-1m", "--to", "{tmp}/dangling"),
           "which does not exist", {"dangling": Link("{tmp}/nowhere")}),
    # --- other commands -----------------------------------------------------------------------
    Case("other commands", "fetch an unknown dataset", ("data", "fetch", "ml-2m", "--to", "{tmp}"),
         "invalid choice"),
    Case("other commands", "fetch --to a file",
         ("data", "fetch", "ml-1m", "--to", "{tmp}/file.txt"), "is a file",
         files={"file.txt": "x"}),
    Case("other commands", "fetch --to an unwritable place",
         ("data", "fetch", "ml-1m", "--to", "/proc/dlmia-data"), "cannot write"),
    Case("other commands", "analyze a missing folder", ("analyze", "{tmp}/none"),
         "does not exist"),
    Case("other commands", "analyze an empty folder", ("analyze", "{tmp}"), "no results"),
    Case("other commands", "analyze a file", ("analyze", "{tmp}/file.txt"), "does not exist",
         files={"file.txt": "x"}),
    Case("other commands", "analyze a result whose seed is a string", ("analyze", "{tmp}"),
         "result.parquet holds a value of the wrong type",
         files={"result.parquet": result(seed="zero")}),
    Case("other commands", "analyze a result whose roc_auc is a list", ("analyze", "{tmp}"),
         "result.parquet holds a value of the wrong type",
         files={"result.parquet": result(roc_auc=[0.5, 0.6])}),
    Case("other commands", "analyze where analysis/ cannot be made", ("analyze", "{tmp}"),
         "cannot write", files={"result.parquet": result(), "analysis": "a file"}),
)


def prepare(case: Case, tmp: Path) -> list[str]:
    """Plant the case's files (and grid) under `tmp`; its command line, placeholders filled."""
    for name, content in case.files.items():
        path = tmp / name
        path.parent.mkdir(parents=True, exist_ok=True)
        if isinstance(content, Link):
            path.symlink_to(content.target.replace("{tmp}", str(tmp)))
        elif isinstance(content, Fifo):
            os.mkfifo(path)
        else:
            path.write_bytes(content if isinstance(content, bytes) else content.encode())
    text = case.grid_text()
    if text is not None:
        (tmp / "grid.yaml").write_text(text)
    grid = str(tmp / "grid.yaml")
    return [arg.replace("{tmp}", str(tmp)).replace("{grid}", grid) for arg in case.argv]


def outcome(argv: list[str], env: dict[str, str] | None = None) -> int:
    """`dlmia -q ARGV` in-process, with `env` set; its exit code (argparse's own exits
    included)."""
    from dlmia.cli import main

    with environment(env or {}):
        try:
            return main(["-q", *argv])
        except SystemExit as exc:
            return int(exc.code or 0)


@contextlib.contextmanager
def environment(values: dict[str, str]) -> Iterator[None]:
    """`os.environ` with `values` set, restored afterwards."""
    saved = {name: os.environ.get(name) for name in values}
    os.environ.update(values)
    try:
        yield
    finally:
        for name, value in saved.items():
            if value is None:
                del os.environ[name]
            else:
                os.environ[name] = value
