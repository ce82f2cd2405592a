"""A search space as grid files write it, checked against an attack's settings, and as Optuna
distributions.

An entry is `setting: {kind: args}` with kind `choice` (a list of values), `uniform` or
`loguniform` ([low, high]) or `randint` ([low, high), integers). Each searchable attack declares
its default space (`dlmia.attacks.base.Attack.search_space`); a grid's `space:` replaces it, and
the settings a grid fixes are not searched. Every value of a space must make valid settings
with the fixed ones (`settings_of`, which lets the attack map a sampled point it cannot run to
one it can). A searched cell builds the largest reference pool any of its trials needs
(`largest_pool`: the reference attack's R up to the largest R searched), and every trial must
need a pool of that kind (a search keeps the variant).
"""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import optuna

from dlmia import config as cfg
from dlmia.attacks import ATTACKS, attack_config
from dlmia.attacks.base import PoolRequest
from dlmia.errors import ConfigError

KINDS = ("choice", "uniform", "loguniform", "randint")


def default_space(attack: str, fixed: dict[str, Any]) -> dict[str, Any] | None:
    """The space attack `attack` declares around its `fixed` settings (None: not searchable)."""
    return ATTACKS[attack].search_space(attack_config(attack, fixed))


def check_space(
    space: dict[str, Any], attack: str, fixed: dict[str, Any], where: str = "space"
) -> None:
    """Raise ConfigError naming the first bad entry of `space` (for attack `attack` with its
    `fixed` settings) and what is allowed."""
    known = {field.name for field in dataclasses.fields(ATTACKS[attack].Config)}
    for name, spec in space.items():
        if name not in known:
            allowed = ", ".join(sorted(known))
            raise ConfigError(f"{where}.{name}: not a setting of {attack}; allowed: {allowed}")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
            kinds = ", ".join(KINDS)
            raise ConfigError(f"{where}.{name}: expected one of {{{kinds}: ...}}, got {spec!r}")
        kind, args = next(iter(spec.items()))
        if not isinstance(args, list) or not args or (kind != "choice" and len(args) != 2):
            raise ConfigError(
                f"{where}.{name}.{kind}: expected a list ([low, high] for ranges), got {args!r}"
            )
        if kind != "choice":
            check_bounds(f"{where}.{name}.{kind}", kind, args)
        for value in extremes(spec):
            check_value(f"{where}.{name}.{kind}", attack, {name: value}, fixed)
    if len({pool.online for pool in pools(attack, space, fixed)}) > 1:
        raise ConfigError(
            f"{where}: its trials would need both an online and an offline reference pool; a "
            "cell builds one: fix `variant` in the attack's settings"
        )


def check_bounds(where: str, kind: str, args: list[Any]) -> None:
    """A range's [low, high]: finite numbers (integers for randint), low < high (0 < low for
    loguniform)."""
    number = int if kind == "randint" else (int, float)
    if not all(isinstance(v, number) and not isinstance(v, bool) and math.isfinite(v)
               for v in args):
        kinds = "integers" if kind == "randint" else "finite numbers"
        raise ConfigError(f"{where}: low and high must be {kinds}, got {args!r}")
    if kind == "loguniform" and not 0 < args[0] < args[1]:
        raise ConfigError(f"{where}: need 0 < low < high, got {args!r}")
    if not args[0] < args[1]:
        raise ConfigError(f"{where}: need low < high, got {args!r}")


def highest(kind: str, args: list[Any]) -> Any:
    """The largest value a range entry can sample (randint excludes its high)."""
    return args[1] - 1 if kind == "randint" else args[1]


def extremes(spec: dict[str, Any]) -> list[Any]:
    """Every choice of a `choice` entry; a range's lowest and highest value."""
    kind, args = next(iter(spec.items()))
    return list(args) if kind == "choice" else [args[0], highest(kind, args)]


def check_value(where: str, attack: str, point: dict[str, Any], fixed: dict[str, Any]) -> None:
    """Refuse a value of the space that makes no valid setting (e.g. tau 2, latent size -4)."""
    ((name, value),) = point.items()
    try:
        settings_of(attack, point, fixed)
    except ConfigError as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid {name} ({exc})") from None


def pools(attack: str, space: dict[str, Any], fixed: dict[str, Any]) -> list[PoolRequest]:
    """The reference pools the trials of a search of `space` need: each searched setting at
    each of its extremes, the other searched settings at their first value."""
    first = {name: extremes(spec)[0] for name, spec in space.items() if name not in fixed}
    points = [{**first, name: value} for name in first for value in extremes(space[name])]
    return [ATTACKS[attack].pool(settings_of(attack, point, fixed)) for point in points or [{}]]


def largest_pool(attack: str, space: dict[str, Any], fixed: dict[str, Any]) -> PoolRequest:
    """The reference pool a searched cell builds: the largest its trials need."""
    return max(pools(attack, space, fixed), key=lambda pool: pool.size)


def distributions(space: dict[str, Any]) -> dict[str, optuna.distributions.BaseDistribution]:
    """Optuna's distributions for a valid `space` (see `check_space`), in its order."""
    made: dict[str, optuna.distributions.BaseDistribution] = {}
    for name, spec in space.items():
        ((kind, args),) = spec.items()
        if kind == "choice":
            made[name] = optuna.distributions.CategoricalDistribution(args)
        elif kind == "randint":
            made[name] = optuna.distributions.IntDistribution(args[0], args[1] - 1)
        else:
            made[name] = optuna.distributions.FloatDistribution(
                args[0], args[1], log=kind == "loguniform"
            )
    return made


def nearest(spec: dict[str, Any], value: Any) -> Any:
    """The point of space entry `spec` (`{kind: args}`, validated) nearest to `value`: `value`
    itself when the entry holds it; else the first choice, or `value` clipped into the range."""
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        return value if value in args else args[0]
    return min(max(value, args[0]), highest(kind, args))


def start_point(space: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The first trial's values: the attack's defaults, each moved to the nearest point of its
    entry when the space leaves it out."""
    return {key: nearest(spec, defaults[key]) for key, spec in space.items()}


def settings_of(attack: str, sampled: dict[str, Any], fixed: dict[str, Any]) -> Any:
    """A trial's settings of `attack` (its Config): defaults < `fixed` < `sampled`, made valid
    by the attack (`Attack.searched_settings`, e.g. DL-MIA's beta capped at 1 - alpha)."""
    merged = ATTACKS[attack].searched_settings({**fixed, **sampled})
    return cfg.build(ATTACKS[attack].Config, merged, "search")
