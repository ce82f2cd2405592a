"""Every bad input of the catalogue (tests/fault_cases.py): one `dlmia: error:` line naming the
problem, exit code 2, no traceback, and nothing written. In-process, no Ray: seconds in all."""

from __future__ import annotations

from pathlib import Path

import pytest

from tests.fault_cases import CASES, Case, outcome, prepare


def test_the_catalogue_holds_every_kind_of_bad_input() -> None:
    names = [(case.group, case.name) for case in CASES]
    assert len(set(names)) == len(names) >= 150


@pytest.mark.parametrize("case", CASES, ids=[f"{c.group}: {c.name}" for c in CASES])
def test_bad_input_is_one_line_and_exit_2(
    case: Case, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = prepare(case, tmp_path)
    before = set(tmp_path.rglob("*"))
    code = outcome(argv, case.env)
    err = capsys.readouterr().err
    lines = err.strip().splitlines()
    assert code == 2, err
    assert "Traceback" not in err, err
    assert lines and lines[-1].startswith("dlmia: error: "), err
    assert sum(line.startswith("dlmia: error") for line in lines) == 1, err
    assert case.message in lines[-1], lines[-1]
    assert len(lines[-1]) < 1100  # long values cut (dlmia.errors.printable)
    assert set(tmp_path.rglob("*")) == before  # nothing written, nothing half-written
