"""The membership-inference attacks, by name: an explicit registry, not a lookup by file name."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dlmia.attacks.base import Attack
from dlmia.attacks.baselines import ListFrequencyAttack, NormAttack
from dlmia.attacks.biased import BiasedAttack, BiasedConfig
from dlmia.attacks.dlmia import DLMIAAttack
from dlmia.config import build
from dlmia.errors import ConfigError

__all__ = ["ATTACKS", "Attack", "BiasedAttack", "BiasedConfig", "make_attack"]

ATTACKS: dict[str, type[Attack]] = {
    "biased": BiasedAttack,
    "dlmia": DLMIAAttack,
    "norm": NormAttack,  # training-free: -|d_u|
    "list-frequency": ListFrequencyAttack,  # training-free: rarity of the list's items
}


def make_attack(
    name: str, settings: Mapping[str, Any] | None = None, *, device: str = "auto", seed: int = 0
) -> Attack:
    """The attack called `name`, with `settings` (keys of its Config) over the defaults.

    Raises:
        ConfigError: unknown attack name, or a bad key or value (named `attack.<name>.<key>`).
    """
    if name not in ATTACKS:
        raise ConfigError(f"attack {name!r} is unknown; known attacks are {', '.join(ATTACKS)}")
    attack_cls = ATTACKS[name]
    config = build(attack_cls.Config, settings, where=f"attack.{name}")
    return attack_cls(config, device=device, seed=seed)
