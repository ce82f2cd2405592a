"""`dlmia audit`: a recommender's served lists audited from files. The round trip: a built-in
model's lists, written to files with their members and audited, give the scores `dlmia cell`
gives on that model; without members the audit gives scores and rankings only; bad files are
one error line; the report is one self-contained HTML page that a real browser opens."""

from __future__ import annotations

import dataclasses
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlmia.audit import ATTACKS, AuditConfig, run_audit
from dlmia.cell import ListOptions, SideChoice, cached_dataset, cell_config, run_cell
from dlmia.cli import main
from dlmia.data.synthetic import SyntheticConfig, generate
from dlmia.sides import DatasetSpec, build_side
from tests.browser import chromium_console

SMALL = SyntheticConfig(n_users=420, n_items=150, mean_length=18.0)
K = 20
SETTINGS = {"biased": {"epochs": 3}, "dlmia": {"epochs_vae": 2, "epochs_heads": 2,
                                               "epochs_joint": 2}, "reference": {"references": 4}}


@pytest.fixture(scope="module")
def ratings(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A synthetic dataset written as a ratings CSV with string ids, as a system exports it."""
    data = generate(SMALL, seed=3)
    path = tmp_path_factory.mktemp("system") / "ratings.csv"
    pd.DataFrame({"user": [f"u{u}" for u in data.user_ids[data.users]],
                  "item": [f"i{i}" for i in data.item_ids[data.items]],
                  "timestamp": data.times}).to_csv(path, index=False)  # fmt: skip
    return path


def served(
    ratings: Path | DatasetSpec, folder: Path, attacks: tuple[str, ...] = ATTACKS
) -> tuple[Path, Path, dict]:
    """A built-in ItemCF's target side as the files an auditor brings (lists in the cell's user
    order, members), and each attack's scores from `dlmia cell` on that model."""
    dataset = ratings if isinstance(ratings, DatasetSpec) else DatasetSpec(path=str(ratings))
    choice = SideChoice(dataset, "itemcf")
    options = ListOptions(k=K, nonmember_lists="model")
    cells = {attack: cell_config(choice, choice, attack, SETTINGS.get(attack, {}), options,
                                 seed=1, device="cpu") for attack in attacks}  # fmt: skip
    first = cells[attacks[0]]
    data = cached_dataset(first.target.dataset)
    target = build_side(data, first.target)
    users = data.user_ids[target.users]
    lists = pd.DataFrame({
        "user": np.repeat(users, K), "item": data.item_ids[target.lists].ravel(),
        "rank": np.tile(np.arange(1, K + 1), len(users)),
    })  # fmt: skip
    lists_file, members_file = folder / "served.csv", folder / "members.csv"
    lists.to_csv(lists_file, index=False)
    pd.DataFrame({"user": users, "member": target.labels}).to_csv(members_file, index=False)
    return lists_file, members_file, {a: run_cell(c).scores for a, c in cells.items()}


def test_an_audit_of_exported_lists_gives_the_cells_scores(ratings: Path, tmp_path: Path) -> None:
    lists, members, expected = served(ratings, tmp_path)
    config = AuditConfig(DatasetSpec(path=str(ratings)), str(lists), str(members), shadow="itemcf",
                         attack_settings=SETTINGS, seed=1, device="cpu")  # fmt: skip
    result = run_audit(config)
    assert result.labelled and set(result.cells) == set(ATTACKS)
    for attack in ATTACKS:
        scores = result.cells[attack].scores
        np.testing.assert_array_equal(scores, expected[attack], err_msg=attack)
    reference = result.cells["reference"].metrics
    assert reference["roc_auc"] > 0.7 and reference["n_nonmembers"] > 50
    assert set(result.scores.columns) == {"user", "user_index", "attack", "score", "rank"}
    assert result.scores["user"].str.startswith("u").all()
    only = run_audit(dataclasses.replace(config, members=""), done=("dlmia",))
    assert not only.labelled and "dlmia" not in only.cells and only.cells["norm"].metrics == {}
    np.testing.assert_array_equal(only.cells["reference"].scores, expected["reference"])


@pytest.mark.slow
@pytest.mark.shared_data
def test_an_audit_of_an_ml_1m_models_lists_gives_the_cells_scores(
    shared_data: Path, tmp_path: Path
) -> None:
    attacks = ("norm", "list-frequency", "biased", "reference")
    ml = DatasetSpec(name="ml-1m", data_root=str(shared_data))
    lists, members, expected = served(ml, tmp_path, attacks)
    config = AuditConfig(ml, str(lists), str(members), shadow="itemcf", attacks=attacks,
                         attack_settings={a: SETTINGS[a] for a in attacks if a in SETTINGS},
                         seed=1, device="cpu")  # fmt: skip
    result = run_audit(config)
    for attack in attacks:
        np.testing.assert_array_equal(result.cells[attack].scores, expected[attack], attack)
    assert result.cells["reference"].metrics["n_nonmembers"] == 668


@pytest.mark.slow
def test_dlmia_audit_writes_scores_results_and_a_report_a_browser_opens(
    ratings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lists, members, _ = served(ratings, tmp_path)
    out = tmp_path / "audit"
    settings = [f"--set={a}.{k}={v}" for a, s in SETTINGS.items() for k, v in s.items()]
    argv = ["-q", "audit", "--interactions", str(ratings), "--lists", str(lists), "--members",
            str(members), "--shadow", "itemcf", "--seed", "1", "--device", "cpu",
            "--out", str(out), *settings]  # fmt: skip
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert "Reference" in printed and "report:" in printed
    assert sorted(p.stem for p in (out / "scores").glob("*.parquet")) == sorted(ATTACKS)
    assert sorted(p.stem for p in (out / "results").glob("*.parquet")) == sorted(ATTACKS)
    summary = json.loads((out / "audit.json").read_text())
    assert summary["audited_users"] > 100 and summary["k"] == K
    page = (out / "report.html").read_text()
    for text in ("Data and settings", "TPR at 0.1% FPR", "Against the training-free baselines",
                 "ROC curves", "Who is most exposed", "history_length", "Provenance"):  # fmt: skip
        assert text in page, text
    assert "http" not in page.replace("http-equiv", "")  # nothing fetched at view time
    console = chromium_console(out / "report.html", tmp_path / "report.png")
    assert console == "", console
    assert (tmp_path / "report.png").stat().st_size > 20_000
    before = {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")}
    assert main(argv) == 0  # a rerun finds every attack done and rewrites nothing
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.parquet")} == before


@pytest.mark.slow
def test_an_audit_without_members_says_so(
    ratings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    lists, _, _ = served(ratings, tmp_path)
    out = tmp_path / "audit"
    argv = ["-q", "audit", "--interactions", str(ratings), "--lists", str(lists), "--attack",
            "norm", "--attack", "reference", "--set", "reference.references=4", "--device", "cpu",
            "--out", str(out)]  # fmt: skip
    assert main(argv) == 0
    assert "no membership labels were given" in capsys.readouterr().out
    assert not (out / "results").exists()
    page = (out / "report.html").read_text()
    assert "No membership labels were given" in page and "Who is ranked most exposed" in page
    assert chromium_console(out / "report.html", tmp_path / "unlabelled.png") == ""


@pytest.mark.parametrize(
    ("lists", "members", "message"),
    [
        ("user,item,rank\nu1,i1,1\nu1,nope,2\n", None, "item ids are not in the filtered"),
        ("user,item,rank\nu1,i1,1\nu1,i2,3\n", None, "needs ranks 1..3 exactly once"),
        ("user,item,rank\nu1,i1,first\n", None, "rank 'first' is not 1, 2"),
        ("user,item\nu1,i1\n", None, "needs the columns user, item, rank"),
        ("user,item,rank\nu1,i1,1\nu2,i1,1\n", "user,member\nu1,1\n", "have no label"),
        ("user,item,rank\nu1,i1,1\nu2,i1,1\n", "user,member\nu1,1\nu2,2\n", "must be 0 or 1"),
        ("user,item,rank\nu1,i1,1\nu2,i1,1\n", "user,member\nu1,1\nu2,1\n", "need both"),
    ],
)
def test_bad_audit_files_are_one_line(
    ratings: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str], lists: str,
    members: str | None, message: str,
) -> None:  # fmt: skip
    (tmp_path / "lists.csv").write_text(lists)
    argv = ["audit", "--interactions", str(ratings), "--lists", str(tmp_path / "lists.csv"),
            "--device", "cpu", "--out", str(tmp_path / "out")]  # fmt: skip
    if members is not None:
        (tmp_path / "members.csv").write_text(members)
        argv += ["--members", str(tmp_path / "members.csv")]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("dlmia: error: ") and message in error[0]
    assert not list((tmp_path / "out").rglob("*.parquet"))


def readme_blocks(section: str) -> tuple[str, str]:
    """The bash and python code blocks of the README's section `section`."""
    text = (Path(__file__).resolve().parents[1] / "README.md").read_text()
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    bash = body.split("```bash\n", 1)[1].split("```", 1)[0]
    python = body.split("```python\n", 1)[1].split("```", 1)[0]
    return bash, python


@pytest.mark.slow
def test_the_readme_audit_commands_run_as_written(
    ratings: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    lists, members, _ = served(ratings, tmp_path)
    work = tmp_path / "work"
    work.mkdir()
    for source, name in ((ratings, "ratings.csv"), (lists, "served.csv"),
                         (members, "members.csv")):  # fmt: skip
        shutil.copy(source, work / name)
    shutil.copytree(Path(__file__).resolve().parents[1] / "examples", work / "examples")
    monkeypatch.chdir(work)
    bash, python = readme_blocks("Audit your recommender")
    commands = bash.replace("\\\n    ", "").splitlines()  # continuation lines joined
    assert len(commands) == 4 and all(c.startswith("dlmia ") for c in commands)
    for command in commands:
        words = command.split()[1:]
        cpu = ["--device", "cpu"] if words[0] == "audit" else []
        assert main(["-q", *words, *cpu]) == 0, command
    assert (work / "audit" / "report.html").is_file() and (work / "audit-als" / "results").is_dir()
    assert not (work / "audit-unlabelled" / "results").exists()
    exec(compile(python, "README.md", "exec"), {})  # noqa: S102 (the README's own example)
    assert sorted(p.stem for p in (work / "audit-python" / "results").glob("*.parquet")) == [
        "norm", "reference"]
