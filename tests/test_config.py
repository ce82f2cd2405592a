from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

import pytest

from dlmia import config as cfg
from dlmia.errors import ConfigError


@dataclass(frozen=True)
class Inner:
    rate: float = 0.1
    mode: Literal["a", "b"] = "a"


@dataclass(frozen=True)
class Outer:
    size: int = 3
    inner: Inner = field(default_factory=Inner)
    sizes: tuple[int, ...] = (1, 2)
    name: str | None = None


def test_build_applies_values_over_defaults() -> None:
    built = cfg.build(Outer, {"size": 5, "inner": {"rate": 1}, "sizes": [4]})
    assert built == Outer(size=5, inner=Inner(rate=1.0), sizes=(4,))
    assert isinstance(built.inner.rate, float)


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"sise": 1}, "attack.sise: unknown key; allowed keys are inner, name, size, sizes"),
        ({"size": 1.5}, "attack.size: expected an integer, got 1.5"),
        ({"size": True}, "attack.size: expected an integer, got True"),
        ({"inner": {"mode": "c"}}, "attack.inner.mode: 'c' is not allowed; use one of a, b"),
        ({"inner": {"rat": 1}}, "attack.inner.rat: unknown key"),
        ({"sizes": 3}, "attack.sizes: expected a list"),
    ],
)
def test_build_rejects_bad_values_naming_the_key(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message.replace(".", r"\.").replace("(", r"\(")):
        cfg.build(Outer, values, "attack")


def test_replace_and_parse_assignments() -> None:
    updated = cfg.replace(Outer(), cfg.parse_assignments(["size=7", "name=x"]))
    assert updated.size == 7 and updated.name == "x"
    assert cfg.parse_assignments(["a=0.5", "b=true", "c=[1, 2]"]) == {
        "a": 0.5, "b": True, "c": [1, 2]
    }
    with pytest.raises(ConfigError, match="expected key=value"):
        cfg.parse_assignments(["novalue"])
