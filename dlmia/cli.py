"""The `dlmia` command line: one cell, data fetching (and, from the tune package, grids).

Every user error ends as one line on stderr and exit code 2; the last line on stdout of
`dlmia cell` is one JSON object with the metrics. Ctrl-C ends with exit code 130, SIGTERM with
143, both after the run has released its output folder and its Ray (a rerun resumes).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any, NoReturn

import dlmia
from dlmia import config as cfg
from dlmia.attacks import ATTACKS
from dlmia.audit import ATTACKS as AUDIT_ATTACKS
from dlmia.audit import AuditConfig
from dlmia.cell import CellConfig, ListOptions, SideChoice, run_cell
from dlmia.cell import cell_config as build_cell_config
from dlmia.data.fetch import REMOTE_FILES
from dlmia.data.loaders import Columns
from dlmia.data.sources import name_or_path
from dlmia.device import resolve_device
from dlmia.errors import ConfigError, DlmiaError, printable
from dlmia.io import check_writable
from dlmia.lock import FolderLock
from dlmia.nonmember import POLICIES
from dlmia.recommenders import CLASS_PATH, recommender_class
from dlmia.sides import DatasetSpec
from dlmia.signals import raise_on_sigterm, terminated
from dlmia.vectors import CENTERS, VECTOR_FIT_ON

log = logging.getLogger("dlmia")


def parse_side(text: str, option: str) -> tuple[str, str]:
    """Split `DATASET:RECOMMENDER` (the dataset may be a path; the recommender a registry name
    or `module:Class`) and check the recommender."""
    dataset, sep, recommender = text.rpartition(":")
    head, _, module = dataset.rpartition(":")
    if head and CLASS_PATH.fullmatch(f"{module}:{recommender}"):  # DATASET:module:Class
        dataset, recommender = head, f"{module}:{recommender}"
    if not sep or not dataset or not recommender:
        raise ConfigError(f"{option} {text!r}: expected DATASET:RECOMMENDER, e.g. ml-1m:lfm")
    try:
        recommender_class(recommender)
    except ConfigError as exc:
        raise ConfigError(f"{option} {text!r}: {exc}") from None
    return dataset, recommender


def data_root_option(value: str | None) -> str:
    """`--data-root` as an absolute path ("" when not given); a folder that does not exist is
    refused (a typo would otherwise surface as "dataset not found" only for named datasets)."""
    if not value:
        return ""
    if not Path(value).is_dir():
        raise ConfigError(f"--data-root {value}: no such folder")
    return str(Path(value).resolve())


def columns_option(text: str | None) -> Columns | None:
    """`--columns user=0,item=1,timestamp=3` (positions, for a file without header) or
    `user=reviewerID,item=asin` (header names); None when not given."""
    if not text:
        return None
    values: dict[str, int | str] = {}
    for assignment in text.split(","):
        key, sep, value = (part.strip() for part in assignment.partition("="))
        if not sep or not key or not value:
            raise ConfigError(f"--columns {text!r}: expected ROLE=COLUMN,..., e.g. user=0,item=1")
        values[key] = int(value) if value.lstrip("-").isdigit() else value
    return cfg.build(Columns, values, where="--columns")


def cell_config(args: argparse.Namespace) -> CellConfig:
    """The typed cell configuration the `cell` command's options describe."""
    if args.attack not in ATTACKS:
        known = ", ".join(sorted(ATTACKS))
        raise ConfigError(f"--attack {args.attack!r}: unknown attack; known: {known}")
    if args.k < 1:
        raise ConfigError(f"--k {args.k}: must be a positive list length")
    if args.pooled is not None and args.pooled < 3:
        raise ConfigError(f"--pooled {args.pooled}: a pooled evaluation needs at least 3 models")
    check_machine(args)
    sides = {role: parse_side(getattr(args, role), f"--{role}") for role in ("shadow", "target")}
    sources = {role: name_or_path(dataset) for role, (dataset, _) in sides.items()}
    if args.columns and not any("path" in source for source in sources.values()):
        raise ConfigError("--columns: applies to a data file, and --shadow and --target name "
                          "known datasets (which have their own columns)")
    choices = {}
    for role, (dataset, recommender) in sides.items():
        settings = cfg.parse_assignments(getattr(args, f"{role}_set"), f"--{role}-set")
        choices[role] = SideChoice(dataset_option(dataset, args), recommender, settings)
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


def check_machine(args: argparse.Namespace) -> None:
    """Refuse --threads beyond this machine and a --device it does not have."""
    cpus = os.cpu_count() or 1
    if not 1 <= args.threads <= cpus:  # libtorch crashes far above the machine's CPUs
        raise ConfigError(f"--threads {args.threads}: use 1 to {cpus} (this machine's CPUs)")
    resolve_device(args.device)  # this machine runs the cell: a CUDA device must be here


def dataset_option(dataset: str, args: argparse.Namespace) -> DatasetSpec:
    """The dataset `dataset` (a known name or a file's path) names, with --dataset-set,
    --columns (for a file), --data-root, --device and --vectors-fit-on applied."""
    settings = cfg.parse_assignments(args.dataset_set, "--dataset-set")
    for key in ("name", "path", "data_root", "columns"):
        if key in settings:
            raise ConfigError(
                f"--dataset-set {key}: give the dataset by name or path, --data-root and "
                "--columns"
            )
    source = name_or_path(dataset)
    columns = columns_option(args.columns)
    extra = {"columns": columns} if columns is not None and "path" in source else {}
    data = cfg.build(
        DatasetSpec,
        {**settings, **source, **extra, "data_root": data_root_option(args.data_root)},
        where="--dataset-set",
    )
    vectors = {"device": args.device}
    if args.vectors_fit_on:
        vectors["fit_on"] = args.vectors_fit_on
    return cfg.replace(data, {"vectors": cfg.replace(data.vectors, vectors)})


def command_cell(args: argparse.Namespace) -> int:
    """Run one cell and print its metrics; with --out, write the result row and per-user scores."""
    import torch

    from dlmia.pooled import pooled_evaluation
    from dlmia.results import result_row, write_cell

    config = cell_config(args)
    torch.set_num_threads(args.threads)
    if args.out:
        check_writable(args.out, "--out")
    with FolderLock(args.out) if args.out else contextlib.nullcontext():  # one writer per --out
        result = pooled_evaluation(config, args.pooled) if args.pooled else run_cell(config)
        row = result_row(config, result)
        if args.out:
            for path in write_cell(args.out, row, result):
                log.info("wrote %s", path)
    summary: dict[str, Any] = {
        **{k: v for k, v in row.items() if k not in ("config", "details", "attack_settings")},
        "attack_settings": json.loads(row["attack_settings"]),
        "stage_seconds": {
            key: value for key, value in result.attack.items() if key.endswith("seconds")
        },
    }
    print(json.dumps(summary, default=str))
    return 0


def audit_config(args: argparse.Namespace) -> AuditConfig:
    """The typed audit configuration the `audit` command's options describe."""
    check_machine(args)
    unknown = [attack for attack in args.attack or () if attack not in ATTACKS]
    if unknown:
        known = ", ".join(sorted(ATTACKS))
        raise ConfigError(f"--attack {unknown[0]!r}: unknown attack; known: {known}")
    recommender_class(args.shadow)  # a bad name or class fails here, in one line
    settings: dict[str, dict[str, Any]] = {}
    for key, value in cfg.parse_assignments(args.set).items():
        attack, dot, name = key.partition(".")
        if not dot or not name:
            raise ConfigError(f"--set {key}: expected ATTACK.KEY=VALUE, e.g. biased.epochs=10")
        settings.setdefault(attack, {})[name] = value
    return cfg.build(AuditConfig, {
        "interactions": dataset_option(args.interactions, args),
        "lists": args.lists,
        "members": args.members or "",
        "shadow": args.shadow,
        "shadow_settings": cfg.parse_assignments(args.shadow_set, "--shadow-set"),
        "attacks": tuple(args.attack or AUDIT_ATTACKS),
        "attack_settings": settings,
        "nonmember_lists": args.nonmember_lists,
        "seed": args.seed,
        "device": args.device,
    }, where="audit")  # fmt: skip


def command_audit(args: argparse.Namespace) -> int:
    """Audit served lists with every attack; write scores, metrics (with labels) and the
    report under --out; print the attacks' table."""
    import torch

    from dlmia.audit import done_attacks, run_audit, write_audit

    config = audit_config(args)
    torch.set_num_threads(args.threads)
    check_writable(args.out, "--out")
    with FolderLock(args.out):
        done = done_attacks(args.out, config)
        if len(done) == len(config.attacks):
            log.info("every attack of this audit is done in %s; delete its files to redo it",
                     args.out)  # fmt: skip
        else:
            result = run_audit(config, done=done)
            for path in write_audit(args.out, result):
                log.info("wrote %s", path)
        report = write_audit_report(args.out)
    print(report)
    return 0


def write_audit_report(out: str) -> str:
    """The audit's HTML report (analysis.html) and a table of its attacks, as text."""
    from analysis.html import audit_table, write_html

    path = write_html(out)
    return f"{audit_table(out)}\n\nreport: {path}"


def command_fetch(args: argparse.Namespace) -> int:
    """Download a public dataset into a folder (the only command that uses the network)."""
    from dlmia.data.fetch import fetch

    check_writable(args.to, "--to")
    path = fetch(args.name, args.to, progress=sys.stderr.isatty(), sha256=args.sha256)
    print(path)
    return 0


def command_analyze(args: argparse.Namespace) -> int:
    """Print the per-cell table of a results folder; write its heatmaps, tables, ROC curves."""
    from analysis.cli import run

    return run(args)


def command_grid_run(args: argparse.Namespace) -> int:
    """Run a grid file on Ray (tune.cli; imported here so `import dlmia.cli` never imports Ray),
    then print its report."""
    from tune.cli import grid_run

    summary = grid_run(
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
    report(summary.out)
    return summary.exit_code


def report(out: Path) -> None:
    """Print the analysis report of a finished grid run (its table, the searched cells' picks,
    the files written). A report that fails only warns: the results are on disk, and
    `dlmia analyze OUT` draws it again."""
    from analysis.report import summarize

    try:
        summarize(out)
    except Exception as exc:  # noqa: BLE001 (a report problem must not hide the grid's results)
        log.warning("the analysis report failed (%s); `dlmia analyze %s` retries it", exc, out)


def command_grid_validate(args: argparse.Namespace) -> int:
    """Validate a grid file and print what it would run."""
    from tune.cli import grid_validate

    return grid_validate(
        args.file,
        data_root=data_root_option(args.data_root) or None,
        vectors_fit_on=args.vectors_fit_on,
        no_search=args.no_search,
    )


def command_grid_show(args: argparse.Namespace) -> int:
    """Print a packaged grid (to copy and edit), or list them when no name is given."""
    from tune.grid import locate_grid, packaged_grids

    if args.name is None:
        for name, path in packaged_grids().items():
            print(f"{name:<20} {path}")
        return 0
    sys.stdout.write(locate_grid(args.name).read_text())
    return 0


class HelpFormatter(argparse.RawDescriptionHelpFormatter):
    """Help that shows each option's default (where it has one its help does not already say)
    and keeps the examples' line breaks."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        text = action.help or ""
        unset = any(action.default is value for value in (None, False, argparse.SUPPRESS))
        if unset or action.default == [] or "default" in text:
            return text
        return f"{text} (default: %(default)s)"


class Parser(argparse.ArgumentParser):
    """argparse with the project's error form: one `dlmia: error:` line (with the command it
    concerns and a pointer to --help), exit code 2; every (sub)command shows defaults and takes
    -q/--quiet wherever it stands."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        kwargs.setdefault("formatter_class", HelpFormatter)
        super().__init__(*args, **kwargs)

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"dlmia: error: {self.prog}: {message} (see {self.prog} --help)\n")


GRID_FILE_HELP = "a grid file, or the name of a packaged grid (`dlmia grid show` lists them)"
DATA_ROOT_HELP = "folder dataset names resolve under (default: $DLMIA_DATA_ROOT or ./data)"


def examples(*lines: str) -> str:
    """An epilog of example command lines."""
    return "examples:\n" + "\n".join(f"  {line}" for line in lines)


#: -q/--quiet after a subcommand; SUPPRESS keeps the top-level value when it is not given there.
QUIET = Parser(add_help=False)
QUIET.add_argument("-q", "--quiet", action="store_true", default=argparse.SUPPRESS,
                   help="only warnings on stderr")  # fmt: skip


def subcommand(commands: Any, name: str, summary: str, epilog: str) -> argparse.ArgumentParser:
    """A subcommand parser with the shared options, its help line as description, examples."""
    parser: argparse.ArgumentParser = commands.add_parser(
        name, help=summary, description=summary, epilog=epilog, parents=[QUIET]
    )
    return parser


def add_cell_command(commands: Any) -> None:
    """`dlmia cell`: one (shadow, target) pair, attacked once."""
    cell = subcommand(
        commands, "cell", "attack one (shadow, target) pair and print its metrics",
        examples(
            "dlmia cell --shadow ml-1m:lfm --target ml-1m:itemcf --data-root data",
            "dlmia cell --shadow ml-1m:lfm --target amazon-digital-music:itemcf --attack dlmia "
            "--vectors-fit-on all-histories --data-root data --out out/one",
            "dlmia cell --shadow ml-100k/u.data:itemcf --target ml-100k/u.data:lfm --attack norm",
            "dlmia cell --shadow ratings.csv:lfm --target ratings.csv:ncf "
            "--columns user=reviewerID,item=asin",
            "dlmia cell --shadow ml-1m:lfm --target ml-1m:lfm --attack reference "
            "--nonmember-lists model --set variant=online --data-root data",
        ),
    )  # fmt: skip
    cell.add_argument(
        "--shadow", required=True,
        help="DATASET:RECOMMENDER, e.g. ml-1m:lfm; RECOMMENDER may be your module:Class",
    )  # fmt: skip
    cell.add_argument("--target", required=True, help="DATASET:RECOMMENDER, e.g. ml-1m:itemcf")
    cell.add_argument(
        "--attack", default="biased",
        help="biased, dlmia, reference (a list statistic calibrated per user against reference "
        "recommenders of the shadow's kind), or a training-free baseline: norm, list-frequency",
    )  # fmt: skip
    cell.add_argument("--nonmember-lists", default="popular", choices=POLICIES,
                      help="how non-members get their top-k lists")  # fmt: skip
    cell.add_argument("--k", type=int, default=100, help="length of the top-k lists")
    cell.add_argument("--center", default="uniform", choices=CENTERS,
                      help="recommendation centre of the difference vector")  # fmt: skip
    cell.add_argument("--exclude-seen", action="store_true",
                      help="drop seen items from member lists")  # fmt: skip
    for flag, what in (("--set", "attack"), ("--shadow-set", "shadow recommender"),
                       ("--target-set", "target recommender")):  # fmt: skip
        cell.add_argument(flag, action="append", metavar="KEY=VALUE",
                          help=f"{what} setting (repeatable)")  # fmt: skip
    cell.add_argument(
        "--pooled", type=int, metavar="MODELS",
        help="attack reference only: evaluate on MODELS recommenders trained on halves of the "
        "shadow and target parts, each in turn the target and the rest its references, with "
        "every user's score pooled (thousands of non-members behind each low-FPR point)",
    )  # fmt: skip
    cell.add_argument("--out", help="folder for result.parquet and scores.parquet")
    add_data_options(cell)
    cell.set_defaults(run=command_cell)


def add_audit_command(commands: Any) -> None:
    """`dlmia audit`: your recommender's served lists, attacked and reported."""
    audit = subcommand(
        commands, "audit", "audit the top-k lists your recommender served: every attack, a report",
        examples(
            "dlmia audit --interactions ratings.csv --lists served.csv --members members.csv "
            "--out out/audit",
            "dlmia audit --interactions ratings.csv --lists served.parquet --shadow "
            "examples.als:ALS --out out/audit-als",
            "dlmia audit --interactions ml-1m --data-root data --lists lists.tsv --attack "
            "reference --set reference.references=32 --out out/ml",
        ),
    )  # fmt: skip
    audit.add_argument(
        "--interactions", required=True, metavar="DATASET",
        help="what your system knows: a ratings file (CSV/TSV/parquet, as `dlmia cell` reads "
        "them) or a known dataset name",
    )  # fmt: skip
    audit.add_argument(
        "--lists", required=True, metavar="FILE",
        help="the lists it served: user, item, rank (1 = first), one row per entry; a header "
        "naming them, or those three columns in that order",
    )  # fmt: skip
    audit.add_argument(
        "--members", metavar="FILE",
        help="optional: user, member (1 = its data trained the system, 0 = not) for every "
        "listed user; without it, scores and rankings only",
    )  # fmt: skip
    audit.add_argument(
        "--shadow", default="lfm", metavar="RECOMMENDER",
        help="the adversary's recommender (shadow side and reference pool): a name, or your "
        "own module:Class",
    )  # fmt: skip
    audit.add_argument("--shadow-set", action="append", metavar="KEY=VALUE",
                       help="a setting of the shadow recommender (repeatable)")  # fmt: skip
    audit.add_argument(
        "--attack", action="append", metavar="NAME",
        help=f"an attack to run (repeatable; default: {', '.join(AUDIT_ATTACKS)})",
    )  # fmt: skip
    audit.add_argument(
        "--set", action="append", metavar="ATTACK.KEY=VALUE",
        help="an attack's setting, e.g. reference.references=32 (repeatable)",
    )  # fmt: skip
    audit.add_argument(
        "--nonmember-lists", default="model", choices=POLICIES,
        help="how the adversary's recommenders serve users they did not train on",
    )  # fmt: skip
    audit.add_argument("--out", required=True, help="output folder (scores, results, report)")
    add_data_options(audit)
    audit.set_defaults(run=command_audit)


def add_data_options(parser: argparse.ArgumentParser) -> None:
    """The options `cell` and `audit` share: where data lives and how it is read, the seed,
    the device and the threads."""
    parser.add_argument("--data-root", help=DATA_ROOT_HELP)
    parser.add_argument(
        "--seed", type=int, default=0,
        help="re-samples everything random: user split, item vectors, members, models, attack",
    )  # fmt: skip
    parser.add_argument(
        "--vectors-fit-on", choices=VECTOR_FIT_ON,
        help="histories the item vectors train on: the vectorization part (default: the "
        "paper's) or every user's (the adversary holds them; no labels)",
    )  # fmt: skip
    parser.add_argument(
        "--dataset-set", action="append", metavar="KEY=VALUE",
        help="dataset setting of both sides, as in a grid's datasets entry (repeatable), e.g. "
        "split={fractions: [0.5, 0.25, 0.25]} or filter={min_user: 10, min_item: 5}",
    )  # fmt: skip
    parser.add_argument(
        "--columns", metavar="ROLE=COLUMN,...",
        help="columns of a data file given by path: 0-based positions for a file without header "
        "(user=0,item=1,timestamp=3) or header names (user=reviewerID,item=asin); default: "
        "found from the header, or by position when the first line is not one",
    )  # fmt: skip
    parser.add_argument("--device", default="auto", help="auto, cpu or cuda[:N]")
    parser.add_argument(
        "--threads", type=int, default=1,
        help="torch CPU threads, at most this machine's CPUs (these models are small, and on a "
        "busy CPU more threads spin and slow every step down)",
    )  # fmt: skip


def add_data_commands(commands: Any) -> None:
    """`dlmia data fetch NAME --to DIR`: the only command that uses the network."""
    data = subcommand(commands, "data", "dataset utilities", examples(
        "dlmia data fetch ml-1m --to data"))  # fmt: skip
    actions = data.add_subparsers(dest="data_command", required=True)
    fetch = subcommand(
        actions, "fetch", f"download one of {', '.join(REMOTE_FILES)} (checksums verified)",
        examples("dlmia data fetch ml-1m --to data",
                 "dlmia data fetch amazon-digital-music --to data --sha256 HEX"),
    )  # fmt: skip
    fetch.add_argument("name", choices=list(REMOTE_FILES))
    fetch.add_argument("--to", required=True, help="destination folder (a data root)")
    fetch.add_argument("--sha256", help="the SHA-256 the file must have (pins an unpinned one)")
    fetch.set_defaults(run=command_fetch)


def add_grid_commands(commands: Any) -> None:
    """`dlmia grid run FILE`, `dlmia grid validate FILE` and `dlmia grid show [NAME]`; FILE is a
    path or the bare name of a packaged grid (`demo`, `paper-general`, ...)."""
    grid = subcommand(commands, "grid", "run, validate or show a grid of cells", examples(
        "dlmia grid show", "dlmia grid validate paper-general --data-root data",
        "dlmia grid run demo", "dlmia grid run my-grid.yaml"))  # fmt: skip
    actions = grid.add_subparsers(dest="grid_command", required=True)
    run = subcommand(
        actions, "run", "run every unfinished cell of a grid file (resumes)",
        examples(
            "dlmia grid run demo",
            "dlmia grid run paper-general --data-root data --no-search",
            "dlmia grid run paper-general --address auto   # on a Ray cluster",
            "dlmia grid run my-grid.yaml --out out/mine",
        ),
    )  # fmt: skip
    run.add_argument("file", help=GRID_FILE_HELP)
    run.add_argument(
        "--address", help="Ray cluster: auto or ray://HOST:10001 (default: $RAY_ADDRESS, else a "
        "local Ray)",
    )  # fmt: skip
    run.add_argument(
        "--data-root", help=DATA_ROOT_HELP
    )
    run.add_argument("--out", help="output folder (default: $DLMIA_OUT/<grid> or out/<grid>)")
    run.add_argument(
        "--cache", help="side cache folder, may be shared between grids (default: OUT/sides)"
    )
    run.add_argument(
        "--max-retries", type=int, help="retries of a failing side or cell (default: the grid's)"
    )
    run.add_argument("--yes", action="store_true", help="run a grid of more than 10,000 cells")
    run.set_defaults(run=command_grid_run)
    validate = subcommand(
        actions, "validate", "check a grid file and its data files; print what it would run",
        examples("dlmia grid validate paper-sequential --data-root data",
                 "dlmia grid validate my-grid.yaml"),
    )  # fmt: skip
    validate.add_argument("file", help=GRID_FILE_HELP)
    validate.add_argument("--data-root", help=DATA_ROOT_HELP)
    validate.set_defaults(run=command_grid_validate)
    show = subcommand(
        actions, "show", "print a packaged grid file (to copy and edit); list them without NAME",
        examples("dlmia grid show", "dlmia grid show demo > my-grid.yaml"),
    )  # fmt: skip
    show.add_argument("name", nargs="?", metavar="NAME", help="a packaged grid, e.g. demo")
    show.set_defaults(run=command_grid_show)
    for parser in (run, validate):
        parser.add_argument(
            "--vectors-fit-on", choices=VECTOR_FIT_ON,
            help="set every dataset's vectors.fit_on (the grid's name gets -<value>)",
        )
        parser.add_argument(
            "--no-search", action="store_true",
            help="run DL-MIA once per cell with its fixed settings (the grid's name gets -fixed)",
        )


def add_analyze_command(commands: Any) -> None:
    """`dlmia analyze OUT_DIR`: tables, heatmaps and ROC curves of a results folder."""
    analyze = subcommand(
        commands, "analyze", "tables, heatmaps and ROC curves of a results folder",
        examples("dlmia analyze out/demo",
                 "dlmia analyze out/paper-general --roc 'ml-1m.lfm__*' --roc "
                 "'*__dlmia__s0'"),
    )  # fmt: skip
    analyze.add_argument(
        "out_dir", metavar="OUT_DIR", help="the --out folder of a grid or cell run"
    )
    analyze.add_argument(
        "--roc", action="append", default=[], metavar="CELL_ID",
        help="a cell id or shell pattern of cell ids to draw ROC curves of (repeatable)",
    )  # fmt: skip
    analyze.add_argument(
        "--html", action="store_true",
        help="also write one self-contained HTML report, OUT_DIR/analysis/report.html",
    )  # fmt: skip
    analyze.set_defaults(run=command_analyze)


def build_parser() -> argparse.ArgumentParser:
    """The `dlmia` parser: cell, data, grid and analyze."""
    parser = Parser(
        prog="dlmia", description=__doc__.splitlines()[0],
        epilog=examples("dlmia data fetch ml-1m --to data",
                        "dlmia cell --shadow ml-1m:lfm --target ml-1m:itemcf --data-root data",
                        "dlmia grid run demo", "dlmia analyze out/demo"),
    )  # fmt: skip
    parser.add_argument("--version", action="version", version=f"dlmia {dlmia.__version__}")
    parser.add_argument("-q", "--quiet", action="store_true", help="only warnings on stderr")
    commands = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    add_cell_command(commands)
    add_audit_command(commands)
    add_data_commands(commands)
    add_grid_commands(commands)
    add_analyze_command(commands)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the `dlmia` console script."""
    args = build_parser().parse_args(argv)
    raise_on_sigterm()  # SIGTERM ends a run as Ctrl-C does: resumable, exit code 143
    logging.basicConfig(
        level=logging.WARNING if args.quiet else logging.INFO,
        format="%(asctime)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
        stream=sys.stderr,
    )
    try:
        return int(args.run(args))
    except DlmiaError as exc:
        line = printable(" ".join(str(exc).split()))  # one line, safe on a terminal
        print(f"dlmia: error: {line}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        stopped = terminated()
        print(f"dlmia: {'terminated' if stopped else 'interrupted'}; rerun to resume",
              file=sys.stderr)
        return 143 if stopped else 130


if __name__ == "__main__":
    sys.exit(main())
