"""Your own recommender class, named `module:Class` wherever a recommender name goes: the
ALS example (implicit's) end to end, and one-line errors for a class that is missing, does not
import or breaks the interface."""

from __future__ import annotations

import textwrap
from pathlib import Path

import numpy as np
import pytest
import yaml

from dlmia.cell import ListOptions, SideChoice, cell_config, run_cell
from dlmia.cli import main, parse_side
from dlmia.data.synthetic import SyntheticConfig
from dlmia.errors import ConfigError
from dlmia.recommenders import make_recommender, recommender_class
from dlmia.sides import DatasetSpec, holdout_hit_rate, prepare_dataset, seeded
from examples.als import ALS
from tune.grid import load_grid

SMALL = DatasetSpec(name="synthetic", synthetic=SyntheticConfig(n_users=400, n_items=150,
                                                                mean_length=20.0))  # fmt: skip
BROKEN = '''
from dataclasses import dataclass
from dlmia.recommenders import Recommender

@dataclass(frozen=True)
class Settings:
    size: int = 3

class NoScore(Recommender):
    Config = Settings
    def fit(self, histories):
        return self

class NoConfig(Recommender):
    def fit(self, histories):
        return self
    def score(self, histories):
        return None

class NotOne:
    pass
'''


@pytest.fixture
def user_module(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> str:
    """A module of broken recommenders in a folder that is the working directory."""
    package = tmp_path / "mine"
    package.mkdir()
    (package / "__init__.py").write_text("")
    (package / "broken.py").write_text(textwrap.dedent(BROKEN))
    (package / "syntax.py").write_text("def oops(:\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.syspath_prepend(str(tmp_path))
    return "mine"


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("als", "unknown recommender 'als'; known: bert4rec, caser"),
        ("mine.nothing:ALS", "cannot import mine.nothing (ModuleNotFoundError"),
        ("mine.syntax:X", "cannot import mine.syntax (SyntaxError"),
        ("mine.broken:Missing", "module mine.broken has no Missing"),
        ("mine.broken:NotOne", "is not a subclass of dlmia.recommenders.Recommender"),
        ("mine.broken:NoScore", "does not implement score"),
        ("mine.broken:NoConfig", "needs a `Config` dataclass"),
    ],
)
def test_a_bad_class_is_one_line(user_module: str, name: str, message: str,
                                 capsys: pytest.CaptureFixture[str]) -> None:  # fmt: skip
    with pytest.raises(ConfigError, match=message.replace("(", r"\(")):
        recommender_class(name)
    argv = ["cell", "--shadow", f"synthetic:{name}", "--target", "synthetic:itemcf"]
    assert main(argv) == 2
    error = capsys.readouterr().err.strip().splitlines()
    assert len(error) == 1 and error[0].startswith("dlmia: error: --shadow")
    assert message in error[0]


def test_a_side_names_a_dataset_and_a_class() -> None:
    assert parse_side("ml-1m:examples.als:ALS", "--shadow") == ("ml-1m", "examples.als:ALS")
    assert parse_side("data/r.csv:itemcf", "--shadow") == ("data/r.csv", "itemcf")
    assert parse_side("c:/x/r.csv:lfm", "--target") == ("c:/x/r.csv", "lfm")
    assert recommender_class("examples.als:ALS") is ALS


def test_the_als_example_recommends_and_leaks() -> None:
    data = prepare_dataset(seeded(SMALL, 0))
    members = data.histories.rows(data.parts["shadow"])
    others = data.histories.rows(data.parts["target"])
    als = make_recommender("examples.als:ALS", {"factors": 16}, device="cpu").fit(members)
    popularity = make_recommender("popularity", device="cpu").fit(members)
    assert holdout_hit_rate(als, others) > holdout_hit_rate(popularity, others)
    choice = SideChoice(SMALL, "examples.als:ALS", {"factors": 16})
    config = cell_config(choice, choice, "reference", {"references": 4}, ListOptions(
        k=20, nonmember_lists="model"), seed=0, device="cpu")  # fmt: skip
    result = run_cell(config)
    assert result.metrics["roc_auc"] > 0.8
    assert {spec.recommender for spec in config.references} == {"examples.als:ALS"}
    again = run_cell(config)  # same seed, same numbers
    np.testing.assert_array_equal(result.scores, again.scores)


def test_a_grid_names_its_own_class(tmp_path: Path) -> None:
    raw = {"name": "own", "datasets": {"syn": {"name": "synthetic"}},
           "recommenders": {"als": {"name": "examples.als:ALS", "settings": {"factors": 8}}},
           "cells": [{"shadow": "syn.als", "target": "syn.als"}], "attacks": {"norm": None}}
    path = tmp_path / "own.yaml"
    path.write_text(yaml.safe_dump(raw))
    assert load_grid(path).recommenders["als"].name == "examples.als:ALS"
    raw["recommenders"]["als"]["settings"] = {"factor": 8}
    path.write_text(yaml.safe_dump(raw))
    with pytest.raises(ConfigError, match="recommenders.als.settings"):
        load_grid(path)
