"""Kinetics: video ids, lists from the annotation CSVs, YouTube clips (yt-dlp + ffmpeg), CVDF parts.

File naming: ``<split>/<youtube_id>_<start:06d>_<end:06d>.mp4``; the video id is the stem.
"""
from __future__ import annotations

import csv
import io
import json
import logging
import re
import tarfile
import threading
import time
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Callable

from zar.data.fetch import FetchError, RateLimiter, backoff_delay, warn_plain_http
from zar.core.datasets import classes_csv
from zar.core.splitfiles import VideoRow, videos_csv
from zar.data.media import ToolTimeout, ffprobe_json, last_line, run_tool
from zar.core.errors import UserError
from zar.core.files import atomic_path, atomic_write_text

log = logging.getLogger(__name__)

SPLITS = ("train", "val", "test")
YOUTUBE_ID = r"[A-Za-z0-9_-]{11}"
VIDEO_ID_RE = re.compile(rf"({YOUTUBE_ID})_(\d{{6}})_(\d{{6}})")
FILE_RE = re.compile(rf"{YOUTUBE_ID}_\d{{6}}_\d{{6}}\.mp4")


def video_id(youtube_id: str, start: int, end: int) -> str:
    return f"{youtube_id}_{start:06d}_{end:06d}"


def parse_video_id(vid: str) -> tuple[str, int, int]:
    """(youtube_id, start, end) of a Kinetics video id; ValueError if it is not one."""
    m = VIDEO_ID_RE.fullmatch(vid)
    if not m or int(m.group(3)) <= int(m.group(2)):
        raise ValueError(f"not a Kinetics video id (<youtube_id>_<start:06d>_<end:06d>): {vid!r}")
    return m.group(1), int(m.group(2)), int(m.group(3))


def entry_problem(entry: VideoRow) -> str | None:
    """Kinetics-specific check of a list row (beyond the generic one)."""
    try:
        parse_video_id(entry.video_id)
    except ValueError as e:
        return f"invalid video id: {e}"
    split = entry.path.split("/", 1)[0]
    if entry.path != f"{split}/{entry.video_id}.mp4" or split not in SPLITS:
        return f"invalid path {entry.path!r}: expected <train|val|test>/{entry.video_id}.mp4"
    return None


# ----------------------------------------------------------------------------- annotation lists
@dataclass(frozen=True)
class Annotated:
    video_id: str
    split: str
    label: str


def parse_annotations(text: str, split: str, origin: str) -> tuple[list[Annotated], list[tuple[str, str]]]:
    """Rows of an annotation CSV (label,youtube_id,time_start,time_end,...); rejected rows
    come back as (line, reason) so that none disappears unreported."""
    reader = csv.DictReader(io.StringIO(text))
    need = {"label", "youtube_id", "time_start", "time_end"}
    if not reader.fieldnames or need - set(reader.fieldnames):
        raise UserError(f"{origin}: not a Kinetics annotation CSV (needs columns {sorted(need)})")
    rows, rejected = [], []
    for lineno, r in enumerate(reader, start=2):
        where = f"{origin}:{lineno}"
        try:
            start, end = int(float(r["time_start"])), int(float(r["time_end"]))
            vid = video_id(r["youtube_id"], start, end)
            parse_video_id(vid)
        except (ValueError, TypeError) as e:
            rejected.append((where, str(e)))
            continue
        label = (r["label"] or "").strip()
        if not label:
            rejected.append((where, "no label"))
            continue
        rows.append(Annotated(vid, split, label))
    return rows, rejected


def build_lists(annotated: list[Annotated]) -> tuple[list[str], dict[str, list[tuple[str, str, str, int]]]]:
    """Class names in sorted order, and per split the rows (video_id, path, class, index)
    sorted by (class_index, video_id). A video id seen twice keeps its first row."""
    classes = sorted({a.label for a in annotated})
    index = {c: i for i, c in enumerate(classes)}
    per_split: dict[str, dict[str, tuple]] = {}
    seen: set[str] = set()
    for a in annotated:
        if a.video_id in seen:
            log.warning("video %s is annotated twice; keeping its first row", a.video_id)
            continue
        seen.add(a.video_id)
        per_split.setdefault(a.split, {})[a.video_id] = (
            a.video_id, f"{a.split}/{a.video_id}.mp4", a.label, index[a.label])
    return classes, {s: sorted(rows.values(), key=lambda r: (r[3], r[0])) for s, rows in per_split.items()}


def write_lists(out_dir: Path, classes: list[str], lists: dict[str, list[tuple]]) -> None:
    """``classes.csv`` and one video list per annotation split (formats: zar.core.splitfiles;
    the class text is the name as written, Kinetics' rule)."""
    atomic_write_text(out_dir / "classes.csv", classes_csv("k400", classes))
    for split, rows in lists.items():
        atomic_write_text(out_dir / f"{split}.csv", videos_csv(VideoRow(*r) for r in rows))


# ----------------------------------------------------------------------------- YouTube
_GONE = ("video unavailable", "private video", "has been removed", "is not available",
         "account associated", "been terminated", "confirm your age", "members-only",
         "copyright", "http error 404", "http error 410", "unsupported url", "no video formats",
         "not made this video available", "inappropriate for some users")
_THROTTLED = ("not a bot", "http error 429", "too many requests", "rate-limit", "rate limit")


def classify_error(message: str) -> str:
    """'gone' (retrying cannot help), 'throttled' (slow down), or 'transient'."""
    m = message.lower()
    if any(s in m for s in _THROTTLED):
        return "throttled"
    if any(s in m for s in _GONE):
        return "gone"
    return "transient"


class _QuietLogger:
    def debug(self, msg):
        log.debug("yt-dlp: %s", msg)

    info = debug

    def warning(self, msg):
        log.debug("yt-dlp warning: %s", msg)

    def error(self, msg):
        log.debug("yt-dlp error: %s", msg)


class YoutubeClips:
    """Fetch Kinetics clips: yt-dlp finds the stream, ffmpeg cuts [start, end) out of it.

    Each clip is re-encoded (h264, no audio) to a temporary name, checked with ffprobe,
    then renamed; ``fetch`` raises FetchError (``permanent`` when the video is gone)."""

    def __init__(self, url_template: str, fmt: str, cookies: str | None = None, *,
                 ffmpeg: str = "ffmpeg", ffprobe: str = "ffprobe", timeout: float = 300.0):
        self.url_template, self.fmt, self.cookies = url_template, fmt, cookies
        self.ffmpeg, self.ffprobe, self.timeout = ffmpeg, ffprobe, timeout
        self._local = threading.local()

    def _ydl(self):
        ydl = getattr(self._local, "ydl", None)
        if ydl is None:
            import yt_dlp

            opts = {"quiet": True, "no_warnings": True, "noprogress": True, "format": self.fmt,
                    "noplaylist": True, "socket_timeout": 30, "cachedir": False,
                    "logger": _QuietLogger(), "extractor_retries": 0}
            if self.cookies:
                opts["cookiefile"] = self.cookies
            ydl = self._local.ydl = yt_dlp.YoutubeDL(opts)
        return ydl

    def stream(self, youtube_id: str) -> tuple[str, dict]:
        import yt_dlp

        url = self.url_template.format(youtube_id=youtube_id)
        try:
            info = self._ydl().extract_info(url, download=False)
        except yt_dlp.utils.DownloadError as e:
            msg = str(e).replace("ERROR: ", "").strip()
            kind = classify_error(msg)
            err = FetchError(f"{'gone: ' if kind == 'gone' else ''}{msg}"[:300], kind == "gone")
            err.throttled = kind == "throttled"
            raise err from None
        fmt = info
        for f in info.get("requested_formats") or ():
            if f.get("vcodec") not in (None, "none"):
                fmt = f
                break
        if not fmt.get("url"):
            raise FetchError("gone: yt-dlp found no stream URL", permanent=True)
        return fmt["url"], dict(fmt.get("http_headers") or info.get("http_headers") or {})

    def fetch(self, youtube_id: str, start: int, end: int, dest: Path) -> None:
        stream_url, headers = self.stream(youtube_id)
        cmd = [self.ffmpeg, "-nostdin", "-hide_banner", "-loglevel", "error"]
        if stream_url.startswith("http"):
            cmd += ["-reconnect", "1", "-reconnect_streamed", "1", "-reconnect_delay_max", "10",
                    "-rw_timeout", "30000000"]
            if headers:
                cmd += ["-headers", "".join(f"{k}: {v}\r\n" for k, v in headers.items())]
        cmd += ["-ss", str(start), "-t", str(end - start), "-i", stream_url, "-map", "0:v:0",
                "-c:v", "libx264", "-preset", "veryfast", "-crf", "18", "-pix_fmt", "yuv420p",
                "-an", "-sn", "-dn", "-movflags", "+faststart", "-f", "mp4", "-y"]
        with atomic_path(dest, suffix=".part.mp4") as tmp:
            try:
                res = run_tool(cmd + [str(tmp)], self.timeout)
            except ToolTimeout as e:
                raise FetchError(str(e)) from None
            if res.returncode != 0:
                msg = last_line(res.stderr) or f"exit status {res.returncode}"
                if "Output file is empty" in msg or "does not contain any stream" in msg:
                    raise FetchError(f"gone: segment [{start}, {end}) is empty: {msg}", True)
                raise FetchError(f"ffmpeg: {msg}")
            try:
                probe = ffprobe_json(tmp, ["-count_packets", "-select_streams", "v:0",
                                           "-show_entries", "stream=nb_read_packets"],
                                     timeout=60, ffprobe=self.ffprobe)
                packets = int((probe.get("streams") or [{}])[0].get("nb_read_packets") or 0)
            except (RuntimeError, ToolTimeout, ValueError) as e:
                raise FetchError(f"cut clip does not probe: {e}") from None
            if packets == 0:
                raise FetchError(f"gone: segment [{start}, {end}) holds no frames", True)


def fetch_with_retries(fetch: Callable[[], None], limiter: RateLimiter, retries: int,
                       backoff: float, throttle_pause: float, stop: threading.Event) -> tuple[str, str]:
    """(status, reason) after up to ``retries`` retries of transient failures."""
    last = ""
    for attempt in range(retries + 1):
        if stop.is_set():
            return "missing", "not downloaded yet (interrupted)"
        limiter.wait()
        if stop.is_set():
            return "missing", "not downloaded yet (interrupted)"
        try:
            fetch()
            return "ok", ""
        except FetchError as e:
            if e.permanent:
                return "missing", e.reason
            last = e.reason
            if getattr(e, "throttled", False):
                log.warning("throttled (%s); pausing all downloads %.0f s", e.reason, throttle_pause)
                limiter.pause(throttle_pause)
            if attempt < retries:
                time.sleep(backoff_delay(attempt, backoff))
    return "missing", f"failed after {retries + 1} attempts: {last}"


# ----------------------------------------------------------------------------- CVDF archives
def part_urls(text: str, origin: str) -> list[str]:
    urls = []
    for line in text.splitlines():
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        if not line.startswith(("http://", "https://")):
            raise UserError(f"{origin}: not a URL: {line[:80]!r}")
        if warn_plain_http(line, pinned=False):
            log.warning("%s lists it", origin)
        urls.append(line)
    return urls


def extract_part(archive: Path, wanted: dict[str, Path]) -> list[str]:
    """Write the wanted clips of one CVDF tarball (matched by file name, wherever they sit in
    it) to their paths, each through a temporary name; return every clip name it holds.

    Only regular members named like a Kinetics clip are considered, so no member name ever
    becomes a path. Files already present are left alone."""
    names = []
    try:
        with tarfile.open(archive, "r:*") as tf:
            for m in tf:
                if not m.isreg():
                    continue
                base = PurePosixPath(m.name.replace("\\", "/")).name
                if not FILE_RE.fullmatch(base):
                    continue
                names.append(base)
                dest = wanted.get(base)
                if dest is None or dest.exists():
                    continue
                src = tf.extractfile(m)
                with atomic_path(dest, suffix=".part") as tmp, src, open(tmp, "wb") as f:
                    while True:
                        b = src.read(1 << 20)
                        if not b:
                            break
                        f.write(b)
    except (tarfile.TarError, zlib.error, EOFError, OSError) as e:
        raise FetchError(f"{archive.name}: damaged archive ({type(e).__name__}: {e})") from None
    return names


def read_marker(path: Path) -> dict | None:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None
