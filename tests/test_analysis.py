"""The analysis package on hand-built results folders with the runner's exact layout and schema."""

from __future__ import annotations

import errno
import json
import os
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from analysis import load_results, summarize
from analysis.heatmaps import panels, write_heatmaps
from analysis.paper import FAMILIES, compare_with_paper, paper_table
from analysis.results import load_trials
from analysis.roc import _FPR_GRID, _tpr_on_grid, write_roc
from dlmia.errors import ConfigError, DataError
from dlmia.io import write_parquet
from dlmia.metrics import attack_metrics
from dlmia.schema import METRICS, RESULTS, SIDE_COLUMNS, TRIALS, undeclared
from dlmia.seeding import numpy_rng

Side = tuple[str, str]  # (dataset, recommender)

# (shadow side, target side) of the fake paper-general cells; the last one fails for dlmia seed 0.
CELLS = [
    (("ml-1m", "itemcf"), ("ml-1m", "itemcf")),
    (("ml-1m", "lfm"), ("amazon-digital-music", "ncf")),
    (("amazon-digital-music", "ncf"), ("ml-1m", "lfm")),
]
FAILED = (("ml-1m", "ncf"), ("ml-1m", "ncf"))


def cell_id(shadow: Side, target: Side, attack: str, seed: int) -> str:
    return f"{shadow[0]}.{shadow[1]}__{target[0]}.{target[1]}__{attack}__s{seed}"


def fake_scores(strength: float, seed: int, n: int = 200) -> pd.DataFrame:
    """Per-user scores: members shifted up by `strength`, clipped to [0, 1]."""
    rng = numpy_rng(seed, "fake-scores")
    labels = np.repeat([1, 0], n // 2)  # (n,)
    scores = np.clip(0.5 + strength * (labels - 0.5) + rng.normal(0, 0.2, n), 0, 1)  # (n,)
    return pd.DataFrame({"user": np.arange(n), "label": labels, "score": scores})


def fake_row(grid: str, shadow: Side, target: Side, attack: str, seed: int, scores=None) -> dict:
    """A row with result_row's columns plus the runner's; a failed row when scores is None."""
    row = {
        "shadow_dataset": shadow[0], "shadow_recommender": shadow[1],
        "target_dataset": target[0], "target_recommender": target[1],
        "attack": attack, "seed": seed, "status": "ok" if scores is not None else "failed",
        "grid": grid, "cell_id": cell_id(shadow, target, attack, seed),
        "shadow_side_id": "-".join(shadow), "target_side_id": "-".join(target),
        "attempts": 1 if scores is not None else 3,
        "error": None if scores is not None else "TrainingError: 3 of 200 are not finite\n  trace",
    }  # fmt: skip
    if scores is None:
        return row
    row.update(attack_metrics(scores["label"], scores["score"]))
    row.update(
        n_shadow=300, n_target=200, seconds=1.5, attack_seconds=0.5, shadow_zero_vectors=0,
        target_zero_vectors=2, config=json.dumps({"seed": seed}), attack_settings=json.dumps({}),
        details="{}", host="node-1", dlmia_version="0.1.0", git_commit="abc1234",
        torch_version="2.13.0", numpy_version="2.0", python_version="3.11.9",
    )  # fmt: skip
    return row


def write_result(out: Path, row: dict, scores: pd.DataFrame | None) -> None:
    write_parquet(pd.DataFrame([row]), out / "results" / f"{row['cell_id']}.parquet")
    if scores is not None:
        write_parquet(scores, out / "scores" / f"{row['cell_id']}.parquet")


@pytest.fixture(scope="module")
def grid_out(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A grid run's folder: 3 cells x 2 attacks x 2 seeds, and a cell failed for dlmia seed 0."""
    out = tmp_path_factory.mktemp("grid")
    for i, (shadow, target) in enumerate(CELLS):
        for attack, strength in (("biased", 0.1 * i), ("dlmia", 0.3 + 0.1 * i)):
            for seed in (0, 1):
                scores = fake_scores(strength, seed=10 * i + seed)
                row = fake_row("paper-general", shadow, target, attack, seed, scores)
                write_result(out, row, scores)
    write_result(out, fake_row("paper-general", *FAILED, "dlmia", 0), None)
    return out


def test_load_results_rows_and_dtypes(grid_out: Path) -> None:
    frame = load_results(grid_out)
    assert len(frame) == 13
    assert list(frame.columns) == list(RESULTS)
    assert {c: str(frame[c].dtype) for c in RESULTS} == RESULTS
    assert all(frame[m].dtype == np.float64 for m in METRICS)
    assert frame["attack"].cat.categories.tolist() == ["biased", "dlmia"]
    failed = frame[frame["status"] == "failed"]
    assert failed["cell_id"].tolist() == [cell_id(*FAILED, "dlmia", 0)]
    assert failed["roc_auc"].isna().all() and failed["attempts"].tolist() == [3]
    assert failed["error"].iloc[0].startswith("TrainingError")
    ok = frame[frame["status"] == "ok"]
    assert ok[list(METRICS)].notna().all().all()
    assert not frame.duplicated([*SIDE_COLUMNS, "attack", "seed"]).any()
    assert frame["trial"].isna().all() and frame["search"].isna().all()  # nothing searched
    # sorted by sides, attack (biased first), then seed
    first = frame.iloc[:4]
    assert first["shadow_dataset"].astype(str).tolist() == ["amazon-digital-music"] * 4
    assert first["attack"].astype(str).tolist() == ["biased", "biased", "dlmia", "dlmia"]
    assert first["seed"].tolist() == [0, 1, 0, 1]
    # metrics are exactly those computed from the stored scores
    row = frame.iloc[0]
    scores = pd.read_parquet(grid_out / "scores" / f"{row['cell_id']}.parquet")
    assert row["roc_auc"] == attack_metrics(scores["label"], scores["score"])["roc_auc"]


def test_cell_folder_and_folder_of_cells(tmp_path: Path) -> None:
    scores = fake_scores(0.5, seed=0)
    row = fake_row("", ("synthetic", "lfm"), ("synthetic", "itemcf"), "biased", 0, scores)
    for key in ("grid", "cell_id", "shadow_side_id", "target_side_id", "attempts", "error"):
        row.pop(key)  # `dlmia cell --out` rows have only result_row's columns
    for name in ("a", "b"):
        write_parquet(pd.DataFrame([row]), tmp_path / name / "result.parquet")
        write_parquet(scores, tmp_path / name / "scores.parquet")
    single = load_results(tmp_path / "a")
    assert single["cell_id"].tolist() == ["a"] and single["grid"].tolist() == [""]
    assert single["result_file"].tolist() == ["result.parquet"]
    both = load_results(tmp_path)
    assert both["cell_id"].tolist() == ["a", "b"] and both["attempts"].isna().all()
    assert write_roc(both, tmp_path, "a", tmp_path / "plots").stat().st_size > 0


def test_paper_table_maps_every_cell() -> None:
    paper = paper_table()
    assert len(paper) == 72 and paper.notna().all().all()
    for family in FAMILIES:
        block = paper[paper["family"] == family.name]
        pairs = set(zip(zip(block["shadow_dataset"], block["shadow_recommender"]),
                        zip(block["target_dataset"], block["target_recommender"])))  # fmt: skip
        assert pairs == {(s, t) for s in family.sides for t in family.sides}
    mi = paper[(paper["family"] == "general") & (paper["shadow_dataset"] == "ml-1m")
               & (paper["shadow_recommender"] == "itemcf") & (paper["target_dataset"] == "ml-1m")
               & (paper["target_recommender"] == "itemcf")]  # fmt: skip
    assert mi[["auc_biased", "auc_dlmia"]].values.tolist() == [[0.998, 1.0]]


def test_comparison_table_values(grid_out: Path) -> None:
    frame = load_results(grid_out)
    table = compare_with_paper(frame)
    assert len(table) == 4  # 3 finished cells and the failed one
    row = table[table["shadow_recommender"].eq("itemcf")].iloc[0]
    ours = frame[(frame["shadow_recommender"] == "itemcf") & (frame["attack"] == "dlmia")]
    assert row["dlmia_balanced_accuracy_mean"] == pytest.approx(ours["balanced_accuracy"].mean())
    assert row["dlmia_balanced_accuracy_std"] == pytest.approx(ours["balanced_accuracy"].std())
    assert row["biased_n_seeds"] == 2 and row["dlmia_n_failed"] == 0
    assert row["paper_biased_balanced_accuracy"] == 0.998 and row["family"] == "general"
    failed = table[table["shadow_recommender"] == "ncf"].query("shadow_dataset == 'ml-1m'").iloc[0]
    assert failed["dlmia_n_failed"] == 1 and failed["dlmia_n_seeds"] == 0
    assert np.isnan(failed["dlmia_roc_auc_mean"])
    assert failed["paper_dlmia_balanced_accuracy"] == 0.999


def test_summarize_writes_tables_heatmaps_and_roc(grid_out: Path) -> None:
    roc = cell_id(*CELLS[0], "*", 0)
    report = summarize(grid_out, roc=[roc], echo=False)
    folder = grid_out / "analysis"
    heatmaps = sorted(folder.glob("heatmap_*.png"))
    names = ["heatmap_general_balanced_accuracy.png", "heatmap_general_roc_auc.png"]
    assert [p.name for p in heatmaps] == names
    for path in [*heatmaps, folder / f"roc_{roc.replace('*', '-')}.png", folder / "comparison.md"]:
        assert path.stat().st_size > 500, path
        assert str(path) in report
    for path in [*heatmaps, folder / f"roc_{roc.replace('*', '-')}.png"]:
        assert path.with_suffix(".pdf").stat().st_size > 1000, path  # vector copy for papers
    csv = pd.read_csv(folder / "comparison.csv")
    assert csv["paper_biased_balanced_accuracy"].notna().all()
    for column in ("tpr_at_1pct_fpr", "tpr_at_0.1pct_fpr_low", "tpr_at_0pct_fpr_high",
                   "roc_auc_low", "n_nonmembers"):  # fmt: skip
        assert f"dlmia_{column}_mean" in csv, column
    assert "ML-1M:ItemCF" in report and "0.998" in report and "1 failed:" in report
    assert "after 3 attempt(s): TrainingError: 3 of 200 are not finite\n" in report


def test_trials_table_is_its_own_frame(tmp_path: Path, grid_out: Path) -> None:
    """A search's trials are read by load_trials, typed by the trials schema; results ignore
    them."""
    frame = load_results(grid_out)
    row = fake_row("paper-general", *CELLS[0], "dlmia", 0, fake_scores(1.0, seed=99))
    identity = {k: row[k] for k in ("grid", *SIDE_COLUMNS, "attack", "seed", "cell_id")}
    trials = pd.DataFrame([identity | {
        "search": "s", "trial": n, "study_trial": n - 1, "state": "complete", "finished": True,
        "objective": -n, "selected": n == 1, "shadow_pick": n == 2, "oracle_pick": n == 2,
        "roc_auc": 0.5 + n / 10, "param.lr": 0.01 * n} for n in (2, 1)])  # fmt: skip
    assert undeclared(trials.columns, TRIALS) == []
    assert undeclared([*trials.columns, "selcted"], TRIALS) == ["selcted"]
    write_parquet(trials, grid_out / "trials" / f"{row['cell_id']}.parquet")
    try:
        loaded, again = load_trials(grid_out), load_results(grid_out)
    finally:
        (grid_out / "trials" / f"{row['cell_id']}.parquet").unlink()
    assert list(loaded.columns) == [*TRIALS, "param.lr"] and loaded["trial"].tolist() == [1, 2]
    assert {c: str(loaded[c].dtype) for c in TRIALS} == TRIALS
    assert loaded["trials_file"].tolist() == [f"trials/{row['cell_id']}.parquet"] * 2
    pd.testing.assert_frame_equal(again, frame)
    assert load_trials(tmp_path).empty and list(load_trials(tmp_path).columns) == list(TRIALS)


def test_heatmap_panels_for_a_non_paper_grid(tmp_path: Path, grid_out: Path) -> None:
    sides = [("synthetic", "lfm"), ("synthetic", "itemcf")]
    for seed, (shadow, target) in enumerate([(s, t) for s in sides for t in sides]):
        scores = fake_scores(0.4, seed=seed)
        write_result(tmp_path, fake_row("demo", shadow, target, "biased", 0, scores), scores)
    frame = pd.concat([load_results(tmp_path), load_results(grid_out)], ignore_index=True)
    names = {p.name: p for p in panels(frame)}
    assert set(names) == {"demo", "general"}
    assert names["demo"].rows == sorted(sides) and len(names["general"].rows) == 6
    paths = write_heatmaps(load_results(tmp_path), tmp_path / "plots")
    names = [f"heatmap_demo_{metric}.png" for metric in ("balanced_accuracy", "roc_auc")]
    assert [p.name for p in paths] == names
    assert all(p.stat().st_size > 1000 for p in paths)


def test_errors_name_the_problem(tmp_path: Path, grid_out: Path) -> None:
    with pytest.raises(DataError, match="no results in"):
        load_results(tmp_path)
    with pytest.raises(DataError, match="does not exist"):
        load_results(tmp_path / "missing")
    (tmp_path / "results").mkdir()
    (tmp_path / "results" / "broken.parquet").write_bytes(b"not a parquet file")
    with pytest.raises(DataError, match=r"cannot read result file .*broken\.parquet"):
        load_results(tmp_path)
    (tmp_path / "results" / "broken.parquet").unlink()
    write_parquet(pd.DataFrame([{"attack": "biased"}]), tmp_path / "results" / "thin.parquet")
    with pytest.raises(DataError, match=r"thin\.parquet lacks columns \['shadow_dataset'"):
        load_results(tmp_path)
    scores = fake_scores(0.5, seed=0)
    write_result(tmp_path / "ok", fake_row("g", *CELLS[0], "biased", 0, scores), scores)
    with pytest.raises(ConfigError, match="'nope': no finished result"):
        summarize(tmp_path / "ok", roc=["nope"], echo=False)
    assert not (tmp_path / "ok" / "analysis").exists()  # the typo is caught before any writing


def test_dlmia_analyze_command(grid_out: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from dlmia.cli import main

    assert main(["analyze", str(grid_out)]) == 0
    printed = capsys.readouterr().out
    assert "heatmap_general_roc_auc.png" in printed and "Biased BA" in printed
    assert main(["analyze", str(grid_out / "nowhere")]) == 2
    assert "does not exist" in capsys.readouterr().err


@pytest.mark.parametrize("problem", ["read-only file system", "no space left on device"])
def test_analyze_on_a_folder_it_cannot_write_is_one_line(
    grid_out: Path, problem: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    import analysis.report
    from dlmia.cli import main

    code = errno.EROFS if problem.startswith("read") else errno.ENOSPC

    def refuse(path: Path, write: object) -> Path:
        raise OSError(code, os.strerror(code), str(path))

    monkeypatch.setattr(analysis.report, "atomic_write", refuse)
    assert main(["-q", "analyze", str(grid_out)]) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert error == [error[-1]] and "Traceback" not in error[-1]
    assert error[-1].startswith(f"dlmia: error: cannot write {grid_out / 'analysis'}")
    assert os.strerror(code) in error[-1]


def test_paper_report_means_closeness_and_reasons(tmp_path: Path) -> None:
    """The report against the paper: per family and vector setting, every attack's mean, the
    cells within 0.05 of the paper, and one reason per cell further from it."""
    from analysis.paper_report import write_paper_report

    out = tmp_path / "part"
    strengths = {"norm": 0.9, "list-frequency": 0.2, "biased": 0.1, "dlmia": 0.5}
    for shadow, target in CELLS:
        for attack, strength in strengths.items():
            scores = fake_scores(strength, seed=1)
            row = fake_row("general-fast-vectorization", shadow, target, attack, 0, scores)
            row.update(vectors_fit_on="vectorization", nonmember_lists="popular",
                       shadow_list_coverage=0.9, target_list_coverage=0.3)
            write_result(out, row, scores)
    paths = write_paper_report([out], tmp_path / "report")
    names = {p.name for p in paths}
    assert {"report.md", "cells.csv"} <= names and any(n.startswith("heatmap_") for n in names)
    text = (tmp_path / "report" / "report.md").read_text()
    assert "## general family: vectors fit on vectorization, non-members popular" in text
    assert "| DL-MIA | 3 of 36 |" in text and "| norm | 3 of 36 |" in text
    assert "Missing: no results for the sequential family." in text
    cells = pd.read_csv(tmp_path / "report" / "cells.csv")
    assert len(cells) == 3 and cells["paper_biased"].notna().all()
    # coverage (30% of the target's list items) explains every miss, first of the rules
    misses = [line for line in text.splitlines() if line.startswith("- ") and "ours" in line]
    assert misses and all(
        line.endswith("coverage: only 30% of a side's list entries have a vector")
        for line in misses
    )


def test_roc_grid_agrees_with_the_low_fpr_metrics(tmp_path: Path, grid_out: Path) -> None:
    scores = fake_scores(0.6, seed=3, n=2000)
    metrics = attack_metrics(scores["label"], scores["score"])
    tpr = _tpr_on_grid(scores)
    for fpr in (0.0, 0.001, 0.01):
        assert tpr[np.searchsorted(_FPR_GRID, fpr)] == metrics[f"tpr_at_{fpr:.1%}_fpr".replace(
            ".0%", "pct").replace("%", "pct")]  # fmt: skip
    # two seeds of one cell: one mean curve with a band, written as PNG and PDF
    path = write_roc(load_results(grid_out), grid_out, cell_id(*CELLS[1], "dlmia", "*"), tmp_path)
    assert path.suffix == ".png" and path.with_suffix(".pdf").stat().st_size > 1000
