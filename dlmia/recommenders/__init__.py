"""The recommenders, by name. Add a model with one entry in `RECOMMENDERS` (and its import).

Wherever a recommender name is accepted, `module:Class` names a class of your own instead: a
subclass of `Recommender` (fit on member histories, score histories over the catalogue) with a
`Config` dataclass of its settings, importable where the run happens (your working folder is
on the path), e.g. `examples.als:ALS`.
"""

from __future__ import annotations

import dataclasses
import importlib
import inspect
import os
import re
import sys
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
    return recommender_class(name)(config, device=device, seed=seed)


def recommender_config(name: str, settings: Mapping[str, Any] | None = None) -> Any:
    """The settings of recommender `name`: `settings` checked and applied over its defaults
    (cheap: lets a run refuse bad settings before any training).

    Raises:
        ConfigError: as `make_recommender`.
    """
    return build(recommender_class(name).Config, settings, where=f"recommender.{name}")


#: `module:Class`: a dotted module path and a class name.
CLASS_PATH = re.compile(r"[A-Za-z_]\w*(\.[A-Za-z_]\w*)*:[A-Za-z_]\w*")


def recommender_class(name: str) -> type[Recommender]:
    """The class recommender `name` names: a registry name, or `module:Class`.

    Raises:
        ConfigError: an unknown name, a module that does not import, a missing class, or a class
            that does not implement the `Recommender` interface (one line each).
    """
    if name in RECOMMENDERS:
        return RECOMMENDERS[name]
    if not CLASS_PATH.fullmatch(name):
        known = ", ".join(sorted(RECOMMENDERS))
        raise ConfigError(
            f"unknown recommender {name!r}; known: {known} (or module:Class for your own)"
        )
    module_name, class_name = name.split(":")
    if os.getcwd() not in sys.path:  # your own module, found where you run (as `python -m`)
        sys.path.append(os.getcwd())
    try:
        module = importlib.import_module(module_name)
    except Exception as exc:  # noqa: BLE001 (any error while importing the user's module)
        raise ConfigError(
            f"recommender {name}: cannot import {module_name} ({type(exc).__name__}: {exc})"
        ) from None
    cls = getattr(module, class_name, None)
    if cls is None:
        raise ConfigError(f"recommender {name}: module {module_name} has no {class_name}")
    check_interface(name, cls)
    return cls


def check_interface(name: str, cls: Any) -> None:
    """Refuse a class that is not a concrete `Recommender` with a settings dataclass."""
    if not (inspect.isclass(cls) and issubclass(cls, Recommender)):
        raise ConfigError(
            f"recommender {name}: {cls!r} is not a subclass of dlmia.recommenders.Recommender "
            "(fit on member histories, score histories over the catalogue)"
        )
    missing = sorted(getattr(cls, "__abstractmethods__", ()))
    if missing:
        raise ConfigError(f"recommender {name}: does not implement {', '.join(missing)}")
    config = getattr(cls, "Config", None)
    if not (inspect.isclass(config) and dataclasses.is_dataclass(config)):
        raise ConfigError(f"recommender {name}: needs a `Config` dataclass of its settings")


__all__ = [
    "RECOMMENDERS", "Recommender", "make_recommender", "recommender_class", "recommender_config",
]
