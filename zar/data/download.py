"""``zar download``: fetch a dataset's raw videos and write a manifest of every listed video.

Sources: ``youtube`` (Kinetics clips through yt-dlp, cut with ffmpeg), ``cvdf`` (Kinetics
archive parts of the CVDF mirror), ``official`` (UCF101/HMDB51 archives). Idempotent and
resumable: a video already under its final name is never fetched again (files only get
their final name after a check), interrupted HTTP downloads continue with Range requests,
archive parts and archives already extracted have ``.done`` markers, and videos that YouTube
reports gone are not asked for again unless ``--retry-gone``.
"""
from __future__ import annotations

import logging
import threading
import time
from concurrent.futures import ThreadPoolExecutor, as_completed
from pathlib import Path, PurePosixPath

from zar.data import official
from zar.data import kinetics_download as kinetics
from zar.core.datasets import DATASETS
from zar.data.fetch import FetchError, RateLimiter, verified_download
from zar.data.manifest import (DOWNLOAD_COLUMNS, entry_problem, raw_path, read_manifest, write_manifest)
from zar.data.media import container_problem, require_tool
from zar.data.urls import LOCK_NAME, Remote, SourceLock, Sources
from zar.core.splitfiles import VideoRow
from zar.core.files import atomic_write_text, write_json
from zar.core.progress import progress
from zar.core.provenance import provenance

log = logging.getLogger(__name__)

CHECKPOINT_SECONDS = 60.0


def write_annotation_lists(ds: str, root: Path, sources: Sources, *, retries: int = 3,
                           backoff: float = 2.0, lock: SourceLock | None = None) -> dict[str, int]:
    version = ds[1:]
    annotated, rejected = [], []
    for split in ("train", "val"):
        remote = sources.remote(f"k{version}_annotations_{split}")
        dest = root / "annotations" / f"{split}.csv"
        if not dest.exists():
            verified_download(remote.url, dest, remote.sha256, lock, retries=retries, backoff=backoff)
        rows, bad = kinetics.parse_annotations(dest.read_text(encoding="utf-8"), split, str(dest))
        annotated += rows
        rejected += bad
    classes, lists = kinetics.build_lists(annotated)
    kinetics.write_lists(root / "lists", classes, lists)
    if rejected:
        log.warning("%d annotation rows rejected, e.g. %s: %s (all in %s)", len(rejected),
                    *rejected[0], root / "lists" / "rejected.txt")
    atomic_write_text(root / "lists" / "rejected.txt", "".join(f"{w}\t{r}\n" for w, r in rejected))
    counts = {s: len(v) for s, v in lists.items()}
    print(f"{ds}: {len(classes)} classes; " + ", ".join(f"{s} {n} videos" for s, n in counts.items())
          + f"; {len(rejected)} rows rejected; lists in {root / 'lists'}")
    return counts


class Downloader:
    """One download run: fetch, then account for every listed video in the manifest."""

    def __init__(self, ds: str, root: Path, source: str, sources: Sources, *, workers: int = 4,
                 rate_limit: float = 10.0, retries: int = 3, backoff: float = 2.0,
                 throttle_pause: float = 300.0, retry_gone: bool = False,
                 keep_archives: bool = False, lock: SourceLock | None = None):
        self.ds, self.root, self.source, self.sources = ds, Path(root), source, sources
        self.workers, self.rate_limit, self.retries, self.backoff = workers, rate_limit, retries, backoff
        self.throttle_pause, self.retry_gone, self.keep_archives = throttle_pause, retry_gone, keep_archives
        self.lock = lock if lock is not None else SourceLock(self.root / LOCK_NAME)
        self.manifest_path = self.root / "download_manifest.csv"
        self.previous = read_manifest(self.manifest_path)
        self.outcomes: dict[str, str] = {}  # video id -> reason it is missing, from this run
        self.archives: list[dict] = []
        self.entries: list[VideoRow] = []
        self._last_checkpoint = time.monotonic()
        self.stop = threading.Event()

    # -- the run
    def run(self, entries: list[VideoRow] | None) -> dict[str, dict]:
        self.root.mkdir(parents=True, exist_ok=True)
        try:
            if self.source == "official":
                self.archives = official.fetch_and_extract(
                    self.ds, self.root, self.sources, retries=self.retries, backoff=self.backoff,
                    keep_archives=self.keep_archives, lock=self.lock)
                if entries is None:
                    entries = official.official_entries(self.ds, self.root / "annotations")
                self.entries = entries
                extracted = {p for rec in self.archives for p in rec.get("videos", ())}
                for e in entries:
                    self.outcomes[e.video_id] = (
                        "extracted once but gone from raw/ (delete archives/*.done to extract again)"
                        if e.path in extracted else "not in the archive")
            else:
                self.entries = entries
                valid = [e for e in entries if self.problem(e) is None]
                if self.source == "youtube":
                    self._youtube(valid)
                else:
                    self._cvdf(valid)
        except KeyboardInterrupt:
            self.stop.set()
            self.write()
            raise
        return self.write()

    def problem(self, e: VideoRow) -> str | None:
        why = entry_problem(e)
        if why is None and DATASETS[self.ds].kinetics:
            why = kinetics.entry_problem(e)
        return why

    def dest(self, e: VideoRow) -> Path:
        return raw_path(self.root, e.path)

    # -- manifest
    def rows(self) -> dict[str, dict]:
        rows = dict(self.previous)
        for e in self.entries:
            row = {"video_id": e.video_id, "path": e.path, "source": self.source, "bytes": ""}
            why = self.problem(e)
            if why:
                row.update(status="missing", reason=why)
            elif self.dest(e).exists():
                bad = container_problem(self.dest(e))
                row.update(status="corrupt" if bad else "ok", reason=bad or "",
                           bytes=self.dest(e).stat().st_size)
            else:
                old = self.previous.get(e.video_id, {})
                reason = self.outcomes.get(e.video_id) or (
                    old.get("reason") if old.get("status") == "missing" else None)
                row.update(status="missing", reason=reason or "not downloaded yet")
            rows[e.video_id] = row
        return rows

    def write(self) -> dict[str, dict]:
        rows = self.rows()
        write_manifest(self.manifest_path, rows, DOWNLOAD_COLUMNS)
        listed = [rows[e.video_id] for e in self.entries]
        write_json(self.root / "download_manifest.json", {
            "dataset": self.ds, "source": self.source, "archives": self.archives,
            "last_run": {"listed": len(listed), **{s: sum(r["status"] == s for r in listed)
                                                   for s in ("ok", "missing", "corrupt")}},
            "provenance": provenance()})
        self._last_checkpoint = time.monotonic()
        return rows

    def _checkpoint(self) -> None:
        if time.monotonic() - self._last_checkpoint > CHECKPOINT_SECONDS:
            self.write()

    # -- YouTube
    def _youtube(self, entries: list[VideoRow]) -> None:
        todo = []
        for e in entries:
            old = self.previous.get(e.video_id, {})
            if self.dest(e).exists():
                continue
            if (not self.retry_gone and old.get("status") == "missing"
                    and old.get("reason", "").startswith("gone:")):
                continue
            todo.append(e)
        log.info("%d of %d listed clips to fetch from YouTube", len(todo), len(entries))
        if not todo:
            return
        s = self.sources.settings
        clips = kinetics.YoutubeClips(s["youtube_url"], s["youtube_format"], s["youtube_cookies"],
                                      ffmpeg=require_tool("ffmpeg"), ffprobe=require_tool("ffprobe"))
        limiter = RateLimiter(self.rate_limit)

        def job(e: VideoRow):
            yid, start, end = kinetics.parse_video_id(e.video_id)
            return kinetics.fetch_with_retries(lambda: clips.fetch(yid, start, end, self.dest(e)),
                                               limiter, self.retries, self.backoff,
                                               self.throttle_pause, self.stop)

        self._pool(todo, job, "youtube")

    def _pool(self, items, job, desc: str) -> None:
        pool = ThreadPoolExecutor(self.workers)
        try:
            futures = {pool.submit(job, it): it for it in items}
            for fut in progress(as_completed(futures), total=len(futures), desc=desc):
                item = futures[fut]
                status, reason = fut.result()
                if status != "ok":
                    key = item.video_id if isinstance(item, VideoRow) else item
                    self.outcomes[key] = reason
                self._checkpoint()
        except BaseException:
            self.stop.set()
            pool.shutdown(wait=True, cancel_futures=True)
            raise
        pool.shutdown(wait=True)

    # -- CVDF
    def _cvdf(self, entries: list[VideoRow]) -> None:
        version = self.ds[1:]
        by_split: dict[str, list[VideoRow]] = {}
        for e in entries:
            by_split.setdefault(e.path.split("/", 1)[0], []).append(e)
        for split, ents in sorted(by_split.items()):
            wanted = {PurePosixPath(e.path).name: self.dest(e) for e in ents if not self.dest(e).exists()}
            log.info("%s %s: %d of %d listed clips to extract", self.ds, split, len(wanted), len(ents))
            if not wanted:
                continue
            try:
                failed = self._cvdf_split(version, split, wanted)
            except FetchError as e:
                failed = [f"part list: {e.reason}"]
            for e in ents:
                if failed:
                    self.outcomes[e.video_id] = (f"not extracted: {len(failed)} archive part(s) of "
                                                 f"{split} failed, e.g. {failed[0]}")
                else:
                    self.outcomes[e.video_id] = f"not in the CVDF archives of {split}"

    def _cvdf_split(self, version: str, split: str, wanted: dict[str, Path]) -> list[str]:
        """Process the parts of one split that may hold wanted clips; return failure reasons."""
        folder = self.root / "archives" / "cvdf" / split
        lst = self.sources.remote(f"k{version}_cvdf_{split}")
        list_file = folder / lst.filename
        if not list_file.exists():
            verified_download(lst.url, list_file, lst.sha256, self.lock, retries=self.retries,
                              backoff=self.backoff)
        urls = kinetics.part_urls(list_file.read_text(encoding="utf-8"), str(list_file))
        first = []
        if version == "400" and split == "train":  # replacements first: they win over the parts
            first = [self.sources.remote("k400_cvdf_replacement").url]
        todo = []
        for url in first + urls:
            marker = kinetics.read_marker(folder / f"{_part_name(url)}.done")
            if marker is None or set(marker.get("members", ())) & wanted.keys():
                todo.append(url)
        failures: list[str] = []

        def job(url: str):
            if self.stop.is_set():
                return "missing", "interrupted"
            try:
                self._cvdf_part(url, folder, wanted)
                return "ok", ""
            except FetchError as e:
                failures.append(e.reason)
                return "missing", e.reason

        head = [u for u in todo if u in first]
        for url in head:
            if job(url)[0] != "ok":
                return failures  # without the replacements, parts would bring back broken clips
        self._pool([u for u in todo if u not in first], job, f"{self.ds} {split} parts")
        return failures

    def _cvdf_part(self, url: str, folder: Path, wanted: dict[str, Path]) -> None:
        name = _part_name(url)
        replacement = self.sources.remote("k400_cvdf_replacement")
        pin = replacement.sha256 if url == replacement.url else None
        fetched = verified_download(url, folder / name, pin, self.lock, retries=self.retries,
                                    backoff=self.backoff)
        names = kinetics.extract_part(fetched.path, wanted)
        write_json(folder / f"{name}.done", {"url": url, "bytes": fetched.bytes,
                                             "sha256": fetched.sha256, "members": sorted(names)})
        self.archives.append({"url": url, "bytes": fetched.bytes, "sha256": fetched.sha256,
                              "clips": len(names)})
        if not self.keep_archives:
            fetched.path.unlink(missing_ok=True)


def _part_name(url: str) -> str:
    return Remote(url).filename
