"""Each side's recommender beside popularity (dlmia.sides, analysis.side_quality): measured on
the same users, carried into every result row, summarised per side with a warning for a side
that does not beat popularity, and named as the reason in the report against the paper."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from analysis.results import load_results
from analysis.side_quality import side_quality_lines, side_quality_table
from dlmia.cell import ListOptions, SideChoice, cell_config
from dlmia.results import side_columns
from dlmia.sides import build_side, prepare_dataset, seeded
from tests.records import side_info
from tests.test_analysis import CELLS, fake_row, fake_scores, write_result
from tests.test_baselines import SMALL


def served_hit_rates(recommender: str, seed: int) -> tuple[float, float]:
    """(the recommender's HR@10, popularity's) of the target side of a synthetic cell."""
    spec = seeded(SMALL, 0)
    choice = SideChoice(spec, recommender)
    side = cell_config(choice, choice, "norm", {}, ListOptions(k=20), seed, "cpu").target
    served = build_side(prepare_dataset(spec), side).info.served
    return served.recommender_hr_at_10, served.popularity_hr_at_10


@pytest.mark.parametrize("seed", [0, 1])
def test_a_popularity_side_is_exactly_its_own_floor(seed: int) -> None:
    """The floor ranks what the side's recommender ranks, from what it trained on: a popularity
    side scores exactly the floor."""
    hr, floor = served_hit_rates("popularity", seed)
    assert 0 < floor < 1 and hr == floor


def test_a_personalised_recommender_beats_the_floor_on_taste_data() -> None:
    """The synthetic users follow one taste each: ItemCF finds it, popularity cannot."""
    hr, floor = served_hit_rates("itemcf", 0)
    assert hr > 2 * floor > 0


def test_result_rows_carry_each_sides_hit_rates() -> None:
    shadow, target = (
        replace(side_info(), served=replace(side_info().served, recommender_hr_at_10=hr,
                                            popularity_hr_at_10=floor))
        for hr, floor in ((0.4, 0.1), (0.02, 0.03))
    )  # fmt: skip
    columns = side_columns(shadow, target)
    for role, side in (("shadow", shadow), ("target", target)):
        assert columns[f"{role}_hr_at_10"] == side.served.recommender_hr_at_10
        assert columns[f"{role}_popularity_hr_at_10"] == side.served.popularity_hr_at_10
    assert side_columns(None, None)["target_popularity_hr_at_10"] is None


def write_cells(out: Path, weak_seeds: set[int], with_rates: bool = True) -> None:
    """Two seeds of the CELLS grid and ML-1M LFM -> ML-1M ItemCF (so the ML-1M LFM shadow
    serves two cells), dlmia only; the ML-1M LFM side's recommender is at popularity's HR@10 on
    `weak_seeds`, the Digital Music NCF side's and popularity's are both 0 (too sparse to tell),
    every other side's three times popularity's."""
    for seed in (0, 1):
        for shadow, target in [*CELLS, (("ml-1m", "lfm"), ("ml-1m", "itemcf"))]:
            scores = fake_scores(0.3, seed=seed)
            row = fake_row("g", shadow, target, "dlmia", seed, scores)
            for role, side in (("shadow", shadow), ("target", target)):
                weak = side == ("ml-1m", "lfm") and seed in weak_seeds
                sparse = side == ("amazon-digital-music", "ncf")
                if with_rates:
                    row[f"{role}_popularity_hr_at_10"] = 0.0 if sparse else 0.05
                    row[f"{role}_hr_at_10"] = 0.0 if sparse else 0.05 if weak else 0.15
            write_result(out, row, scores)


def test_the_table_counts_a_side_once_per_seed_and_warns_on_a_weak_one(tmp_path: Path) -> None:
    write_cells(tmp_path, weak_seeds={0})
    table = side_quality_table(load_results(tmp_path))
    shadow_lfm = table[(table["role"] == "shadow") & (table["recommender"] == "lfm")]
    assert len(table) == 6  # ItemCF, LFM, NCF in each role
    # two cells, two seeds: its one weak seed counts once
    assert shadow_lfm[["seeds", "seeds_at_or_below_popularity"]].values.tolist() == [[2, 1]]
    assert shadow_lfm["hr_at_10"].item() == pytest.approx(0.10)  # mean of 0.05 and 0.15
    target_lfm = table[(table["role"] == "target") & (table["recommender"] == "lfm")]
    assert target_lfm["seeds_at_or_below_popularity"].item() == 1
    music = table[table["dataset"] == "amazon-digital-music"]
    assert music["seeds_unmeasured"].tolist() == [2, 2]  # both 0: not counted as weak
    assert music["seeds_at_or_below_popularity"].tolist() == [0, 0]
    lines = side_quality_lines(table)
    warnings = [line for line in lines if line.startswith("warning:")]
    assert len(warnings) == 1  # shadows only: a weak target is in the table
    assert warnings[0].startswith(
        "warning: shadow ML-1M:LFM recommends no better than popularity on 1 of 2 seed(s)"
    )
    assert "carries to a target by chance" in warnings[0]


def test_results_without_the_measurement_have_no_side_table(tmp_path: Path) -> None:
    write_cells(tmp_path, weak_seeds=set(), with_rates=False)
    table = side_quality_table(load_results(tmp_path))
    assert table.empty and side_quality_lines(table) == []


def test_the_paper_report_names_a_weak_shadow(tmp_path: Path) -> None:
    """A cell whose shadow did not beat popularity on some seed is explained by its shadow,
    before the cross-dataset protocol; the other cells keep their reasons."""
    from analysis.paper_report import cell_table

    write_cells(tmp_path, weak_seeds={1})
    frame = load_results(tmp_path)
    cells = cell_table(frame.assign(family="general", balanced_accuracy=0.01))  # all far off
    reasons = {(shadow, target): reason for shadow, target, reason in zip(
        cells["shadow_recommender"], cells["target_recommender"], cells["dlmia_reason"],
        strict=True)}  # fmt: skip
    for target in ("itemcf", "ncf"):  # the two cells the ML-1M LFM shadow serves
        assert reasons["lfm", target] == (
            "shadow: its recommender is no better than popularity on some seed "
            "(mean HR@10 0.100 against 0.050)"
        )
    assert reasons["ncf", "lfm"].startswith("protocol:")  # Music NCF (both 0) -> ML-1M LFM
    assert reasons["itemcf", "itemcf"].startswith("settings:")


def test_the_html_report_shows_the_sides_and_warns(tmp_path: Path) -> None:
    from analysis.html import quality_section

    write_cells(tmp_path, weak_seeds={0})
    section = quality_section(load_results(tmp_path))
    assert section.startswith("<h2>Recommenders against popularity</h2><table>")
    assert section.count("<p class=warn>") == 1
    assert "shadow ML-1M:LFM recommends no better than popularity on 1 of 2 seed(s)" in section
    write_cells(tmp_path / "old", weak_seeds=set(), with_rates=False)
    assert quality_section(load_results(tmp_path / "old")) == ""
