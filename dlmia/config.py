"""Strict construction of typed, frozen settings dataclasses from plain mappings.

Every settings object in dlmia is a frozen dataclass with defaults. Grid files, `--set key=value`
options and Tune configs are plain mappings; `build` turns one into a dataclass and refuses
unknown keys and wrong types with a `ConfigError` naming the key path and what is allowed.
Precedence is always: dataclass defaults < grid file < `--set` on the command line.

Every setting also has a domain, which its dataclass checks in `__post_init__` (`check_domain`):
sizes positive and bounded, counts non-negative, seeds in [0, 2**63), numbers finite. A bad value
is therefore refused when the config is built (by `grid validate` too), never after training.
"""

from __future__ import annotations

import dataclasses
import math
import operator
import types
import typing
from collections.abc import Callable, Mapping
from functools import partial
from typing import Any, TypeVar, cast, get_args, get_origin

import yaml

from dlmia import safe_yaml
from dlmia.errors import ConfigError, brief

T = TypeVar("T")

MAX_WIDTH = 4096  # layer widths, embedding and factor sizes, windows (these models use 8-256)
MAX_DEPTH = 64  # stacked layers, attention heads, negatives per interaction
MAX_SAMPLED = 1 << 16  # items sampled per step (negatives of a sampled softmax)
MAX_SEED = 2**63 - 1  # seeds become 63-bit generator seeds; torch takes < 2**64


def build(cls: type[T], values: Mapping[str, Any] | None, where: str = "") -> T:
    """Build dataclass `cls` from `values`, checking every key and type.

    Args:
        cls: a dataclass type whose fields all have defaults or appear in `values`.
        values: the settings to apply over the defaults (None means all defaults).
        where: the key path of `values` in its file, used in error messages (e.g. `attack.dlmia`).
    """
    values = dict(values or {})
    if not isinstance(values, dict):
        got = type(values).__name__
        raise ConfigError(f"{where or cls.__name__}: expected a mapping, got {got}")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls) if f.init}  # type: ignore[arg-type]
    unknown = sorted(set(values) - set(fields))
    if unknown:
        raise ConfigError(
            f"{_path(where, unknown[0])}: unknown key; allowed keys are "
            f"{', '.join(sorted(fields))}"
        )
    kwargs = {
        name: _coerce(hints[name], value, _path(where, name)) for name, value in values.items()
    }
    try:
        return cls(**kwargs)
    except TypeError as exc:  # a required field is missing
        raise ConfigError(f"{where or cls.__name__}: {exc}") from exc
    except ConfigError as exc:  # the dataclass's own check: say where it stands in the file
        message = str(exc)
        if not where or message.startswith(where):
            raise
        named = message.partition(":")[0] in fields  # `field: ...`, as check_domain says it
        raise ConfigError(f"{where}.{message}" if named else f"{where}: {message}") from None


def check_domain(
    config: object,
    *,
    positive: tuple[str, ...] = (),
    non_negative: tuple[str, ...] = (),
    fractions: tuple[str, ...] = (),
    at_most: Mapping[str, float] | None = None,
) -> None:
    """Raise ConfigError (`<setting>: ...`, which `build` puts under the setting's key path)
    unless each named setting of `config` is > 0, >= 0, in [0, 1], or at most its bound: for a
    tuple, every value (and at least one); None (an optional setting left open) passes.

    Every settings dataclass calls this in `__post_init__`, so a value no run could use is
    refused when its config is built.
    """
    rules: list[tuple[tuple[str, ...], Callable[[Any], bool], str]] = [
        (positive, lambda v: v > 0, "> 0"),
        (non_negative, lambda v: v >= 0, ">= 0"),
        (fractions, lambda v: 0 <= v <= 1, "in [0, 1]"),
    ]
    for name, bound in (at_most or {}).items():
        rules.append(((name,), partial(operator.ge, bound), f"<= {bound:,}"))
    for names, holds, rule in rules:
        for name in names:
            value = getattr(config, name)
            values = value if isinstance(value, tuple) else (value,)
            if value is not None and not (values and all(holds(v) for v in values)):
                raise ConfigError(f"{name}: must be {rule}, got {brief(value)}")


def check_seed(config: object, name: str = "seed") -> None:
    """`check_domain` for a seed: an integer in [0, MAX_SEED], or None (the run's seed)."""
    check_domain(config, non_negative=(name,), at_most={name: MAX_SEED})


def replace(obj: T, overrides: Mapping[str, Any], where: str = "") -> T:
    """A copy of dataclass `obj` with `overrides` applied, checked like `build`."""
    merged = {**as_dict(obj), **overrides}
    return build(type(obj), merged, where)


def as_dict(obj: Any) -> dict[str, Any]:
    """A dataclass as a plain (JSON- and YAML-friendly) dict, nested dataclasses included."""
    return dataclasses.asdict(obj)


def parse_assignments(assignments: list[str] | None, option: str = "--set") -> dict[str, Any]:
    """Parse `key=value` strings (from `option`, e.g. `--set`) into a dict; values are read as
    YAML (a number, a list `[1, 2]`, a mapping `{a: 1}`)."""
    parsed: dict[str, Any] = {}
    for item in assignments or []:
        key, sep, raw = item.partition("=")
        if not sep or not key.strip():
            raise ConfigError(f"{option} {brief(item)}: expected key=value")
        try:
            parsed[key.strip()] = safe_yaml.load(raw) if raw.strip() else ""
        except yaml.YAMLError as exc:
            raise ConfigError(
                f"{option} {brief(item)}: the value is not valid YAML ({safe_yaml.problem(exc)})"
            ) from None
    return parsed


def _path(where: str, key: str) -> str:
    return f"{where}.{key}" if where else key


def _coerce(hint: Any, value: Any, where: str) -> Any:
    """Check `value` against type `hint`, converting where it is lossless (int -> float,
    list -> tuple)."""
    origin = get_origin(hint)
    if origin is typing.Literal:
        allowed = get_args(hint)
        if value not in allowed:
            choices = ", ".join(map(str, allowed))
            raise ConfigError(f"{where}: {brief(value)} is not allowed; use one of {choices}")
        return value
    if origin in (typing.Union, types.UnionType):
        options = get_args(hint)
        if value is None and type(None) in options:
            return None
        errors = []
        for option in (o for o in options if o is not type(None)):
            try:
                return _coerce(option, value, where)
            except ConfigError as exc:
                errors.append(str(exc))
        raise ConfigError(
            errors[0] if len(errors) == 1 else f"{where}: {brief(value)} matches no allowed type"
        )
    if origin in (tuple, list):
        if not isinstance(value, (list, tuple)):
            raise ConfigError(f"{where}: expected a list, got {brief(value)}")
        args = get_args(hint)
        item_hint = args[0] if args else Any
        items = [_coerce(item_hint, v, f"{where}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict or hint is dict:
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {brief(value)}")
        return dict(value)
    if dataclasses.is_dataclass(hint):
        if dataclasses.is_dataclass(value):
            return value
        if not isinstance(value, Mapping):
            raise ConfigError(f"{where}: expected a mapping, got {brief(value)}")
        return build(cast(type, hint), value, where)
    if hint is Any:
        return value
    if hint is float:
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise ConfigError(f"{where}: expected a number, got {brief(value)}")
        try:
            number = float(value)
        except OverflowError:  # an integer beyond the float range
            number = math.inf
        if not math.isfinite(number):
            raise ConfigError(f"{where}: expected a finite number, got {brief(value)}")
        return number
    if hint is int:
        if isinstance(value, bool) or not isinstance(value, int):
            raise ConfigError(f"{where}: expected an integer, got {brief(value)}")
        return value
    if hint is bool:
        if not isinstance(value, bool):
            raise ConfigError(f"{where}: expected true or false, got {brief(value)}")
        return value
    if hint is str:
        if not isinstance(value, str):
            raise ConfigError(f"{where}: expected a string, got {brief(value)}")
        return value
    if isinstance(hint, type) and not isinstance(value, hint):
        raise ConfigError(f"{where}: expected {hint.__name__}, got {brief(value)}")
    return value
