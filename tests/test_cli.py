"""The command line as a user meets it: --version, help with defaults and examples, options
before or after the subcommand, and `analyze --roc` not swallowing the folder."""

from __future__ import annotations

import argparse

import pytest

import dlmia
from dlmia.cli import build_parser, main


def subcommands(
    parser: argparse.ArgumentParser, prefix: str = "dlmia"
) -> dict[str, argparse.ArgumentParser]:
    """Every (nested) subcommand parser, by its command line."""
    found = {}
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, child in action.choices.items():
                found[f"{prefix} {name}"] = child
                found |= subcommands(child, f"{prefix} {name}")
    return found


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(["--version"])
    assert exit_info.value.code == 0
    assert capsys.readouterr().out.strip() == f"dlmia {dlmia.__version__}"


def test_every_subcommand_has_examples_and_shows_defaults() -> None:
    found = subcommands(build_parser())
    assert {"dlmia cell", "dlmia data fetch", "dlmia grid run", "dlmia grid validate",
            "dlmia analyze"} <= set(found)  # fmt: skip
    for name, parser in found.items():
        text = parser.format_help()
        assert "examples:\n  dlmia " in text, name
        assert "-q, --quiet" in text, name
    cell = found["dlmia cell"].format_help()
    assert "(default: biased)" in cell and "(default: 100)" in cell and "(default: 0)" in cell
    assert "(default: None)" not in cell  # options without a default say nothing


@pytest.mark.parametrize(
    "argv",
    [
        ["-q", "grid", "validate", "grids/demo.yaml"],
        ["grid", "validate", "grids/demo.yaml", "-q"],
        ["grid", "validate", "-q", "grids/demo.yaml"],
    ],
)
def test_quiet_before_or_after_the_subcommand(argv: list[str]) -> None:
    args = build_parser().parse_args(argv)
    assert args.quiet is True and args.file == "grids/demo.yaml"


def test_quiet_defaults_to_false() -> None:
    assert build_parser().parse_args(["grid", "validate", "grids/demo.yaml"]).quiet is False


def test_roc_is_repeatable_and_leaves_the_folder_alone() -> None:
    args = build_parser().parse_args(["analyze", "--roc", "a*", "--roc", "b", "out/demo"])
    assert args.out_dir == "out/demo" and args.roc == ["a*", "b"]
    assert build_parser().parse_args(["analyze", "out/demo"]).roc == []


@pytest.mark.parametrize(
    ("argv", "says"),
    [
        (["grid", "validate", "grids/demo.yaml", "--no-such-flag"], "--no-such-flag"),
        (["cell", "--target", "ml-1m:lfm"], "dlmia cell: the following arguments are required"),
    ],
)
def test_a_bad_option_is_one_line_and_exit_2(
    argv: list[str], says: str, capsys: pytest.CaptureFixture[str]
) -> None:
    with pytest.raises(SystemExit) as exit_info:
        main(argv)
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("dlmia: error:") and says in err
