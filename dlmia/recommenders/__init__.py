"""The recommenders, by name. Add a model with one entry in `RECOMMENDERS` (and its import)."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlmia.config import build
from dlmia.errors import ConfigError
from dlmia.recommenders.base import Recommender
from dlmia.recommenders.bert4rec import BERT4Rec
from dlmia.recommenders.caser import Caser
from dlmia.recommenders.gru4rec import GRU4Rec
from dlmia.recommenders.itemcf import ItemCF
from dlmia.recommenders.lfm import LFM
from dlmia.recommenders.ncf import NCF
from dlmia.recommenders.popularity import Popularity

RECOMMENDERS: dict[str, type[Recommender]] = {
    "popularity": Popularity,
    "itemcf": ItemCF,
    "lfm": LFM,
    "ncf": NCF,
    "gru4rec": GRU4Rec,
    "caser": Caser,
    "bert4rec": BERT4Rec,
}


def make_recommender(
    name: str, settings: Mapping[str, Any] | None = None, *, device: str = "auto", seed: int = 0
) -> Recommender:
    """An unfitted recommender `name` with `settings` applied over its defaults.

    Raises:
        ConfigError: unknown name (the message lists the known ones) or a bad setting (the
            message names the key as `recommender.<name>.<key>`).
    """
    config = recommender_config(name, settings)  # checks the name first
    return RECOMMENDERS[name](config, device=device, seed=seed)


def recommender_config(name: str, settings: Mapping[str, Any] | None = None) -> Any:
    """The settings of recommender `name`: `settings` checked and applied over its defaults
    (cheap: lets a run refuse bad settings before any training).

    Raises:
        ConfigError: as `make_recommender`.
    """
    if name not in RECOMMENDERS:
        raise ConfigError(
            f"recommender {name!r} is unknown; use one of {', '.join(sorted(RECOMMENDERS))}"
        )
    return build(RECOMMENDERS[name].Config, settings, where=f"recommender.{name}")


__all__ = ["RECOMMENDERS", "Recommender", "make_recommender", "recommender_config"]
