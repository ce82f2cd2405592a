"""A content-addressed cache of trained sides on disk.

A side's entry is two files named by its key (tune.plan): `<key>.npz` with the arrays (vectors,
labels, users, lists, each list statistic as `statistic.<name>`, and the key itself) and
`<key>.json` with the side's key, spec, info and the SHA-256 of the `.npz`. Both are written
atomically, the JSON last, so an entry exists exactly when its JSON does: a run killed mid-write
leaves at most a stray temporary file, never a half entry. Any grid may share one cache folder.
`lists/<lists key>.json` names the entry whose users, labels and lists serve every side that
differs from it only in item-vector settings, so such a side trains no recommender again.

File names are not trusted: an entry is used only when its JSON and its arrays both name the key
asked for and the arrays have the digest the JSON recorded (a served-lists entry also its lists
key). Anything else (files swapped, copied or edited in the folder) is a cache miss with a
warning, and the side is trained again. Arrays are read with `allow_pickle=False`.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import time
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from dlmia import config as cfg
from dlmia.io import atomic_write, json_safe, write_json
from dlmia.records import SideInfo
from dlmia.sides import ServedLists, SideOutput, SideSpec

log = logging.getLogger(__name__)
STATISTIC = "statistic."  # the prefix of the list statistics' arrays in an entry

KEY = re.compile(r"[0-9a-f]{64}")  # a content key (sha256 in hex), as tune.plan makes them


class CacheMismatch(ValueError):
    """A cache entry that is not what its file names say."""


class SideCache:
    """Side outputs stored under `root`, addressed by content key."""

    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def paths(self, key: str) -> tuple[Path, Path]:
        """The (arrays, info) files of entry `key`, spread over 256 sub-folders."""
        folder = self.root / key[:2]
        return folder / f"{key}.npz", folder / f"{key}.json"

    def __contains__(self, key: str) -> bool:
        return self.paths(key)[1].is_file()

    def load(self, key: str, lists_key: str | None = None) -> SideOutput:
        """The side stored under `key` (and, when given, for `lists_key`).

        Raises:
            KeyError: no entry, or one missing a field.
            CacheMismatch: the entry was written for another key, or its arrays are not the
                ones it recorded.
        """
        arrays_path, info_path = self.paths(key)
        if not info_path.is_file():
            raise KeyError(key)
        entry = json.loads(info_path.read_text())
        named = {"key": entry["key"]} | ({"lists_key": entry["lists_key"]} if lists_key else {})
        wanted = {"key": key} | ({"lists_key": lists_key} if lists_key else {})
        if named != wanted:
            raise CacheMismatch(f"its info was written for {named}, not {wanted}")
        if file_digest(arrays_path) != entry["arrays_sha256"]:
            raise CacheMismatch("its arrays are not the ones its info recorded")
        with np.load(arrays_path, allow_pickle=False) as arrays:
            if str(arrays["key"]) != key:
                raise CacheMismatch(f"its arrays were written for {arrays['key']}")
            statistics = {
                name.removeprefix(STATISTIC): arrays[name]
                for name in arrays.files if name.startswith(STATISTIC)
            }  # fmt: skip
            return SideOutput(
                arrays["vectors"], arrays["labels"], arrays["users"], arrays["lists"],
                SideInfo.of(entry["info"]), statistics,
            )

    def get(self, key: str, lists_key: str | None = None) -> SideOutput | None:
        """The side stored under `key` (for `lists_key` when given); None when absent, unreadable
        or not the side the key names (such an entry is reported and removed, so the side is
        trained again)."""
        if key not in self:
            return None
        try:
            return self.load(key, lists_key)
        except (OSError, ValueError, KeyError, TypeError, zipfile.BadZipFile) as exc:
            log.warning("side cache entry %s cannot be used (%s: %s); it is trained again",
                        self.paths(key)[0], type(exc).__name__, exc)
            for path in self.paths(key):
                path.unlink(missing_ok=True)
            return None

    def store(self, key: str, spec: SideSpec, side: SideOutput, lists_key: str = "") -> None:
        """Write `side` (trained from `spec`) under `key`: the arrays first, then the info; with
        `lists_key`, then the index that names this entry as the source of those lists."""
        arrays_path, info_path = self.paths(key)

        arrays: dict[str, Any] = {
            "vectors": side.vectors, "labels": side.labels, "users": side.users,
            "lists": side.lists, "key": np.array(key),
            **{STATISTIC + name: value for name, value in side.statistics.items()},
        }  # fmt: skip

        def write_arrays(tmp: Path) -> None:
            with tmp.open("wb") as handle:
                np.savez(handle, **arrays)

        atomic_write(arrays_path, write_arrays)
        entry = {
            "key": key, "lists_key": lists_key, "arrays_sha256": file_digest(arrays_path),
            "spec": cfg.as_dict(spec), "info": json_safe(cfg.as_dict(side.info)),
        }  # fmt: skip
        write_json(entry, info_path)
        if lists_key:
            write_json({"key": key}, self.root / "lists" / f"{lists_key}.json")

    def lists(self, lists_key: str) -> ServedLists | None:
        """The served lists of a cached side with `lists_key` (any vector settings), if any."""
        index = self.root / "lists" / f"{lists_key}.json"
        if not index.is_file():
            return None
        try:
            key = json.loads(index.read_text())["key"]
        except (OSError, ValueError, KeyError, TypeError):
            return None
        side = self.get(key, lists_key) if isinstance(key, str) and KEY.fullmatch(key) else None
        return ServedLists.of(side) if side is not None else None

    def clean(self, older_than_s: float = 3600.0) -> int:
        """Remove temporary files of killed runs (old ones: another run may share the cache)."""
        limit = time.time() - older_than_s
        stale = [p for p in self.root.glob("*/.*.tmp") if p.stat().st_mtime < limit]
        for path in stale:
            path.unlink(missing_ok=True)
        return len(stale)


def file_digest(path: Path) -> str:
    """SHA-256 of the file at `path`, in hex."""
    with path.open("rb") as handle:
        return hashlib.file_digest(handle, "sha256").hexdigest()

