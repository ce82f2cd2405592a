"""Which users an attack exposes most: members found at a low FPR, by history length and by how
popular their items are.

An attack's threshold at 1% FPR (the most non-members it may call members: 1% of them) finds some
members and misses others. Splitting the scored users into quantiles of history length and of
the mean popularity of their items, and counting per quantile the share of members found there,
says who pays for a leak: heavy users, whose lists hand back more of their history, or users of
niche items, whose lists only a model that trained on them would hold.
"""

from __future__ import annotations

import json
import math

import numpy as np
import numpy.typing as npt
import pandas as pd

from dlmia import config as cfg
from dlmia.cell import cached_dataset
from dlmia.data.histories import Histories
from dlmia.sides import DatasetSpec

QUANTILES = 4  # groups of scored users per trait


def threshold_at(scores: npt.NDArray[np.float64], labels: npt.NDArray[np.int64],
                 fpr: float) -> float:  # fmt: skip
    """The lowest score above which at most `floor(fpr x non-members)` non-members lie: users
    scored strictly above it are called members."""
    negatives = np.sort(scores[labels == 0])[::-1]
    allowed = math.floor(fpr * len(negatives) + 1e-9)
    return float(negatives[allowed]) if allowed < len(negatives) else -math.inf


def user_traits(histories: Histories, users: npt.NDArray[np.int64]) -> pd.DataFrame:
    """Per scored user: history length and the mean popularity (share of all users holding it)
    of the items in their history."""
    popularity = np.bincount(histories.items, minlength=histories.n_items) / histories.n_users
    rows = histories.rows(users)
    item_popularity = np.bincount(rows.row_of_entries(), weights=popularity[rows.items],
                                  minlength=rows.n_users)  # fmt: skip
    lengths = rows.lengths
    return pd.DataFrame({
        "history_length": lengths,
        "item_popularity": np.divide(item_popularity, lengths, out=np.zeros(len(lengths)),
                                     where=lengths > 0),
    })  # fmt: skip


def exposure_table(scores: pd.DataFrame, histories: Histories, fpr: float = 0.01) -> pd.DataFrame:
    """Per trait and quantile of the scored users: the users, the members, and the share of the
    members found at `fpr` (`scores`: user, label, score as `scores/<cell>.parquet` holds).

    The quantiles are of all scored users, so each holds about as many users whatever their
    membership; a quantile with many members found is where the leak concentrates.
    """
    values = scores["score"].to_numpy(dtype=np.float64)
    labels = scores["label"].to_numpy(dtype=np.int64)
    found = values > threshold_at(values, labels, fpr)
    traits = user_traits(histories, scores["user"].to_numpy(dtype=np.int64))
    rows = []
    for trait in traits.columns:
        groups = pd.qcut(traits[trait].rank(method="first"), QUANTILES, labels=False)
        for quantile in range(QUANTILES):
            members = (groups == quantile).to_numpy() & (labels == 1)
            rows.append({
                "trait": trait,
                "quantile": quantile + 1,
                "range": f"{traits[trait][groups == quantile].min():.3g}-"
                         f"{traits[trait][groups == quantile].max():.3g}",
                "users": int((groups == quantile).sum()),
                "members": int(members.sum()),
                f"members_found_at_{fpr:.0%}_fpr": float(found[members].mean())
                if members.any() else math.nan,
            })  # fmt: skip
    return pd.DataFrame(rows)


def target_histories(config_json: str) -> Histories:
    """The histories of the target dataset a result row's `config` (JSON) names: the users its
    scores file lists are rows of them."""
    values = json.loads(config_json)["target"]["dataset"]
    spec = cfg.build(DatasetSpec, values, where="config.target.dataset")
    return cached_dataset(spec).histories


def ranking_table(scores: pd.DataFrame, histories: Histories, top: float = 0.05) -> pd.DataFrame:
    """Without labels: per trait and quantile of the scored users, how many of them an attack
    ranks in its top `top` share (the users it would flag first)."""
    values = scores["score"].to_numpy(dtype=np.float64)
    flagged = values >= np.quantile(values, 1 - top)
    traits = user_traits(histories, scores["user"].to_numpy(dtype=np.int64))
    rows = []
    for trait in traits.columns:
        groups = pd.qcut(traits[trait].rank(method="first"), QUANTILES, labels=False)
        for quantile in range(QUANTILES):
            inside = (groups == quantile).to_numpy()
            rows.append({
                "trait": trait, "quantile": quantile + 1,
                "range": f"{traits[trait][inside].min():.3g}-{traits[trait][inside].max():.3g}",
                "users": int(inside.sum()),
                f"in_top_{top:.0%}": float(flagged[inside].mean()),
            })  # fmt: skip
    return pd.DataFrame(rows)
