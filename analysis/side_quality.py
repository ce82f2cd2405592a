"""How well each side's recommender recommends, beside popularity: the floor it must beat.

Every side reports the HR@10 of its recommender on its non-members' next item and, on the same
users, the HR@10 of popularity counted over the same members (`dlmia.sides.serve_lists`). A side
whose recommender is no better than popularity serves its members lists much like anyone's:

- as a **target**, it leaks little by construction, so a low ROC AUC there says little about
  the attack;
- as a **shadow**, it shows the attack members and non-members it can hardly tell apart, so
  what the attack learns there carries to a target by chance: the cells it shadows can land far
  apart across seeds (measured: Amazon Beauty BERT4Rec, HR@10 0.012-0.023 against popularity's
  0.015, shadowing ML-1M Caser gave DL-MIA 0.015-0.978 ROC AUC over five seeds;
  bench/results/side_cells/beauty-bert4rec-cross.txt).

The table is per side (role, dataset, recommender), one seed's side counted once however many
cells share it.
"""

from __future__ import annotations

import pandas as pd

from analysis.paper import label

ROLES = ("shadow", "target")
COLUMNS = ("role", "dataset", "recommender", "seeds", "hr_at_10", "popularity_hr_at_10",
           "seeds_at_or_below_popularity")  # fmt: skip


def side_quality_table(frame: pd.DataFrame) -> pd.DataFrame:
    """Per side of the finished rows of a results frame: the seeds measured, the mean HR@10 of
    its recommender and of popularity, and how many seeds' recommender did not beat popularity.
    Sides without the measurement (results written before it existed) are left out."""
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
    sides["at_or_below"] = sides["hr_at_10"] <= sides["popularity_hr_at_10"]
    table = sides.groupby(["role", "dataset", "recommender"], sort=False).agg(
        seeds=("seed", "nunique"),
        hr_at_10=("hr_at_10", "mean"),
        popularity_hr_at_10=("popularity_hr_at_10", "mean"),
        seeds_at_or_below_popularity=("at_or_below", "sum"),
    )
    return table.reset_index()[list(COLUMNS)]


def shown_table(table: pd.DataFrame) -> pd.DataFrame:
    """The table for a reader: one row per side, numbers as short strings."""
    sides = zip(table["role"], table["dataset"], table["recommender"], strict=True)
    return pd.DataFrame({
        "side": [f"{role} {label(dataset)}:{label(recommender)}"
                 for role, dataset, recommender in sides],
        "seeds": table["seeds"].astype(str),
        "HR@10": table["hr_at_10"].map("{:.3f}".format),
        "popularity HR@10": table["popularity_hr_at_10"].map("{:.3f}".format),
        "seeds <= popularity": table["seeds_at_or_below_popularity"].astype(str),
    })  # fmt: skip


def weak_side_warnings(table: pd.DataFrame) -> list[str]:
    """One sentence per side that did not beat popularity on some seed: what that means for
    its role (the module doc)."""
    sentences = []
    for row in table[table["seeds_at_or_below_popularity"] > 0].itertuples(index=False):
        side = f"{row.role} {label(str(row.dataset))}:{label(str(row.recommender))}"
        meaning = (
            "the cells it shadows rest on chance and can land far apart across seeds"
            if row.role == "shadow"
            else "its members' lists look like anyone's, so it leaks little by construction"
        )
        sentences.append(f"{side} recommends no better than popularity on "
                         f"{row.seeds_at_or_below_popularity} of {row.seeds} seed(s): {meaning}")
    return sentences


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
