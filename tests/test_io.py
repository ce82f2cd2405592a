from __future__ import annotations

from pathlib import Path

import pandas as pd
import pytest

from dlmia.io import atomic_write, write_parquet


def test_write_parquet_round_trips(tmp_path: Path) -> None:
    frame = pd.DataFrame({"a": [1, 2], "b": ["x", "y"]})
    path = write_parquet(frame, tmp_path / "sub" / "f.parquet")
    pd.testing.assert_frame_equal(pd.read_parquet(path), frame)


def test_failed_write_leaves_nothing(tmp_path: Path) -> None:
    def broken(tmp: Path) -> None:
        tmp.write_text("half")
        raise RuntimeError("killed mid-write")

    with pytest.raises(RuntimeError):
        atomic_write(tmp_path / "out.txt", broken)
    assert list(tmp_path.iterdir()) == []
