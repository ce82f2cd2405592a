"""Downloads against a local HTTP server: success, checksum/size failures leave nothing behind."""

from __future__ import annotations

import functools
import hashlib
import http.server
import threading
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from dlmia.data import fetch as fetch_module
from dlmia.data.fetch import REMOTE_FILES, RemoteFile, destination, fetch
from dlmia.data.sources import DATASETS, load_dataset
from dlmia.errors import ConfigError, DataError


class QuietHandler(http.server.SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass


@pytest.fixture
def server(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[str, Path]]:
    """A local HTTP server on an ephemeral port serving folder `tmp_path/served`."""
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY"):
        monkeypatch.delenv(proxy, raising=False)  # talk to 127.0.0.1 directly
    served = tmp_path / "served"
    served.mkdir()
    handler = functools.partial(QuietHandler, directory=str(served))
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}/data", served
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def served_zip(served: Path) -> bytes:
    """Write a small ml-1m.zip under `served/data/` and return its bytes."""
    (served / "data").mkdir(exist_ok=True)
    path = served / "data" / "ml-1m.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-1m/ratings.dat", "1::10::5::97830\n1::20::3::97831\n2::10::4::97832\n")
    return path.read_bytes()


def expect(monkeypatch: pytest.MonkeyPatch, md5: str | None, size: int | None,
           sha256: str | None = None) -> None:
    url = REMOTE_FILES["ml-1m"].url
    monkeypatch.setitem(fetch_module.REMOTE_FILES, "ml-1m", RemoteFile(url, size, sha256, md5))


def test_fetch_downloads_checks_and_is_loadable(
    server: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    base_url, served = server
    payload = served_zip(served)
    expect(monkeypatch, hashlib.md5(payload).hexdigest(), len(payload))
    root = tmp_path / "root"
    path = fetch("ml-1m", root, base_url=base_url, progress=True)
    assert path == root / "ml-1m" / "ml-1m.zip" and path.read_bytes() == payload
    assert sorted(p.name for p in path.parent.iterdir()) == ["ml-1m.zip"]  # no temp file left
    assert "ml-1m.zip: 100%" in capsys.readouterr().err  # plain progress off a terminal
    data = load_dataset("ml-1m", root)
    assert (data.n_users, data.n_items, data.n_interactions) == (2, 2, 3)
    # A second call finds the checked file and does not download again.
    (served / "data" / "ml-1m.zip").unlink()
    assert fetch("ml-1m", root, base_url=base_url, progress=False) == path


def test_checksum_mismatch_leaves_nothing(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, served = server
    payload = served_zip(served)
    expect(monkeypatch, "0" * 32, len(payload))
    root = tmp_path / "root"
    actual = hashlib.md5(payload).hexdigest()
    with pytest.raises(DataError, match=f"MD5 is {actual}, expected 0{{32}}; nothing was saved"):
        fetch("ml-1m", root, base_url=base_url, progress=False)
    assert not root.exists()


def test_size_mismatch_keeps_an_existing_folder_clean(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, served = server
    payload = served_zip(served)
    expect(monkeypatch, None, len(payload) + 1)
    (tmp_path / "root" / "ml-1m").mkdir(parents=True)
    with pytest.raises(DataError, match="nothing was saved"):
        fetch("ml-1m", tmp_path / "root", base_url=base_url, progress=False)
    assert list((tmp_path / "root" / "ml-1m").iterdir()) == []


def test_http_error_leaves_nothing(server: tuple[str, Path], tmp_path: Path) -> None:
    base_url, _ = server  # serves nothing: 404
    url = r"http://127\.0\.0\.1:\d+/data/ml-1m\.zip"
    with pytest.raises(DataError, match=f"could not download {url}: HTTP Error 404"):
        fetch("ml-1m", tmp_path / "root", base_url=base_url, progress=False)
    assert not (tmp_path / "root").exists()


def test_unknown_name_lists_fetchable_ones(tmp_path: Path) -> None:
    known = "ml-1m, ml-100k, ml-20m, amazon-beauty, amazon-digital-music"
    with pytest.raises(ConfigError, match=f"fetchable datasets are {known}"):
        fetch("synthetic", tmp_path)


def test_published_checksum_and_destinations_are_where_loading_looks(tmp_path: Path) -> None:
    assert REMOTE_FILES["ml-1m"].md5 == "c4d9eecfca2ab87c1945afe126590906"
    assert REMOTE_FILES["ml-1m"].size == 5917549
    assert REMOTE_FILES["ml-100k"] == RemoteFile(
        "https://files.grouplens.org/datasets/movielens/ml-100k.zip",
        None, None, "0e33842e24a9c977be4e0107933c0723",
    )
    assert REMOTE_FILES["ml-20m"] == RemoteFile(
        "https://files.grouplens.org/datasets/movielens/ml-20m.zip",
        None, None, "cd245b17a1ae2cc31bb14903e1204af3",
    )
    for name, remote in REMOTE_FILES.items():
        assert remote.url.startswith("https://")
        relative = destination(name, tmp_path).relative_to(tmp_path).as_posix()
        assert relative in [file.path.as_posix() for file in DATASETS[name].files]


def served_ml100k(served: Path) -> bytes:
    """Write a small official-style ml-100k.zip under `served/data/` and return its bytes."""
    (served / "data").mkdir(exist_ok=True)
    path = served / "data" / "ml-100k.zip"
    with zipfile.ZipFile(path, "w") as zf:
        zf.writestr("ml-100k/u.item", "1|Toy Story (1995)\n")
        zf.writestr("ml-100k/u.data", "196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    return path.read_bytes()


def test_ml100k_is_fetched_with_its_md5_checked_and_loads(
    server: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    base_url, served = server
    payload = served_ml100k(served)
    url = REMOTE_FILES["ml-100k"].url
    wrong = RemoteFile(url, None, None, REMOTE_FILES["ml-100k"].md5)  # the real zip's MD5
    monkeypatch.setitem(fetch_module.REMOTE_FILES, "ml-100k", wrong)
    actual = hashlib.md5(payload).hexdigest()
    with pytest.raises(DataError, match=f"MD5 is {actual}, expected 0e33842e"):
        fetch("ml-100k", tmp_path / "bad", base_url=base_url, progress=False)
    assert not (tmp_path / "bad").exists()
    right = RemoteFile(url, None, None, actual)
    monkeypatch.setitem(fetch_module.REMOTE_FILES, "ml-100k", right)
    path = fetch("ml-100k", tmp_path / "root", base_url=base_url, progress=False)
    assert path == tmp_path / "root" / "ml-100k" / "ml-100k.zip"
    data = load_dataset("ml-100k", tmp_path / "root")
    assert (data.n_users, data.n_items, data.n_interactions) == (2, 2, 2)
    assert data.times is not None and data.times.tolist() == [881250949, 891717742]


class HostileHandler(http.server.BaseHTTPRequestHandler):
    """Serves `PAYLOAD` at /good, and misbehaves on purpose at the other paths."""

    PAYLOAD = b"1::10::5::97830\n" * 64

    def log_message(self, format: str, *args: object) -> None:  # noqa: A002 (the base's name)
        pass

    def do_GET(self) -> None:  # noqa: N802 (the base's name)
        port = self.server.server_address[1]
        routes = {
            "/good": lambda: self._send(self.PAYLOAD),
            "/same-host": lambda: self._redirect(f"http://127.0.0.1:{port}/good"),
            "/other-host": lambda: self._redirect(f"http://localhost:{port}/good"),
            "/loop": lambda: self._redirect(f"http://127.0.0.1:{port}/loop"),
            "/truncated": lambda: self._send(self.PAYLOAD[:100], length=len(self.PAYLOAD)),
            "/liar": lambda: self._send(bytes(len(self.PAYLOAD))),  # right size, wrong bytes
            "/endless": lambda: self._send(self.PAYLOAD * 40, length=None),
        }
        routes.get(self.path.rsplit("/", 1)[0] or self.path, lambda: self.send_error(404))()

    def _send(self, body: bytes, length: int | None = -1) -> None:
        self.send_response(200)
        if length is not None:
            self.send_header("Content-Length", str(len(body) if length == -1 else length))
        self.end_headers()
        self.wfile.write(body)
        self.close_connection = True

    def _redirect(self, location: str) -> None:
        self.send_response(302)
        self.send_header("Location", location + "/ml-1m.zip")
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.fixture
def hostile(monkeypatch: pytest.MonkeyPatch) -> Iterator[str]:
    """A local server that redirects, truncates and lies (HostileHandler); its base URL."""
    for proxy in ("http_proxy", "HTTP_PROXY", "all_proxy", "ALL_PROXY", "no_proxy", "NO_PROXY"):
        monkeypatch.delenv(proxy, raising=False)
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), HostileHandler)
    thread = threading.Thread(target=httpd.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{httpd.server_address[1]}"
    finally:
        httpd.shutdown()
        httpd.server_close()
        thread.join()


def pin_payload(monkeypatch: pytest.MonkeyPatch) -> None:
    payload = HostileHandler.PAYLOAD
    expect(monkeypatch, None, len(payload), hashlib.sha256(payload).hexdigest())


def left_behind(root: Path) -> list[Path]:
    return list(root.rglob("*")) if root.exists() else []


def test_same_host_redirect_is_followed_and_checked(
    hostile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    pin_payload(monkeypatch)
    path = fetch("ml-1m", tmp_path / "root", base_url=f"{hostile}/same-host", progress=False)
    assert path.read_bytes() == HostileHandler.PAYLOAD


@pytest.mark.parametrize(
    ("route", "message"),
    [
        ("other-host", "redirects to another host \\(localhost\\)"),
        ("loop", "redirect"),  # more than MAX_REDIRECTS hops
        ("truncated", "got 100 of 1024 bytes"),
        ("liar", "SHA256 is [0-9a-f]{64}, expected"),
        ("endless", "more than the 1024 bytes expected; cut off"),
    ],
)
def test_hostile_servers_are_refused_and_leave_nothing(
    hostile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, route: str, message: str
) -> None:
    pin_payload(monkeypatch)
    root = tmp_path / "root"
    with pytest.raises(DataError, match=message):
        fetch("ml-1m", root, base_url=f"{hostile}/{route}", progress=False)
    assert left_behind(root) == []  # no file, no temporary file, no folder


def test_redirect_policy_refuses_a_downgrade_and_another_host() -> None:
    from dlmia.data.fetch import check_redirect

    check_redirect("https://a.org/x", "https://a.org/y")  # same host: followed
    check_redirect("http://a.org/x", "https://a.org/y")  # an upgrade: followed
    with pytest.raises(DataError, match="from https to http"):
        check_redirect("https://a.org/x", "http://a.org/y")
    with pytest.raises(DataError, match="another host"):
        check_redirect("https://a.org/x", "https://b.org/x")


def test_a_pinned_sha256_is_enforced_and_an_unpinned_one_reported(
    hostile: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    payload = HostileHandler.PAYLOAD
    expect(monkeypatch, None, None)  # nothing pinned: the received digest is printed
    fetch("ml-1m", tmp_path / "a", base_url=f"{hostile}/good", progress=False)
    assert hashlib.sha256(payload).hexdigest() in capsys.readouterr().err
    with pytest.raises(DataError, match="SHA256 is"):
        fetch("ml-1m", tmp_path / "b", base_url=f"{hostile}/good", progress=False,
              sha256="0" * 64)
    assert left_behind(tmp_path / "b") == []
    with pytest.raises(ConfigError, match="64 hexadecimal"):
        fetch("ml-1m", tmp_path / "c", base_url=f"{hostile}/good", sha256="abc")
