"""The membership-inference attacks, by name: an explicit registry, not a lookup by file name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlmia.attacks.base import Attack
from dlmia.attacks.baselines import ListFrequencyAttack, NormAttack, OwnHitsAttack
from dlmia.attacks.biased import BiasedAttack, BiasedConfig
from dlmia.attacks.dlmia import DLMIAAttack
from dlmia.attacks.reference import ReferenceAttack
from dlmia.config import build
from dlmia.errors import ConfigError

__all__ = ["ATTACKS", "Attack", "BiasedAttack", "BiasedConfig", "attack_config", "make_attack"]

ATTACKS: dict[str, type[Attack]] = {
    "biased": BiasedAttack,
    "dlmia": DLMIAAttack,
    "norm": NormAttack,  # training-free: -|d_u|
    "list-frequency": ListFrequencyAttack,  # training-free: rarity of the list's items
    "own-hits": OwnHitsAttack,  # training-free: the user's own items handed back, by rank
    "reference": ReferenceAttack,  # a list statistic calibrated per user by reference models
}


def make_attack(
    name: str, settings: Mapping[str, Any] | None = None, *, device: str = "auto", seed: int = 0
) -> Attack:
    """The attack called `name`, with `settings` (keys of its Config) over the defaults.

    Raises:
        ConfigError: unknown attack name, or a bad key or value (named `attack.<name>.<key>`).
    """
    config = attack_config(name, settings)  # checks the name first
    return ATTACKS[name](config, device=device, seed=seed)


def attack_config(name: str, settings: Mapping[str, Any] | None = None) -> Any:
    """The settings of attack `name`: `settings` checked and applied over its defaults (cheap:
    lets a run refuse bad settings before any training).

    Raises:
        ConfigError: as `make_attack`.
    """
    if name not in ATTACKS:
        raise ConfigError(f"attack {name!r} is unknown; known attacks are {', '.join(ATTACKS)}")
    return build(ATTACKS[name].Config, settings, where=f"attack.{name}")
