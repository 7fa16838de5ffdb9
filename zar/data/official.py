"""UCF101 and HMDB51 from their official archives: fetch, check sha256, extract safely, list.

UCF101.rar holds ``UCF-101/<Class>/v_<Class>_gXX_cYY.avi``; hmdb51_org.rar holds one rar per
class (``brush_hair.rar`` with ``brush_hair/<file>.avi``). Videos are placed at
``raw/<parent folder>/<file>``, the official layout the lists use. The split archives are
extracted under ``annotations/``. Each archive gets a ``.done`` marker (url, bytes, sha256)
once extracted, so a rerun fetches and extracts nothing again.
"""
from __future__ import annotations

import logging
import os
import re
import shutil
from pathlib import Path

from zar.data.archives import extract_nested
from zar.data.fetch import verified_download
from zar.data.manifest import name_problem
from zar.core.splitfiles import VideoRow
from zar.data.media import VIDEO_EXTENSIONS
from zar.data.urls import Remote, SourceLock, Sources
from zar.core.errors import UserError
from zar.core.files import read_json, write_json

log = logging.getLogger(__name__)



def fetch_and_extract(dataset: str, root: Path, sources: Sources, *, retries: int, backoff: float,
                      keep_archives: bool, lock: SourceLock | None = None) -> list[dict]:
    """Make sure both archives of ``dataset`` are downloaded and extracted; return their records.
    Each is verified against its pin, or else against the lock file (recorded there at the
    first download)."""
    records = []
    for kind in ("videos", "splits"):
        remote = sources.remote(f"{dataset}_{kind}")
        records.append(_one_archive(remote, kind, root, retries=retries, backoff=backoff,
                                    keep=keep_archives, lock=lock))
    return records


def _one_archive(remote: Remote, kind: str, root: Path, *, retries: int, backoff: float,
                 keep: bool, lock: SourceLock | None = None) -> dict:
    archives = root / "archives"
    marker = archives / f"{remote.filename}.done"
    expected, origin = lock.expected(remote.url, remote.sha256) if lock else (remote.sha256, "pinned")
    if marker.exists():
        rec = read_json(marker)
        if expected is not None and rec.get("sha256") != expected:
            raise UserError(f"{marker}: extracted from a file with sha256 {rec.get('sha256')}, "
                            f"but the expected sha256 is {expected} ({origin}); delete the marker to fetch again")
        log.info("%s: already extracted (%s)", remote.filename, marker)
        return rec
    fetched = verified_download(remote.url, archives / remote.filename, remote.sha256, lock,
                                retries=retries, backoff=backoff)
    if expected is None:
        log.warning("%s has no published sha256; the sha256 seen, %s, is recorded%s", remote.filename,
                    fetched.sha256, f" in {lock.path} and verified from now on" if lock else "")
    tmp = root / ".extract" / remote.filename
    if tmp.exists():
        shutil.rmtree(tmp)
    log.info("extracting %s", fetched.path)
    files = extract_nested(fetched.path, tmp, depth=2)
    if kind == "videos":
        videos = _place_videos(files, tmp, root / "raw")
        placed = {"files": len(videos), "videos": videos}
    else:
        placed = {"files": _place_tree(files, tmp, root / "annotations")}
    shutil.rmtree(tmp)
    rec = {"url": remote.url, "file": remote.filename, "bytes": fetched.bytes,
           "sha256": fetched.sha256, "pinned": remote.sha256 is not None,
           "verified": "pin" if remote.sha256 else ("lock" if expected else "recorded in the lock"), **placed}
    write_json(marker, rec)
    if not keep:
        os.remove(fetched.path)
    return rec


def _place_videos(files: list[Path], tmp: Path, raw: Path) -> list[str]:
    """Move videos to raw/<parent folder>/<name>; return the relative paths the archive held."""
    placed = []
    for f in files:
        if f.suffix.lower() not in VIDEO_EXTENSIONS:
            continue
        if f.parent == tmp or name_problem(f.parent.name) or name_problem(f.name):
            log.warning("%s: not under a class folder or badly named; not placed", f)
            continue
        dest = raw / f.parent.name / f.name
        placed.append(f"{f.parent.name}/{f.name}")
        if dest.exists():
            continue
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, dest)
    return sorted(placed)


def _place_tree(files: list[Path], tmp: Path, out: Path) -> int:
    for f in files:
        dest = out / f.relative_to(tmp)
        dest.parent.mkdir(parents=True, exist_ok=True)
        os.replace(f, dest)
    return len(files)


_UCF_LIST = re.compile(r"(train|test)list0[1-3]\.txt")
_HMDB_LIST = re.compile(r"(.+)_test_split[1-3]\.txt")


def official_entries(dataset: str, annotations: Path) -> list[VideoRow]:
    """Every video named in the official split files (UCF101: train/test lists 1-3; HMDB51:
    the per-class split files, which name all videos of the class)."""
    out: dict[str, VideoRow] = {}
    files = sorted(p for p in annotations.rglob("*.txt") if p.is_file())
    used = 0
    for f in files:
        if dataset == "ucf101":
            if not _UCF_LIST.fullmatch(f.name):
                continue
            paths = [line.split()[0] for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        else:
            m = _HMDB_LIST.fullmatch(f.name)
            if not m:
                continue
            paths = [f"{m.group(1)}/{line.split()[0]}"
                     for line in f.read_text(encoding="utf-8").splitlines() if line.strip()]
        used += 1
        for p in paths:
            p = p.replace("\\", "/")
            vid = Path(p).stem
            out.setdefault(vid, VideoRow(vid, p, p.split("/")[0]))
    if used == 0:
        raise UserError(f"{annotations}: no official split files found; give --list CSV")
    return list(out.values())
