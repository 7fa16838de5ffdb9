"""Where the raw data comes from: URLs and sha256 pins, overridable for tests and mirrors.

Every download is verified. The expected sha256 of a URL is, in this order:

1. its pin here (the published hashes: UCF101's and HMDB51's archives, as pinned by
   torchvision's dataset definitions), or one given with ``--sources``;
2. else its entry in the lock file (``<dataset root>/sources.lock.json`` by default, or
   ``zar download --lock FILE``), where the first download of that URL recorded the sha256 it
   saw (Kinetics annotation CSVs, CVDF part lists and archive parts: nobody publishes
   their hashes). Later runs verify against it; keep the file (or share one between machines)
   to get the same bytes everywhere.

A download that does not match stops with an error naming the expected and the actual
hash (the file is kept as ``<name>.bad``). A known pin beats the lock (the lock entry is then
replaced). Overriding a URL without giving a sha256 drops the pin (it belonged to the other
URL): the new URL is locked at its first download.

Override any entry with ``zar download --sources FILE`` (YAML or JSON), e.g. to point at a
mirror or at a test server::

    ucf101_videos: {url: "http://127.0.0.1:8000/UCF101.rar", sha256: "<hex>"}
    youtube_url: "http://127.0.0.1:8000/{youtube_id}.mp4"
"""
from __future__ import annotations

import dataclasses
import os
import re
from dataclasses import dataclass
from pathlib import Path

from zar.core.errors import UserError
from zar.core.files import read_json, read_yaml, write_json


@dataclass(frozen=True)
class Remote:
    url: str
    sha256: str | None = None  # None: no published hash (the lock file pins it at the first download)

    @property
    def filename(self) -> str:
        name = self.url.split("?")[0].rstrip("/").rsplit("/", 1)[-1]
        if not re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9._+-]*", name):
            raise UserError(f"{self.url}: cannot use {name!r} as a file name")
        return name


_S3 = "https://s3.amazonaws.com/kinetics"


def _kinetics() -> dict[str, Remote]:
    out = {}
    for v, splits in (("400", ("train", "val", "test")), ("600", ("train", "val", "test"))):
        for s in splits:
            out[f"k{v}_annotations_{s}"] = Remote(f"{_S3}/{v}/annotations/{s}.csv")
            out[f"k{v}_cvdf_{s}"] = Remote(f"{_S3}/{v}/{s}/k{v}_{s}_path.txt")
    # CVDF's replacements for K400 train videos found corrupted in the first release
    out["k400_cvdf_replacement"] = Remote(f"{_S3}/400/replacement_for_corrupted_k400.tgz")
    return out


DEFAULT_REMOTES: dict[str, Remote] = {
    **_kinetics(),
    # sha256 as published with torchvision's dataset definitions (and, for the split zip,
    # TensorFlow Datasets' url_checksums)
    "ucf101_videos": Remote("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar",
                            "ca8dfadb4c891cb11316f94d52b6b0ac2a11994e67a0cae227180cd160bd8e55"),
    "ucf101_splits": Remote("https://www.crcv.ucf.edu/data/UCF101/"
                            "UCF101TrainTestSplits-RecognitionTask.zip",
                            "5c0d1a53b8ed364a2ac830a73f405e51bece7d98ce1254fd19ed4a36b224bd27"),
    "hmdb51_videos": Remote("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar",
                            "9e714a0d8b76104d76e932764a7ca636f929fff66279cda3f2e326fa912a328e"),
    "hmdb51_splits": Remote("https://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/"
                            "test_train_splits.rar",
                            "229c94f845720d01eb3946d39f39292ea962d50a18136484aa47c1eba251d2b7"),
}

DEFAULT_SETTINGS: dict[str, str | None] = {
    # yt-dlp: the page of one video, and which of its formats to cut the clip from
    "youtube_url": "https://www.youtube.com/watch?v={youtube_id}",
    "youtube_format": "bv*[height<=?720]/b[height<=?720]/bv*/b",
    # a Netscape cookies.txt for yt-dlp (YouTube asks to sign in after a few hundred videos)
    "youtube_cookies": None,
}


@dataclass(frozen=True)
class Sources:
    remotes: dict[str, Remote]
    settings: dict[str, str | None]

    def remote(self, key: str) -> Remote:
        try:
            return self.remotes[key]
        except KeyError:
            raise UserError(f"no source named {key!r}") from None


def load_sources(overrides: dict | str | os.PathLike | None = None) -> Sources:
    """The default table, with ``overrides`` (a mapping, or a YAML/JSON file) applied."""
    remotes, settings = dict(DEFAULT_REMOTES), dict(DEFAULT_SETTINGS)
    if overrides is None:
        return Sources(remotes, settings)
    origin = "overrides"
    if not isinstance(overrides, dict):
        origin = str(overrides)
        overrides = read_yaml(overrides, "sources file")
        if not isinstance(overrides, dict):
            raise UserError(f"{origin}: must be a mapping of source names")
    for key, value in overrides.items():
        if key in settings:
            settings[key] = None if value is None else str(value)
        elif key in remotes:
            if isinstance(value, str):
                value = {"url": value}
            if not isinstance(value, dict) or set(value) - {"url", "sha256"}:
                raise UserError(f"{origin}: {key} must be a URL or {{url, sha256}}")
            url = str(value.get("url", remotes[key].url))
            # a pin belongs to its URL: another URL without a sha256 is locked at its first download
            sha = value.get("sha256", remotes[key].sha256 if url == remotes[key].url else None)
            if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
                raise UserError(f"{origin}: {key}.sha256 must be 64 lowercase hex digits")
            remotes[key] = dataclasses.replace(remotes[key], url=url, sha256=sha)
        else:
            known = ", ".join(sorted(remotes) + sorted(settings))
            raise UserError(f"{origin}: unknown source {key!r}; known: {known}")
    return Sources(remotes, settings)


# ----------------------------------------------------------------------------- the lock file
LOCK_FORMAT = "zar-sources-lock/1"
LOCK_NAME = "sources.lock.json"


class SourceLock:
    """url -> sha256 seen at the first download (``sources.lock.json``); thread-safe."""

    def __init__(self, path: str | os.PathLike):
        import threading

        self.path = Path(path)
        self._lock = threading.Lock()
        self.entries: dict[str, dict] = {}
        if self.path.exists():
            data = read_json(self.path)
            if not isinstance(data, dict) or data.get("format") != LOCK_FORMAT \
                    or not isinstance(data.get("entries"), dict):
                raise UserError(f"{self.path}: not a {LOCK_FORMAT} file")
            for url, e in data["entries"].items():
                if not isinstance(e, dict) or not re.fullmatch(r"[0-9a-f]{64}", str(e.get("sha256"))):
                    raise UserError(f"{self.path}: entry {url!r} has no valid sha256")
            self.entries = dict(data["entries"])

    def expected(self, url: str, pin: str | None) -> tuple[str | None, str]:
        """(sha256 to verify against or None, where it comes from, for messages)."""
        if pin is not None:
            return pin, "pinned"
        e = self.entries.get(url)
        if e is not None:
            return e["sha256"], f"recorded in {self.path} at the first download"
        return None, "not pinned"

    def record(self, url: str, sha256: str, size: int) -> None:
        with self._lock:
            old = self.entries.get(url)
            if old is not None and old.get("sha256") == sha256:
                return
            self.entries[url] = {"sha256": sha256, "bytes": int(size)}
            write_json(self.path, {"format": LOCK_FORMAT, "entries": dict(sorted(self.entries.items()))})
