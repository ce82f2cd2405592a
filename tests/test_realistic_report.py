"""The realistic report on `dlmia cell` results of a synthetic dataset: its tables, figures and
the exposure of users by history length and item popularity."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from analysis.exposure import exposure_table, threshold_at
from analysis.html import write_html
from analysis.realistic_report import every_attack, write_realistic_report
from dlmia.cli import main
from dlmia.data.histories import Histories
from tests.browser import chromium_console

SYNTHETIC = "synthetic={n_users: 300, n_items: 120, mean_length: 15.0}"


def test_threshold_allows_one_percent_of_the_non_members() -> None:
    labels = np.array([0] * 200 + [1] * 10)
    scores = np.r_[np.arange(200) / 200, np.ones(10)]
    threshold = threshold_at(scores, labels, 0.01)  # 2 non-members may lie above it
    assert (scores[labels == 0] > threshold).sum() == 2
    assert threshold_at(scores, labels, 0.0) == scores[labels == 0].max()


def test_exposure_counts_members_found_per_quartile() -> None:
    histories = Histories.from_lists([[0] * 1 + [1] * (u % 8) for u in range(80)], n_items=4)
    scores = pd.DataFrame({"user": np.arange(80), "label": np.arange(80) % 2,
                           "score": np.arange(80) % 8 + (np.arange(80) % 2) * 0.5})  # fmt: skip
    table = exposure_table(scores, histories)
    lengths = table[table["trait"] == "history_length"]
    assert lengths["users"].tolist() == [20] * 4 and lengths["members"].sum() == 40
    found = lengths["members_found_at_1%_fpr"].tolist()
    assert found == sorted(found) and found[-1] > found[0]  # the long histories are found


def test_every_attack_pattern() -> None:
    assert every_attack("a.x__a.y__reference__model__s0") == "a.x__a.y__*__model__s0"
    assert every_attack("one-cell") == "one-cell"


@pytest.mark.slow
def test_the_report_of_two_cells(tmp_path: pytest.TempPathFactory) -> None:
    out = tmp_path / "results"  # type: ignore[operator]
    for attack, settings in (("norm", []), ("reference", ["--set", "references=4"])):
        code = main(["-q", "cell", "--shadow", "synthetic:itemcf", "--target", "synthetic:itemcf",
                     "--attack", attack, *settings, "--nonmember-lists", "model", "--k", "10",
                     "--dataset-set", SYNTHETIC, "--device", "cpu",
                     "--out", str(out / f"syn.itemcf__syn.itemcf__{attack}__s0")])  # fmt: skip
        assert code == 0
    to = tmp_path / "report"  # type: ignore[operator]
    paths = write_realistic_report([out], to)
    text = (to / "report.md").read_text()
    assert "## Mean per family, policy and attack" in text and "## Who is most exposed" in text
    assert "history_length" in text and "item_popularity" in text
    cells = pd.read_csv(to / "cells.csv")
    assert set(cells["attack"]) == {"norm", "reference"}
    assert cells["roc_auc"].str.match(r"^0\.\d{3} \[0\.\d{3}, [01]\.\d{3}\]$").all()
    assert (to / "roc" / "roc_syn.itemcf__syn.itemcf__-__s0.png").is_file()
    assert len(paths) == 4
    page = write_html(out)  # the folder's one-page report, as `dlmia analyze --html` writes it
    assert page == out / "analysis" / "report.html"
    assert "Who is most exposed" in page.read_text() and "Reference" in page.read_text()
    assert chromium_console(page, tmp_path / "grid.png") == ""  # type: ignore[operator]
