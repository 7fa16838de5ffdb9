"""Video lists in, manifests out: every listed video ends up in a row with a status and a reason.

Statuses: ``ok``; ``missing`` (never obtained: gone from the source, not in the archive,
invalid id, not attempted yet); ``corrupt`` (obtained but unusable: empty, truncated, not a
video). Manifests are CSV files keyed by ``video_id``; a run updates the rows of the videos it
was given and keeps the others, so one manifest per dataset accumulates over runs.
"""
from __future__ import annotations

import csv
import io
import os
from collections import Counter
from pathlib import Path, PurePosixPath
from typing import Iterable

from zar.core.splitfiles import VideoRow, read_videos
from zar.core.errors import UserError
from zar.core.files import atomic_write_text

STATUSES = ("ok", "missing", "corrupt")
DOWNLOAD_COLUMNS = ("video_id", "path", "status", "reason", "source", "bytes")
DECODE_COLUMNS = ("video_id", "path", "status", "reason", "src_fps", "src_frames", "src_duration",
                  "frames", "fps", "width", "height", "src_codec", "src_width", "src_height",
                  "src_header_frames", "output", "seconds")


def name_problem(name: str) -> str | None:
    """Why ``name`` cannot be one path component of ours, or None if it is fine."""
    if not name:
        return "empty name"
    if name in (".", ".."):
        return f"{name!r} is not a file name"
    if name.startswith("."):
        return f"{name!r} starts with a dot"
    if len(name.encode("utf-8")) > 255:
        return "name longer than 255 bytes"
    bad = [c for c in name if c in "/\\" or ord(c) < 32 or ord(c) == 127]
    if bad:
        return f"{name!r} contains {bad[0]!r}"
    return None


def path_problem(path: str) -> str | None:
    """Why a list's relative ``path`` is unsafe to join to a root, or None."""
    if not path:
        return "empty path"
    if path.startswith("/") or (len(path) > 1 and path[1] == ":"):
        return f"{path!r} is absolute"
    for part in path.split("/"):
        why = name_problem(part)
        if why:
            return f"path {path!r}: {why}"
    return None


def entry_problem(entry: VideoRow) -> str | None:
    """Why a list row cannot become a file under a root, or None."""
    why = name_problem(entry.video_id) or path_problem(entry.path)
    if why:
        return f"invalid video id or path: {why}"
    if PurePosixPath(entry.path).stem != entry.video_id:
        return f"invalid list row: path {entry.path!r} does not end in video id {entry.video_id!r}"
    return None


def raw_path(root: Path, path: str) -> Path:
    """Where `zar download` puts the listed (POSIX, checked by ``entry_problem``) ``path``."""
    return root / "raw" / Path(*PurePosixPath(path).parts)


def read_lists(paths: Iterable[str | os.PathLike]) -> list[VideoRow]:
    """The union of several video lists (zar.core.splitfiles; a video in two lists must have
    the same path in both). Ids and paths are kept as written: ``entry_problem`` judges them."""
    merged: dict[str, VideoRow] = {}
    for p in paths:
        for e in read_videos(p):
            old = merged.get(e.video_id)
            if old is not None and old.path != e.path:
                raise UserError(f"{p}: video {e.video_id!r} has path {e.path!r} here and "
                                f"{old.path!r} in an earlier list")
            merged.setdefault(e.video_id, e)
    return list(merged.values())


def read_manifest(path: str | os.PathLike) -> dict[str, dict[str, str]]:
    """Rows by video id; an absent manifest is empty."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except FileNotFoundError:
        return {}
    rows = list(csv.DictReader(io.StringIO(text)))
    if rows and ("video_id" not in rows[0] or "status" not in rows[0]):
        raise UserError(f"{path}: not a manifest (needs video_id and status columns)")
    return {r["video_id"]: r for r in rows}


def write_manifest(path: str | os.PathLike, rows: dict[str, dict], columns: Iterable[str]) -> None:
    """Write rows sorted by (path, video_id), atomically."""
    columns = list(columns)
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=columns, extrasaction="ignore", lineterminator="\n")
    w.writeheader()
    for r in sorted(rows.values(), key=lambda r: (str(r.get("path", "")), str(r["video_id"]))):
        if r.get("status") not in STATUSES:
            raise ValueError(f"manifest row {r.get('video_id')!r} has status {r.get('status')!r}")
        w.writerow({c: _cell(r.get(c)) for c in columns})
    atomic_write_text(path, buf.getvalue())


def _cell(v) -> str:
    if v is None:
        return ""
    if isinstance(v, float):
        return f"{v:.6g}"
    return str(v)


def count_statuses(rows: Iterable[dict]) -> dict[str, int]:
    c = Counter(r["status"] for r in rows)
    return {s: c.get(s, 0) for s in STATUSES}


def summary_line(rows: Iterable[dict]) -> str:
    """'N listed: a ok, b missing, c corrupt' for the rows of the listed videos."""
    counts = count_statuses(rows)
    return f"{sum(counts.values())} listed: " + ", ".join(f"{counts[s]} {s}" for s in STATUSES)
