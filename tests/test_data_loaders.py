"""Loaders and dataset names: formats, id maps, time order, error messages, the real files."""

from __future__ import annotations

import time
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from dlmia.data.filtering import kcore
from dlmia.data.loaders import (
    Columns,
    detect_format,
    load_amazon_ratings,
    load_file,
    load_ml1m,
    load_table,
)
from dlmia.data.sources import (
    DATASETS,
    dataset_file,
    default_data_root,
    default_filter,
    load_dataset,
)
from dlmia.data.splits import SplitConfig, split_users
from dlmia.data.synthetic import SyntheticConfig
from dlmia.errors import ConfigError, DataError

ML1M_LINES = [
    "10::3186::4::978300019",
    "10::1270::5::978300055",
    "7::3186::3::978200000",
    "10::1721::4::978299000",  # earlier than the two before it: order must come from time
    "7::1::5::978100000",
]
AMAZON_LINES = [
    "A01247753D6GFZD87MUV8,B0009N35D2,5.0,1388102400",
    "A3JM6GV9MNOF9X,0558925278,3.0,1355443200",
    "A01247753D6GFZD87MUV8,0558925278,4.0,1300000000",
]


def write(path: Path, lines: list[str]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    return path


def test_ml1m_dat_maps_ids_in_first_appearance_order(tmp_path: Path) -> None:
    data = load_ml1m(write(tmp_path / "ratings.dat", ML1M_LINES))
    assert data.user_ids.tolist() == [10, 7]
    assert data.item_ids.tolist() == [3186, 1270, 1721, 1]
    assert data.users.tolist() == [0, 0, 1, 0, 1]
    assert data.items.tolist() == [0, 1, 0, 2, 3]
    assert data.times is not None and data.times[0] == 978300019
    assert data.users.dtype == np.int64 and data.items.dtype == np.int64


def test_histories_are_in_time_order(tmp_path: Path) -> None:
    histories = load_ml1m(write(tmp_path / "ratings.dat", ML1M_LINES)).histories()
    # user 10 (row 0): 1721 @978299000, 3186 @978300019, 1270 @978300055 -> items 2, 0, 1
    assert histories.sequence(0).tolist() == [2, 0, 1]
    assert histories.sequence(1).tolist() == [3, 0]
    assert histories.times is not None
    assert (np.diff(histories.times[histories.indptr[0] : histories.indptr[1]]) > 0).all()


def test_ml1m_zip_is_read_without_extracting(tmp_path: Path) -> None:
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "\n".join(ML1M_LINES) + "\n")
        zf.writestr("ml-1m/movies.dat", "1::Toy Story (1995)::Animation\n")
    data = load_ml1m(archive)
    plain = load_ml1m(write(tmp_path / "ratings.dat", ML1M_LINES))
    assert data.fingerprint() == plain.fingerprint()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["ml-1m.zip", "ratings.dat"]


@pytest.mark.parametrize(
    ("lines", "number", "shown"),
    [
        (ML1M_LINES[:2] + ["abc"] + ML1M_LINES[2:], 3, "'abc'"),
        (ML1M_LINES[:3] + ["", "1::2::3"], 5, "'1::2::3'"),  # blank lines still count
        (["1::2::x::4"], 1, "'1::2::x::4'"),
        (ML1M_LINES[:1] + ["1\t2\t3\t4"], 2, "'1\\t2\\t3\\t4'"),
        (ML1M_LINES[:1] + ["1::2::3::4::5"], 2, "'1::2::3::4::5'"),
    ],
)
def test_ml1m_malformed_line_is_named(
    tmp_path: Path, lines: list[str], number: int, shown: str
) -> None:
    path = write(tmp_path / "ratings.dat", lines)
    with pytest.raises(DataError) as err:
        load_ml1m(path)
    assert str(err.value) == (
        f"{path} line {number}: expected UserID::MovieID::Rating::Timestamp, got {shown}"
    )


def test_ml1m_malformed_line_in_zip_names_the_member(tmp_path: Path) -> None:
    archive = tmp_path / "ml-1m.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::2::3::4\nbad line\n")
    with pytest.raises(DataError, match=r"ml-1m\.zip:ml-1m/ratings\.dat line 2: expected"):
        load_ml1m(archive)


def test_empty_and_missing_files(tmp_path: Path) -> None:
    with pytest.raises(DataError, match="holds no interactions"):
        load_ml1m(write(tmp_path / "ratings.dat", [""]))
    missing = tmp_path / "nowhere" / "ratings.dat"
    for loader in (load_ml1m, load_amazon_ratings, load_table, load_file):
        with pytest.raises(DataError, match=f"{missing}: does not exist"):
            loader(missing)
    with pytest.raises(DataError, match="not a readable zip"):
        load_ml1m(write(tmp_path / "broken.zip", ["not a zip"]))


def test_amazon_ratings_keep_string_ids(tmp_path: Path) -> None:
    data = load_amazon_ratings(write(tmp_path / "ratings_Beauty.csv", AMAZON_LINES))
    assert data.user_ids.tolist() == ["A01247753D6GFZD87MUV8", "A3JM6GV9MNOF9X"]
    assert data.item_ids.tolist() == ["B0009N35D2", "0558925278"]  # leading zero kept
    assert data.users.tolist() == [0, 1, 0] and data.items.tolist() == [0, 1, 1]
    assert data.times is not None and data.times.tolist() == [1388102400, 1355443200, 1300000000]
    assert data.histories().sequence(0).tolist() == [1, 0]  # 2011 before 2013


@pytest.mark.parametrize("bad", ["user,item,rating,timestamp", "A1,B2,5.0", "A1,B2,5.0,12,extra"])
def test_amazon_malformed_line_is_named(tmp_path: Path, bad: str) -> None:
    path = write(tmp_path / "r.csv", AMAZON_LINES[:1] + [bad] if "extra" in bad else [bad])
    number = 2 if "extra" in bad else 1
    with pytest.raises(DataError) as err:
        load_amazon_ratings(path)
    assert str(err.value) == (
        f"{path} line {number}: expected user,item,rating,timestamp (no header), got {bad!r}"
    )


def test_tsv_with_header_and_no_time(tmp_path: Path) -> None:
    data = load_table(write(tmp_path / "interactions.tsv", ["user\titem", "5\t1", "5\t6", "3\t1"]))
    assert data.times is None
    assert data.user_ids.tolist() == [5, 3] and data.item_ids.tolist() == [1, 6]
    assert data.histories().sequence(0).tolist() == [0, 1]  # file order


def test_csv_columns_found_by_common_spellings(tmp_path: Path) -> None:
    lines = ["userId,movieId,rating,timestamp", "u1,m1,4,30", "u2,m1,3,10", "u1,m2,5,20"]
    data = load_table(write(tmp_path / "ratings.csv", lines))
    assert data.user_ids.tolist() == ["u1", "u2"] and data.item_ids.tolist() == ["m1", "m2"]
    assert data.histories().sequence(0).tolist() == [1, 0]


def test_explicit_columns_and_dates(tmp_path: Path) -> None:
    lines = ["who;what;when", "a;x;2020-01-02", "a;y;2020-01-01"]
    data = load_table(write(tmp_path / "log.txt", lines), Columns("who", "what", "when"))
    assert data.times is not None and data.times.tolist() == [1577923200, 1577836800]
    assert data.user_ids.tolist() == ["a"]  # the header is not an interaction
    with pytest.raises(DataError) as err:
        load_table(tmp_path / "log.txt", Columns(user="whom", item="what"))
    assert str(err.value) == (
        f"{tmp_path / 'log.txt'}: columns user='whom' is not in the header (who, what, when); "
        "fix --columns (a grid dataset: columns:)"
    )
    # Unknown names: read as a file without header, whose first "date" is no date.
    with pytest.raises(DataError, match=r"column 2 holds neither numbers nor dates .* --columns"):
        load_table(tmp_path / "log.txt")


def test_a_header_without_a_user_column_points_to_columns(tmp_path: Path) -> None:
    path = write(tmp_path / "r.csv", ["customer,product,ts", "a,x,1"])
    with pytest.raises(DataError) as err:
        load_table(path)
    message = str(err.value)
    assert message.startswith(f"{path}: no user column among customer, product, ts; name it")
    assert "--columns user=NAME (a grid dataset: columns: {user: NAME})" in message
    assert "user_col" not in message


def test_headerless_tsv_is_recognised(tmp_path: Path) -> None:
    lines = ["196\t242\t3\t881250949", "186\t302\t3\t891717742", "196\t302\t1\t881250000"]
    path = write(tmp_path / "u.data", lines)
    assert detect_format(path) == "table"
    data = load_file(path)
    assert data.user_ids.tolist() == [196, 186] and data.item_ids.tolist() == [242, 302]
    assert data.times is not None and data.times.tolist() == [881250949, 891717742, 881250000]
    assert data.histories().sequence(0).tolist() == [1, 0]  # by time, not file order
    pairs = load_file(write(tmp_path / "pairs.tsv", ["u1\ti1", "u2\ti1"]))  # string ids too
    assert pairs.user_ids.tolist() == ["u1", "u2"] and pairs.times is None


@pytest.mark.parametrize(
    ("third", "is_time"), [([4, 5, 3], False), ([881250950, 881250949, 881250000], True)]
)
def test_a_headerless_third_column_is_a_time_only_when_it_looks_like_one(
    tmp_path: Path, third: list[int], is_time: bool
) -> None:
    rows = [f"{u},{i},{t}" for (u, i), t in zip([(1, 10), (1, 20), (2, 10)], third)]
    data = load_file(write(tmp_path / "r.csv", rows))
    assert (data.times is not None) == is_time
    assert data.histories().sequence(0).tolist() == ([1, 0] if is_time else [0, 1])


def test_columns_by_position_and_by_name(tmp_path: Path) -> None:
    headerless = write(tmp_path / "r.tsv", ["5\tx\t100\ta", "5\ty\t50\tb", "6\tx\t70\tc"])
    data = load_file(headerless, columns=Columns(user=3, item=0, timestamp=2))
    assert data.user_ids.tolist() == ["a", "b", "c"] and data.item_ids.tolist() == [5, 6]
    assert data.times is not None and data.times.tolist() == [100, 50, 70]
    no_time = load_file(headerless, columns=Columns(user=0, item=1))
    assert no_time.times is None and no_time.user_ids.tolist() == [5, 6]
    named = write(tmp_path / "h.csv", ["reviewerID,asin,overall,when", "r1,a1,5,9", "r2,a1,4,8"])
    data = load_file(named, columns=Columns(user="reviewerID", item="asin", timestamp="when"))
    assert data.user_ids.tolist() == ["r1", "r2"] and data.times.tolist() == [9, 8]
    with pytest.raises(DataError) as err:
        load_file(headerless, columns=Columns(user=0, item=1, timestamp=4))
    assert str(err.value) == (
        f"{headerless}: columns timestamp=4 is beyond the file's 4 columns (positions count "
        "from 0); fix --columns (a grid dataset: columns:)"
    )
    with pytest.raises(DataError, match=r"columns item='ASIN' is not in the header \(reviewerID,"):
        load_file(named, columns=Columns(user="reviewerID", item="ASIN"), nrows=5)
    assert load_file(named, columns=Columns(user="reviewerID", item="asin"), nrows=1).n_users == 1


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"user": 0}, "give both user and item"),
        ({"user": 0, "item": "asin"}, "all positions .* or all header names"),
        ({"user": -1, "item": 0}, "user: positions count from 0"),
        ({"user": 1, "item": 1}, "two roles name the same column"),
    ],
)
def test_columns_are_checked(values: dict, message: str) -> None:
    with pytest.raises(ConfigError, match=message):
        Columns(**values)


def test_table_empty_value_names_the_line(tmp_path: Path) -> None:
    path = write(tmp_path / "t.csv", ["user,item", "1,2", "", "3,"])
    with pytest.raises(DataError, match=r"t\.csv line 4: 'item' is empty"):
        load_table(path)


def test_parquet(tmp_path: Path) -> None:
    frame = pd.DataFrame({"user_id": [9, 9, 4], "item_id": ["a", "b", "a"], "ts": [3, 1, 2]})
    frame.to_parquet(tmp_path / "t.parquet")
    data = load_table(tmp_path / "t.parquet")
    assert data.user_ids.tolist() == [9, 4] and data.item_ids.tolist() == ["a", "b"]
    assert data.times is not None and data.times.tolist() == [3, 1, 2]
    assert data.histories().sequence(0).tolist() == [1, 0]
    assert load_file(tmp_path / "t.parquet").fingerprint() == data.fingerprint()


def test_format_detection(tmp_path: Path) -> None:
    assert detect_format(write(tmp_path / "a.dat", ML1M_LINES)) == "ml1m"
    assert detect_format(write(tmp_path / "b.csv", AMAZON_LINES)) == "amazon"
    assert detect_format(write(tmp_path / "c.csv", ["user,item", "1,2"])) == "table"
    assert detect_format(write(tmp_path / "d.tsv", ["user\titem", "1\t2"])) == "table"


def test_load_dataset_by_name_and_by_path(tmp_path: Path) -> None:
    (tmp_path / "ml-1m").mkdir()
    write(tmp_path / "ml-1m" / "ratings.dat", ML1M_LINES)
    data = load_dataset("ml-1m", tmp_path)
    assert data.name == "ml-1m" and data.n_interactions == len(ML1M_LINES)
    beauty = write(tmp_path / "beauty.csv", AMAZON_LINES)
    by_path = load_dataset("", tmp_path / "elsewhere", path=str(beauty))
    assert by_path.item_ids.tolist() == ["B0009N35D2", "0558925278"]
    assert load_dataset("", tmp_path, path="beauty.csv").fingerprint() == by_path.fingerprint()
    synthetic = load_dataset("synthetic", tmp_path / "elsewhere", SyntheticConfig(seed=3))
    assert synthetic.name == "synthetic" and synthetic.n_users > 0


def test_zip_at_the_root_is_found(tmp_path: Path) -> None:
    with zipfile.ZipFile(tmp_path / "ml-1m.zip", "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "\n".join(ML1M_LINES))
    assert load_dataset("ml-1m", tmp_path).n_users == 2


U_DATA = "".join(f"{u}\t{i}\t{1 + (u + i) % 5}\t{880000000 + 10 * u + i}\n"
                 for u in range(1, 4) for i in range(1, 3))
ML20M_CSV = "userId,movieId,rating,timestamp\n" + "".join(
    f"{u},{i},4.5,{1100000000 + u + i}\n" for u in range(1, 4) for i in range(1, 3))


def movielens_zip(path: Path, member: str, text: str) -> Path:
    """A small official-style MovieLens zip: the ratings `member` beside other files."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr(member.rsplit("/", 1)[0] + "/README.txt", "MovieLens\n")
        zf.writestr(member, text)
    return path


@pytest.mark.parametrize(
    ("name", "member", "text"),
    [("ml-100k", "ml-100k/u.data", U_DATA), ("ml-20m", "ml-20m/ratings.csv", ML20M_CSV)],
)
def test_movielens_100k_and_20m_load_from_their_file_or_zip(
    tmp_path: Path, name: str, member: str, text: str
) -> None:
    plain = write(tmp_path / "plain" / member, text.splitlines())
    expected = load_dataset(name, tmp_path / "plain")
    assert (expected.name, expected.n_users, expected.n_items, expected.n_interactions) == (
        name, 3, 2, 6)
    assert expected.times is not None and expected.times.min() > 100_000
    assert dataset_file(name, data_root=tmp_path / "plain").path == plain
    for archive in (f"{name}/{name}.zip", f"{name}.zip"):  # where fetch puts it, or the root
        root = tmp_path / archive.replace("/", "_")
        movielens_zip(root / archive, member, text)
        found = dataset_file(name, data_root=root)
        assert (found.path, found.member) == (root / archive, member)
        assert load_dataset(name, root).fingerprint() == expected.fingerprint()
    assert default_filter(name) == default_filter("ml-1m")
    assert load_file(root / archive).fingerprint() == expected.fingerprint()  # a zip by path


def test_a_relative_path_is_taken_as_given_then_under_the_data_root(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root, here = tmp_path / "root", tmp_path / "here"
    under_root = write(root / "sub" / "r.csv", AMAZON_LINES)
    here.mkdir()
    monkeypatch.chdir(here)
    assert dataset_file("", "sub/r.csv", root).path == under_root
    monkeypatch.setenv("DLMIA_DATA_ROOT", str(root))  # the default data root
    assert dataset_file("", "sub/r.csv").path == under_root
    write(here / "sub" / "r.csv", AMAZON_LINES[:1])
    assert dataset_file("", "sub/r.csv", root).path == Path("sub/r.csv")  # as given wins
    with pytest.raises(ConfigError, match=r"unknown dataset 'nope\.csv': neither a known name"):
        dataset_file("", "nope.csv", root)


def test_unknown_name_lists_known_names(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as err:
        load_dataset("ml-30m", tmp_path)
    for name in DATASETS:
        assert name in str(err.value)
    assert "path of a data file" in str(err.value)


def test_known_name_with_missing_file_says_how_to_fetch(tmp_path: Path) -> None:
    with pytest.raises(DataError) as err:
        load_dataset("amazon-beauty", tmp_path)
    message = str(err.value)
    assert str(tmp_path / "amazon-beauty" / "ratings_Beauty.csv") in message
    assert f"dlmia data fetch amazon-beauty --to {tmp_path}" in message
    assert "--data-root" in message


def test_default_data_root_and_filters(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("DLMIA_DATA_ROOT", raising=False)
    assert default_data_root() == Path("data")
    monkeypatch.setenv("DLMIA_DATA_ROOT", "/x/y")
    assert default_data_root() == Path("/x/y")
    assert (default_filter("ml-1m").min_user, default_filter("ml-1m").min_item) == (5, 5)
    assert default_filter("amazon-digital-music").min_item == 1
    assert default_filter("some/file.csv") == default_filter("amazon-beauty")


@pytest.mark.shared_data
def test_real_ml1m_loads_fast_with_known_counts(shared_data: Path) -> None:
    start = time.perf_counter()
    data = load_dataset("ml-1m", shared_data)
    elapsed = time.perf_counter() - start
    filtered = kcore(data, default_filter("ml-1m"))
    parts = split_users(filtered.n_users, SplitConfig(seed=0))
    assert (data.n_users, data.n_items, data.n_interactions) == (4008, 3413, 669756)
    assert sum(len(p) for p in parts.values()) == filtered.n_users
    histories = filtered.histories()
    assert histories.times is not None
    same_user = np.diff(histories.row_of_entries()) == 0
    assert (np.diff(histories.times)[same_user] >= 0).all()
    assert (filtered.n_users, filtered.n_items, filtered.n_interactions) == (4008, 3333, 669492)
    assert elapsed < 2.0, f"loading took {elapsed:.2f} s"


@pytest.mark.shared_data
def test_real_digital_music_default_filter_keeps_the_data(shared_data: Path) -> None:
    if not (shared_data / "amazon-digital-music" / "interactions.tsv").is_file():
        pytest.skip("no amazon-digital-music/interactions.tsv in the shared data")
    data = load_dataset("amazon-digital-music", shared_data)
    assert (data.n_users, data.n_items, data.n_interactions) == (5270, 206381, 277011)
    assert data.without_duplicates()[1] == 9261  # the published file repeats (user, item) rows
    filtered = kcore(data, default_filter("amazon-digital-music"))
    assert (filtered.n_users, filtered.n_items, filtered.n_interactions) == (5270, 206381, 277011)


def test_exact_duplicates_are_dropped_and_counted() -> None:
    from dlmia.data.interactions import Interactions

    users, items, times = ["a", "b", "a", "a", "b"], [1, 2, 1, 1, 3], [5, 6, 5, 9, 7]
    data = Interactions.from_raw("t", users, items, times)
    kept, dropped = data.without_duplicates()
    assert dropped == 1  # (a, 1, 5) twice; (a, 1, 9) is a re-rating at another time: kept
    assert kept.users.tolist() == [0, 1, 0, 1] and kept.times.tolist() == [5, 6, 9, 7]
    untimed = Interactions.from_raw("t", users, items)
    assert untimed.without_duplicates()[1] == 2  # without times, every repeat of (a, 1)
    same, none = kept.without_duplicates()
    assert none == 0 and same is kept


def test_a_doubled_file_prepares_like_the_single_one(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    import dataclasses
    import logging

    from dlmia.sides import DatasetSpec, prepare_dataset, seeded
    from dlmia.vectors import ItemVectorConfig

    rng = np.random.default_rng(0)
    rows = [f"u{u},i{i},5,{1000 + j}" for u in range(90)
            for j, i in enumerate(rng.choice(40, 12, replace=False))]
    single, doubled = tmp_path / "single.csv", tmp_path / "doubled.csv"
    single.write_text("\n".join(rows) + "\n")
    doubled.write_text("\n".join(rows + rows) + "\n")
    vectors = ItemVectorConfig(epochs=1, factors=4, device="cpu")
    spec = seeded(DatasetSpec(path=str(single), vectors=vectors), 0)
    with caplog.at_level(logging.WARNING):
        one = prepare_dataset(spec)
        two = prepare_dataset(dataclasses.replace(spec, path=str(doubled)))
    assert f"removed {len(rows)} exact duplicate interactions" in caplog.text
    assert two.stats["n_duplicates_removed"] == len(rows)
    assert one.stats["n_duplicates_removed"] == 0
    assert one.fingerprint == two.fingerprint  # the same interactions, hence the same sides
    kept = prepare_dataset(dataclasses.replace(spec, path=str(doubled), keep_duplicates=True))
    assert kept.stats["n_interactions"] == 2 * one.stats["n_interactions"]


def test_a_named_dataset_is_read_in_its_own_format(tmp_path: Path) -> None:
    path = tmp_path / "amazon-beauty" / "ratings_Beauty.csv"
    path.parent.mkdir()
    path.write_text("A1,B1,five,1\n")  # would pass for a header if the format were guessed
    with pytest.raises(DataError, match="line 1: expected user,item,rating,timestamp"):
        load_dataset("amazon-beauty", tmp_path)


def test_a_corrupt_compressed_table_is_a_data_error(tmp_path: Path) -> None:
    path = tmp_path / "r.csv.gz"
    path.write_bytes(b"\x1f\x8b\x08\x00garbage")
    with pytest.raises(DataError, match=r"r\.csv\.gz: cannot be read"):
        load_file(path)
