"""One cell end to end: the pure function, its determinism, and the CLI's handling of bad input."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlmia.cell import (
    CellConfig,
    ListOptions,
    SideChoice,
    cached_dataset,
    cell_config,
    run_cell,
)
from dlmia.cli import build_parser, main
from dlmia.cli import cell_config as cli_cell_config
from dlmia.data.loaders import Columns
from dlmia.data.sources import load_dataset
from dlmia.data.synthetic import SyntheticConfig, generate
from dlmia.sides import DatasetSpec
from dlmia.vectors import ItemVectorConfig

SMALL = DatasetSpec(
    name="synthetic",
    synthetic=SyntheticConfig(n_users=360, n_items=200, mean_length=25.0),
    vectors=ItemVectorConfig(epochs=10, device="cpu"),
)


def small_cell(attack: str = "biased", seed: int = 0) -> CellConfig:
    settings = (
        {"epochs": 5} if attack == "biased"
        else {"epochs_vae": 5, "epochs_heads": 5, "epochs_joint": 5}
    )  # fmt: skip
    return cell_config(
        SideChoice(SMALL, "lfm"), SideChoice(SMALL, "itemcf"), attack, settings,
        ListOptions(k=20), seed=seed, device="cpu",
    )


@pytest.mark.parametrize("attack", ["biased", "dlmia"])
def test_synthetic_cell_attacks_and_is_deterministic(attack: str) -> None:
    first, second = run_cell(small_cell(attack)), run_cell(small_cell(attack))
    assert first.metrics["n_members"] == first.metrics["n_nonmembers"] == 60
    assert first.metrics["roc_auc"] > 0.7  # members' lists differ from popular ones
    assert np.array_equal(first.scores, second.scores)  # same seed, same numbers, bit for bit
    assert first.metrics == second.metrics
    other = run_cell(small_cell(attack, seed=1))
    assert not np.array_equal(first.scores, other.scores)


def test_cli_prints_json_last_and_writes_parquet(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main([
        "-q", "cell", "--shadow", "synthetic:popularity", "--target", "synthetic:itemcf",
        "--k", "20", "--set", "epochs=2", "--device", "cpu", "--out", str(tmp_path),
    ])
    assert code == 0
    last = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    for key in ("roc_auc", "balanced_accuracy", "accuracy", "precision", "recall", "f1",
                "tpr_at_1pct_fpr", "n_shadow", "n_target", "seconds"):
        assert key in last
    assert last["attack_settings"]["epochs"] == 2
    row = pd.read_parquet(tmp_path / "result.parquet")
    scores = pd.read_parquet(tmp_path / "scores.parquet")
    assert row.loc[0, "roc_auc"] == last["roc_auc"]
    assert len(scores) == last["n_target"] and set(scores["label"]) == {0, 1}


# Six users who each rated the same six movies: it survives the 5-core filter, not the split.
ALL_PAIRS = "".join(f"{u}::{i}::5::97830076{i}\n" for u in range(1, 7) for i in range(1, 7))


def write(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    return path


@pytest.mark.parametrize(
    ("shadow", "extra", "files", "message"),
    [
        ("ml-1m:lfm", [], {}, "ml-1m"),  # known name, file missing: the paths looked for
        ("nosuch:lfm", [], {}, "unknown dataset"),
        ("synthetic:nosuchrec", [], {}, "unknown recommender 'nosuchrec'; known: bert4rec, caser"),
        ("ml-1m:lfm", [], {"ml-1m/ratings.dat": "1::2::5::978300760\nbad line\n"}, "line 2"),
        ("ml-1m:lfm", [], {"ml-1m/ratings.dat": "1::2::5::978300760\n2::2::4::978300761\n"},
         "left no users"),
        ("ml-1m:lfm", [], {"ml-1m/ratings.dat": ALL_PAIRS}, "too small to split"),
        ("synthetic:lfm", ["--k", "5000"], {}, "k=5000 is larger than the catalogue"),
        ("synthetic:lfm", ["--set", "lr=fast"], {}, "attack.biased.lr"),
        ("synthetic:lfm", ["--attack", "nosuch"], {}, "unknown attack"),
    ],
)
def test_bad_input_gives_one_line_and_exit_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], shadow: str, extra: list[str],
    files: dict[str, str], message: str,
) -> None:
    (tmp_path / "data").mkdir()
    for name, text in files.items():
        write(tmp_path / "data" / name, text)
    out = tmp_path / "out"
    code = main([
        "-q", "cell", "--shadow", shadow, "--target", "synthetic:itemcf", "--device", "cpu",
        "--data-root", str(tmp_path / "data"), "--out", str(out), *extra,
    ])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2
    assert len(err) == 1 and err[0].startswith("dlmia: error: ") and message in err[0], err
    assert not out.exists()  # nothing half-written


def ratings_lines(n_users: int = 300, header: str | None = None, sep: str = "\t") -> str:
    """Synthetic interactions as `user item rating timestamp` lines (u.data's layout)."""
    data = generate(SyntheticConfig(n_users=n_users, n_items=120, mean_length=20.0), 0)
    rows = [
        sep.join(map(str, (data.user_ids[u], data.item_ids[i], 1 + j % 5, t)))
        for j, (u, i, t) in enumerate(zip(data.users, data.items, data.times))
    ]
    return "\n".join(([header] if header else []) + rows) + "\n"


def test_cell_runs_on_a_headerless_tab_separated_file_without_column_flags(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """The acceptance check of issue 14: a u.data-like file works as it is."""
    path = write(tmp_path / "u.data", ratings_lines())
    code = main([
        "-q", "cell", "--shadow", f"{path}:itemcf", "--target", f"{path}:itemcf",
        "--attack", "biased", "--k", "20", "--set", "epochs=2", "--device", "cpu",
        "--dataset-set", "vectors={epochs: 2}",
    ])
    captured = capsys.readouterr()
    assert code == 0, captured.err
    last = json.loads(captured.out.strip().splitlines()[-1])
    assert last["n_target"] > 0 and 0.0 <= last["roc_auc"] <= 1.0


def test_columns_option_on_a_headerless_and_a_headered_file(tmp_path: Path) -> None:
    headerless = write(tmp_path / "r.tsv", ratings_lines(n_users=40))
    headered = write(tmp_path / "h.csv", ratings_lines(40, "reviewerID,asin,overall,when", ","))
    for path, columns, expected in (
        (headerless, "user=0,item=1,timestamp=3", Columns(0, 1, 3)),
        (headered, "user=reviewerID,item=asin,timestamp=when",
         Columns("reviewerID", "asin", "when")),
    ):
        args = build_parser().parse_args([
            "cell", "--shadow", f"{path}:itemcf", "--target", "synthetic:itemcf",
            "--device", "cpu", "--columns", columns,
        ])
        config = cli_cell_config(args)
        assert config.shadow.dataset.columns == expected
        assert config.target.dataset.columns is None  # a named dataset has its own
        loaded = cached_dataset(config.shadow.dataset)
        assert loaded.stats["n_interactions"] > 0
    swapped = build_parser().parse_args([
        "cell", "--shadow", f"{headerless}:itemcf", "--target", f"{headerless}:itemcf",
        "--device", "cpu", "--columns", "user=1,item=0",
    ])
    spec = cli_cell_config(swapped).shadow.dataset
    assert spec.columns == Columns(user=1, item=0)
    plain = load_dataset("", path=str(headerless))
    swapped_data = load_dataset("", path=spec.path, columns=spec.columns)
    assert swapped_data.n_users == plain.n_items and swapped_data.times is None
