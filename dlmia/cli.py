"""The `dlmia` command line: one cell, data fetching (and, from the tune package, grids).

Every user error ends as one line on stderr and exit code 2; the last line on stdout of
`dlmia cell` is one JSON object with the metrics.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

from dlmia import config as cfg
from dlmia.attacks import ATTACKS
from dlmia.cell import CellConfig, ListOptions, SideChoice, run_cell
from dlmia.cell import cell_config as build_cell_config
from dlmia.device import resolve_device
from dlmia.errors import ConfigError, DlmiaError
from dlmia.io import check_writable
from dlmia.lock import FolderLock
from dlmia.recommenders import RECOMMENDERS
from dlmia.nonmember import POLICIES
from dlmia.sides import DatasetSpec
from dlmia.vectors import CENTERS, VECTOR_FIT_ON

log = logging.getLogger("dlmia")


def parse_side(text: str, option: str) -> tuple[str, str]:
    """Split `DATASET:RECOMMENDER` (the dataset may be a path) and check the recommender name."""
    dataset, sep, recommender = text.rpartition(":")
    if not sep or not dataset or not recommender:
        raise ConfigError(f"{option} {text!r}: expected DATASET:RECOMMENDER, e.g. ml-1m:lfm")
    if recommender not in RECOMMENDERS:
        known = ", ".join(sorted(RECOMMENDERS))
        raise ConfigError(f"{option} {text!r}: unknown recommender {recommender!r}; known: {known}")
    return dataset, recommender


def data_root_option(value: str | None) -> str:
    """`--data-root` as an absolute path ("" when not given); a folder that does not exist is
    refused (a typo would otherwise surface as "dataset not found" only for named datasets)."""
    if not value:
        return ""
    if not Path(value).is_dir():
        raise ConfigError(f"--data-root {value}: no such folder")
    return str(Path(value).resolve())


def cell_config(args: argparse.Namespace) -> CellConfig:
    """The typed cell configuration the `cell` command's options describe."""
    if args.attack not in ATTACKS:
        raise ConfigError(f"--attack {args.attack!r}: unknown attack; known: {', '.join(sorted(ATTACKS))}")
    if args.k < 1:
        raise ConfigError(f"--k {args.k}: must be a positive list length")
    resolve_device(args.device)  # this machine runs the cell: a CUDA device must be here
    dataset_settings = cfg.parse_assignments(args.dataset_set, "--dataset-set")
    for key in ("name", "data_root"):
        if key in dataset_settings:
            raise ConfigError(f"--dataset-set {key}: give the dataset in --shadow/--target and --data-root")
    choices = {}
    for role in ("shadow", "target"):
        dataset, recommender = parse_side(getattr(args, role), f"--{role}")
        data = cfg.build(
            DatasetSpec,
            {
                **dataset_settings,
                "name": dataset,
                "data_root": data_root_option(args.data_root),
            },
            where="--dataset-set",
        )
        vectors = {"device": args.device}
        if args.vectors_fit_on:
            vectors["fit_on"] = args.vectors_fit_on
        data = cfg.replace(data, {"vectors": cfg.replace(data.vectors, vectors)})
        settings = cfg.parse_assignments(getattr(args, f"{role}_set"), f"--{role}-set")
        choices[role] = SideChoice(data, recommender, settings)
    options = ListOptions(
        k=args.k,
        nonmember_lists=args.nonmember_lists,
        center=args.center,
        exclude_seen=args.exclude_seen,
    )
    return build_cell_config(
        choices["shadow"],
        choices["target"],
        args.attack,
        cfg.parse_assignments(args.set),
        options,
        seed=args.seed,
        device=args.device,
    )


def command_cell(args: argparse.Namespace) -> int:
    """Run one cell and print its metrics; with --out, write the result row and per-user scores."""
    from dlmia.results import result_row, write_cell

    import torch

    torch.set_num_threads(max(1, args.threads))
    config = cell_config(args)
    if args.out:
        check_writable(args.out, "--out")
    with FolderLock(args.out) if args.out else contextlib.nullcontext():  # one writer per --out
        result = run_cell(config)
        row = result_row(config, result)
        if args.out:
            for path in write_cell(args.out, row, result):
                log.info("wrote %s", path)
    summary: dict[str, Any] = {
        **{k: v for k, v in row.items() if k not in ("config", "details", "attack_settings")},
        "attack_settings": json.loads(row["attack_settings"]),
        "stage_seconds": {
            key: value for key, value in result.info["attack"].items() if key.endswith("seconds")
        },
    }
    print(json.dumps(summary, default=str))
    return 0


def command_fetch(args: argparse.Namespace) -> int:
    """Download a public dataset into a folder (the only command that uses the network)."""
    from dlmia.data.fetch import fetch

    check_writable(args.to, "--to")
    path = fetch(args.name, args.to, progress=sys.stderr.isatty(), sha256=args.sha256)
    print(path)
    return 0


def command_analyze(args: argparse.Namespace) -> int:
    """Print the per-cell table of a results folder and write its heatmaps, tables and ROC curves."""
    from analysis.cli import run

    return run(args)


def command_grid_run(args: argparse.Namespace) -> int:
    """Run a grid file on Ray (tune.cli; imported here so `import dlmia.cli` never imports Ray)."""
    from tune.cli import grid_run

    return grid_run(
        args.file,
        address=args.address,
        data_root=data_root_option(args.data_root) or None,
        out=args.out,
        cache=args.cache,
        max_retries=args.max_retries,
        quiet=args.quiet,
        vectors_fit_on=args.vectors_fit_on,
        no_search=args.no_search,
        yes=args.yes,
    )


def command_grid_validate(args: argparse.Namespace) -> int:
    """Validate a grid file and print what it would run."""
    from tune.cli import grid_validate

    return grid_validate(
        args.file,
        data_root=data_root_option(args.data_root) or None,
        vectors_fit_on=args.vectors_fit_on,
        no_search=args.no_search,
    )


def add_grid_commands(commands: argparse._SubParsersAction) -> None:  # type: ignore[type-arg]
    """`dlmia grid run FILE` and `dlmia grid validate FILE`."""
    grid = commands.add_parser("grid", help="run or validate a grid of cells on Ray")
    actions = grid.add_subparsers(dest="grid_command", required=True)
    run = actions.add_parser("run", help="run every unfinished cell of a grid file (resumes)")
    run.add_argument("file", help="grid file, e.g. grids/demo.yaml")
    run.add_argument("--address", help="Ray cluster: auto or ray://HOST:10001 (default: a local Ray)")
    run.add_argument("--data-root", help="folder dataset names resolve under (default: $DLMIA_DATA_ROOT or ./data)")
    run.add_argument("--out", help="output folder (default: out/<grid name>)")
    run.add_argument("--cache", help="side cache folder, may be shared between grids (default: OUT/sides)")
    run.add_argument("--max-retries", type=int, help="retries of a failing side or cell (default: the grid's)")
    run.add_argument("--yes", action="store_true", help="run a grid of more than 10,000 cells")
    run.set_defaults(run=command_grid_run)
    validate = actions.add_parser("validate", help="check a grid file and print what it would run")
    validate.add_argument("file", help="grid file")
    validate.add_argument("--data-root", help="folder dataset names resolve under")
    validate.set_defaults(run=command_grid_validate)
    for parser in (run, validate):
        parser.add_argument(
            "--vectors-fit-on", choices=VECTOR_FIT_ON,
            help="set every dataset's vectors.fit_on (the grid's name gets -<value>)",
        )
        parser.add_argument(
            "--no-search", action="store_true",
            help="run DL-MIA once per cell with its fixed settings (the grid's name gets -fixed)",
        )


class Parser(argparse.ArgumentParser):
    """argparse with the project's error form: one `dlmia: error:` line (with the command it
    concerns and a pointer to --help), exit code 2."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"dlmia: error: {self.prog}: {message} (see {self.prog} --help)\n")


def build_parser() -> argparse.ArgumentParser:
    parser = Parser(prog="dlmia", description=__doc__.splitlines()[0])
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings on stderr")
    commands = parser.add_subparsers(dest="command", required=True)

    cell = commands.add_parser("cell", help="attack one (shadow, target) pair and print metrics")
    cell.add_argument("--shadow", required=True, help="DATASET:RECOMMENDER, e.g. ml-1m:lfm")
    cell.add_argument("--target", required=True, help="DATASET:RECOMMENDER, e.g. ml-1m:itemcf")
    cell.add_argument(
        "--attack", default="biased",
        help="biased, dlmia, or a training-free baseline: norm, list-frequency",
    )
    cell.add_argument("--data-root", help="folder dataset names resolve under (default: $DLMIA_DATA_ROOT or ./data)")
    cell.add_argument(
        "--seed", type=int, default=0,
        help="re-samples everything random: user split, item vectors, members, models, attack",
    )
    cell.add_argument("--nonmember-lists", default="popular", choices=POLICIES)
    cell.add_argument(
        "--vectors-fit-on", choices=VECTOR_FIT_ON,
        help="histories the item vectors train on: the vectorization part (default: the "
        "paper's) or every user's (the adversary holds them; no labels)",
    )
    cell.add_argument(
        "--dataset-set", action="append", metavar="KEY=VALUE",
        help="dataset setting of both sides, as in a grid's datasets entry (repeatable), e.g. "
        "split={fractions: [0.5, 0.25, 0.25]} or filter={min_user: 10, min_item: 5}",
    )
    cell.add_argument("--k", type=int, default=100, help="length of the top-k lists")
    cell.add_argument("--center", default="uniform", choices=CENTERS)
    cell.add_argument("--exclude-seen", action="store_true", help="drop seen items from member lists")
    cell.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    cell.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads (default 1: these models are small, and on a busy CPU more threads "
        "spin and slow every step down)",
    )
    cell.add_argument("--set", action="append", metavar="KEY=VALUE", help="attack setting (repeatable)")
    cell.add_argument("--shadow-set", action="append", metavar="KEY=VALUE", help="shadow recommender setting")
    cell.add_argument("--target-set", action="append", metavar="KEY=VALUE", help="target recommender setting")
    cell.add_argument("--out", help="folder for result.parquet and scores.parquet")
    cell.set_defaults(run=command_cell)

    data = commands.add_parser("data", help="dataset utilities").add_subparsers(dest="data_command", required=True)
    fetch = data.add_parser("fetch", help="download ml-1m, amazon-beauty or amazon-digital-music")
    fetch.add_argument("name", choices=["ml-1m", "amazon-beauty", "amazon-digital-music"])
    fetch.add_argument("--to", required=True, help="destination folder (a data root)")
    fetch.add_argument("--sha256", help="the SHA-256 the file must have (pins an unpinned one)")
    fetch.set_defaults(run=command_fetch)
    add_grid_commands(commands)

    analyze = commands.add_parser("analyze", help="tables, heatmaps and ROC curves of a results folder")
    analyze.add_argument("out_dir", metavar="OUT_DIR", help="the --out folder of a grid or cell run")
    analyze.add_argument("--roc", nargs="+", metavar="CELL_ID", help="cell ids (or patterns) to draw ROC curves of")
    analyze.set_defaults(run=command_analyze)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dlmia` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args))
    except DlmiaError as exc:
        print(f"dlmia: error: {' '.join(str(exc).split())}", file=sys.stderr)  # one line
        return 2
    except KeyboardInterrupt:
        print("dlmia: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
