"""The paper's heatmap numbers (DL-MIA, KDD 2022, 72 cells) in our names, and ours beside them.

`paper_heatmap.csv` ships inside the package. Its `auc_biased` / `auc_dlmia` are what the paper
calls "AUC" but are balanced accuracies at threshold 0.5 (method.md section 7), so they are only
ever compared with our `balanced_accuracy`, never with `roc_auc`.
"""

from __future__ import annotations

from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import pandas as pd

from analysis.results import aggregate, ordered_attacks
from dlmia.metrics import LOW_FPR_POINTS
from dlmia.schema import SETTING_COLUMNS, SIDE_COLUMNS

#: The paper's dataset and recommender names -> ours.
PAPER_NAMES: dict[str, str] = {
    "DigitalMusic": "amazon-digital-music",
    "ML-1M": "ml-1m",
    "Beauty": "amazon-beauty",
    "ItemBase": "itemcf",
    "LFM": "lfm",
    "NCF": "ncf",
    "BERT4Rec": "bert4rec",
    "Caser": "caser",
    "GRU4Rec": "gru4rec",
}
#: Our names -> short labels for plots and tables (other names are shown as they are).
LABELS: dict[str, str] = {
    "ml-1m": "ML-1M",
    "amazon-digital-music": "Music",
    "amazon-beauty": "Beauty",
    "itemcf": "ItemCF",
    "lfm": "LFM",
    "ncf": "NCF",
    "bert4rec": "BERT4Rec",
    "caser": "Caser",
    "gru4rec": "GRU4Rec",
    "popularity": "Pop",
    "biased": "Biased",
    "dlmia": "DL-MIA",
    "norm": "norm",
    "list-frequency": "list-freq",
    "reference": "Reference",
    "own-hits": "own-hits",
}


@dataclass(frozen=True)
class Family:
    """A block of the paper's grid: every (dataset, recommender) side crossed with every other."""

    name: str  # "general" or "sequential"
    datasets: tuple[str, ...]  # our dataset names, in axis order
    recommenders: tuple[str, ...]  # our recommender names, in axis order

    @property
    def sides(self) -> list[tuple[str, str]]:
        """(dataset, recommender) pairs in axis order, dataset-major."""
        return [(d, r) for d in self.datasets for r in self.recommenders]


FAMILIES: tuple[Family, ...] = (
    Family("general", ("ml-1m", "amazon-digital-music"), ("itemcf", "lfm", "ncf")),
    Family("sequential", ("ml-1m", "amazon-beauty"), ("bert4rec", "caser", "gru4rec")),
)


def label(name: str) -> str:
    """Short display label of a dataset, recommender or attack name (a file: its name)."""
    return LABELS.get(name, Path(name).name if "/" in name else name)


def family_of(shadow: tuple[str, str], target: tuple[str, str]) -> Family | None:
    """The paper family whose 6x6 panel holds the cell (shadow side, target side), if any."""
    for family in FAMILIES:
        if shadow in family.sides and target in family.sides:
            return family
    return None


def paper_table() -> pd.DataFrame:
    """The paper's 72 cells: `family`, our four side columns, `auc_biased`, `auc_dlmia`.

    The two values are the paper's "AUC", i.e. balanced accuracies.
    """
    with resources.files("analysis").joinpath("paper_heatmap.csv").open() as handle:
        raw = pd.read_csv(handle)
    table = pd.DataFrame({"family": raw["family"]})
    for role in ("shadow", "target"):
        table[f"{role}_dataset"] = raw[f"{role}_dataset"].map(PAPER_NAMES)
        table[f"{role}_recommender"] = raw[f"{role}_rec"].map(PAPER_NAMES)
    table[["auc_biased", "auc_dlmia"]] = raw[["auc_biased", "auc_dlmia"]].astype("float64")
    return table


#: The metrics of every result the comparison table carries (mean and std over seeds).
COMPARED: tuple[str, ...] = (
    "balanced_accuracy", "roc_auc", "roc_auc_low", "roc_auc_high",
    *(f"tpr_at_{point}_fpr{end}" for point, _ in LOW_FPR_POINTS for end in ("", "_low", "_high")),
    "n_nonmembers",
)  # fmt: skip


def compare_with_paper(frame: pd.DataFrame) -> pd.DataFrame:
    """Our cells (rows of `load_results`) beside the paper's numbers, one row per (grid, cell).

    Columns: `grid`, `nonmember_lists`, `vectors_fit_on`, the four side columns, `family` (NA
    outside the paper's grid), then per attack present `<attack>_n_seeds`, `<attack>_n_failed`,
    `<attack>_<metric>_mean/_std` of each of `COMPARED` (balanced accuracy, ROC AUC and its
    interval, TPR at 1%, 0.1% and 0% FPR with their exact intervals, the non-members behind
    them), then `paper_biased_balanced_accuracy` and `paper_dlmia_balanced_accuracy` (the
    paper's "AUC" of each attack; NA outside its grid).
    """
    per_attack = aggregate(frame, COMPARED)
    keys = [*SETTING_COLUMNS, *SIDE_COLUMNS]
    values = [c for c in per_attack.columns if c not in (*keys, "attack")]
    for column in (*keys, "attack"):
        per_attack[column] = per_attack[column].astype(str)
    wide = per_attack.pivot(index=keys, columns="attack", values=values)
    attacks = ordered_attacks(per_attack["attack"])
    order = [(value, attack) for attack in attacks for value in values]
    wide = wide[order]
    wide.columns = [f"{attack}_{value}" for value, attack in order]
    for attack in attacks:
        counts = [f"{attack}_n_seeds", f"{attack}_n_failed"]
        wide[counts] = wide[counts].fillna(0).astype("int64")
    renamed = {f"auc_{a}": f"paper_{a}_balanced_accuracy" for a in ("biased", "dlmia")}
    paper = paper_table().rename(columns=renamed)
    table = wide.reset_index().merge(paper, on=list(SIDE_COLUMNS), how="left")
    return table[[*keys, "family", *wide.columns, *renamed.values()]]
