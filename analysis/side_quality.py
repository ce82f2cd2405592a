"""How well each side's recommender recommends, beside popularity: the floor it must beat.

Every side reports the HR@10 of its recommender on its non-members' next item and, on the same
users, the HR@10 of popularity counted over the same members (`dlmia.sides.serve_lists`). Per
side and seed the table says whether the recommender beat popularity, did not (popularity found
some next items, the recommender no more), or could not be told (neither found any: on Amazon
Digital Music, ~1.3 interactions per item, both are 0).

Why it matters for a **shadow**: a recommender no better than popularity may serve its members
lists much like everyone's, and then the attack learns from members and non-members it can
hardly tell apart, so what carries to a target is chance. Measured: Amazon Beauty BERT4Rec (HR@10
0.012-0.023, popularity 0.015) shadowing ML-1M Caser gave DL-MIA 0.015-0.978 ROC AUC over five
seeds, where a Beauty Caser shadow (~1.8x popularity) gave 0.973 +- 0.010
(bench/results/side_cells/beauty-bert4rec-cross.txt). It is a warning, not a verdict: under the
paper's policy non-members get the popular list, so a recommender that finds few next items but
lists other items than the popular ones still sets its members apart (Digital Music's cells).

The table is per side (role, dataset, recommender), one seed's side counted once however many
cells share it.
"""

from __future__ import annotations

import pandas as pd

from analysis.paper import label

ROLES = ("shadow", "target")
COLUMNS = ("role", "dataset", "recommender", "seeds", "hr_at_10", "popularity_hr_at_10",
           "seeds_at_or_below_popularity", "seeds_unmeasured")  # fmt: skip


def at_or_below_popularity(hr: pd.Series, popularity: pd.Series) -> pd.Series:
    """Per row: popularity found some next items and the recommender no more."""
    return (hr <= popularity) & (popularity > 0)


def side_quality_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per side of the finished rows of a results frame: the seeds measured, the mean HR@10 of
    its recommender and of popularity, how many seeds' recommender did not beat popularity, and
    on how many neither found a next item. Sides without the measurement (results written
    before it existed) are left out."""
    finished = frame[frame["status"] == "ok"]
    parts = []
    for role in ROLES:
        names = {f"{role}_{fact}": fact for fact in ("dataset", "recommender", "hr_at_10",
                                                    "popularity_hr_at_10")}  # fmt: skip
        part = finished[[*names, "seed"]].rename(columns=names).dropna()
        part = part.astype({"dataset": str, "recommender": str})
        parts.append(part.drop_duplicates(["dataset", "recommender", "seed"]).assign(role=role))
    sides = pd.concat(parts, ignore_index=True)
    if sides.empty:
        return pd.DataFrame(columns=list(COLUMNS))
    hr, popularity = sides["hr_at_10"], sides["popularity_hr_at_10"]
    sides["at_or_below"] = at_or_below_popularity(hr, popularity)
    sides["unmeasured"] = (hr == 0) & (popularity == 0)
    table = sides.groupby(["role", "dataset", "recommender"], sort=False).agg(
        seeds=("seed", "nunique"),
        hr_at_10=("hr_at_10", "mean"),
        popularity_hr_at_10=("popularity_hr_at_10", "mean"),
        seeds_at_or_below_popularity=("at_or_below", "sum"),
        seeds_unmeasured=("unmeasured", "sum"),
    )
    return table.reset_index()[list(COLUMNS)]


def side_name(role: object, dataset: object, recommender: object) -> str:
    """A side as a reader sees it: `shadow ML-1M:LFM`."""
    return f"{role} {label(str(dataset))}:{label(str(recommender))}"


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table for a reader: one row per side, numbers as short strings."""
    sides = zip(table["role"], table["dataset"], table["recommender"], strict=True)
    return pd.DataFrame({
        "side": [side_name(*side) for side in sides],
        "seeds": table["seeds"].astype(str),
        "HR@10": table["hr_at_10"].map("{:.3f}".format),
        "popularity HR@10": table["popularity_hr_at_10"].map("{:.3f}".format),
        "seeds <= popularity": table["seeds_at_or_below_popularity"].astype(str),
        "seeds both 0": table["seeds_unmeasured"].astype(str),
    })  # fmt: skip


def weak_side_warnings(table: pd.DataFrame) -> list[str]:
    """One sentence per shadow that did not beat popularity on some seed (the module doc)."""
    weak = table[(table["role"] == "shadow") & (table["seeds_at_or_below_popularity"] > 0)]
    return [
        f"{side_name(row.role, row.dataset, row.recommender)} recommends no better than "
        f"popularity on {row.seeds_at_or_below_popularity} of {row.seeds} seed(s): its "
        "members' lists may differ little from its non-members', and then what an attack learns "
        "there carries to a target by chance (compare its cells across seeds)"
        for row in weak.itertuples(index=False)
    ]


def side_quality_lines(table: pd.DataFrame) -> list[str]:
    """The table and its warnings as report lines; [] for an empty table."""
    if table.empty:
        return []
    return [
        "", "recommender quality per side (HR@10 of non-members' next item; popularity counted "
        "over the same members):", shown_table(table).to_string(index=False),
        *(f"warning: {sentence} (analysis/side_quality.py)"
          for sentence in weak_side_warnings(table)),
    ]  # fmt: skip
