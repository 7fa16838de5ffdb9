"""Where the raw data comes from: URLs and sha256 pins, overridable for tests and mirrors.

A pin of ``None`` means "not pinned yet": the file is accepted and the sha256 actually seen
is recorded in ``download_manifest.json`` (copy it here to pin it). A pin that is set and
differs from what was downloaded stops the download with an error naming both hashes.
The Kinetics video archives (hundreds of CVDF tarballs) are not pinned one by one: gzip's
own checksum is verified while extracting, and the observed sha256 of every part is recorded.

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

from zar.utils import UserError, read_yaml


@dataclass(frozen=True)
class Remote:
    url: str
    sha256: str | None = None  # None: not pinned yet (the observed hash is recorded)

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
    "ucf101_videos": Remote("https://www.crcv.ucf.edu/data/UCF101/UCF101.rar"),
    "ucf101_splits": Remote("https://www.crcv.ucf.edu/data/UCF101/"
                            "UCF101TrainTestSplits-RecognitionTask.zip"),
    "hmdb51_videos": Remote("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/hmdb51_org.rar"),
    "hmdb51_splits": Remote("http://serre-lab.clps.brown.edu/wp-content/uploads/2013/10/"
                            "test_train_splits.rar"),
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
            sha = value.get("sha256", remotes[key].sha256)
            if sha is not None and not re.fullmatch(r"[0-9a-f]{64}", str(sha)):
                raise UserError(f"{origin}: {key}.sha256 must be 64 lowercase hex digits")
            remotes[key] = dataclasses.replace(remotes[key], url=str(value.get("url", remotes[key].url)),
                                               sha256=sha)
        else:
            known = ", ".join(sorted(remotes) + sorted(settings))
            raise UserError(f"{origin}: unknown source {key!r}; known: {known}")
    return Sources(remotes, settings)
