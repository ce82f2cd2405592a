"""DL-MIA's search space as grid files write it, and its translation to Tune domains.

An entry is `setting: {kind: args}` with kind `choice` (a list of values), `uniform` or
`loguniform` ([low, high]) or `randint` ([low, high), integers). The head mixing is searched as
`alpha` and `beta` independently; a trial whose alpha + beta exceeds 1 gets beta = 1 - alpha
(a fixed, documented map, so every sampled point is a valid DL-MIA setting).
"""

from __future__ import annotations

import math
from typing import Any

from dlmia import config as cfg
from dlmia.attacks.dlmia import DLMIAConfig
from dlmia.errors import ConfigError

KINDS = ("choice", "uniform", "loguniform", "randint")


def default_space() -> dict[str, Any]:
    """Latent sizes, KL weights (log), alignment weight (with 0), estimator settings (tau, period,
    lambda_w), the per-side norm feature, head mixing and learning rate; DL-MIA's defaults lie
    inside every range."""
    return {
        "latent_inv": {"choice": [8, 16, 32]},
        "latent_spe": {"choice": [8, 16, 32]},
        "kl_inv": {"loguniform": [1e-4, 1e-1]},
        "kl_spe": {"loguniform": [1e-4, 1e-1]},
        "lambda_align": {"choice": [0.0, 0.1, 1.0, 3.0, 10.0]},
        "tau": {"uniform": [0.6, 0.99]},
        "period": {"choice": [2, 5, 10]},
        "lambda_w": {"loguniform": [0.1, 10.0]},
        "norm_feature": {"choice": ["off", "pooled", "side"]},
        "alpha": {"uniform": [0.0, 0.5]},
        "beta": {"uniform": [0.0, 0.8]},
        "lr": {"loguniform": [1e-4, 1e-2]},
    }


def check_space(space: dict[str, Any], where: str = "space") -> None:
    """Raise ConfigError naming the first bad entry of `space` and what is allowed (no Ray)."""
    known = {name for name in DLMIAConfig.__dataclass_fields__}
    for name, spec in space.items():
        if name not in known:
            allowed = ", ".join(sorted(known))
            raise ConfigError(f"{where}.{name}: not a DL-MIA setting; allowed: {allowed}")
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
        for value in args if kind == "choice" else (args[0], highest(kind, args)):
            check_value(f"{where}.{name}.{kind}", name, value)


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


def check_value(where: str, name: str, value: Any) -> None:
    """Refuse a value of the space that is no valid DL-MIA setting (e.g. tau 2, latent size -4)."""
    try:
        settings_of({name: value}, {})
    except ConfigError as exc:
        raise ConfigError(f"{where}: {value!r} is not a valid {name} ({exc})") from None


def build_space(space: dict[str, Any]) -> dict[str, Any]:
    """Tune domains for a valid `space` (see `check_space`)."""
    from ray import tune as ray_tune

    check_space(space)
    domains = {}
    for name, spec in space.items():
        ((kind, args),) = spec.items()
        domain = ray_tune.choice(args) if kind == "choice" else getattr(ray_tune, kind)(*args)
        domains[name] = domain
    return domains


def nearest(spec: dict[str, Any], value: Any) -> Any:
    """The point of space entry `spec` (`{kind: args}`, validated) nearest to `value`: `value`
    itself when the entry holds it; else the first choice, or `value` clipped into the range."""
    kind, args = next(iter(spec.items()))
    if kind == "choice":
        return value if value in args else args[0]
    return min(max(value, args[0]), highest(kind, args))


def start_point(space: dict[str, Any], defaults: dict[str, Any]) -> dict[str, Any]:
    """The first trial's values: DL-MIA's defaults, each moved to the nearest point of its entry
    when the space leaves it out."""
    return {key: nearest(spec, defaults[key]) for key, spec in space.items()}


def settings_of(sampled: dict[str, Any], fixed: dict[str, Any]) -> DLMIAConfig:
    """A trial's DL-MIA settings: defaults < `fixed` < `sampled` (beta capped at 1 - alpha)."""
    merged = {**fixed, **sampled}
    alpha = merged.get("alpha", DLMIAConfig.alpha)
    beta = merged.get("beta", DLMIAConfig.beta)
    if alpha + beta > 1:
        merged["beta"] = 1.0 - alpha
    return cfg.build(DLMIAConfig, merged, "search")
