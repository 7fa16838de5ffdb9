"""The embedding cache `zar encode` writes and `zar tune` reads (format ``zar-embeddings/3``).

A cache holds, for each video of the union of one or more lists (each video once), its
per-view embeddings and its inference-clip embedding, plus the videos that could not be read
(with the reason) and those read only in part. It holds no labels: each tuning job takes its
videos, labels and classifier from its own list. Files carry a checksum of their content
(:mod:`zar.core.integrity`) verified on load. Shards of one run merge into the same cache whatever
their number.
"""
from __future__ import annotations

import dataclasses
import logging
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch

from zar.core import integrity
from zar.core.errors import UserError

log = logging.getLogger(__name__)

FORMAT = "zar-embeddings/3"
# Header keys: what a cache was made from and with. Shards of one run agree on all of them.
HEADER_KEYS = ("format", "views_config", "plan", "backbone", "image_precision", "image_size", "view_short_side",
               "embed_dim", "lists", "n_union")


@dataclass
class EmbeddingCache:
    """One encoding's embeddings (a run, one shard of it, or its shards merged). Stored on disk
    as a plain dict of these fields (tensors and plain values: ``weights_only`` loading)."""

    format: str
    views_config: dict[str, Any]  # the views settings encoded (the superset of every variant's)
    plan: list[list]  # (rate, sample, crop) of each view, in the order of ``views``' second axis
    backbone: dict[str, Any]
    image_precision: str
    image_size: int
    view_short_side: int
    embed_dim: int
    lists: list[dict[str, str]]  # the video lists encoded, with their sha256
    n_union: int  # videos in the union of the lists
    video_ids: list[str]  # in union order
    views: torch.Tensor  # (N, V, D) L2-normalised view embeddings
    infer: torch.Tensor  # (N, D) inference-clip embeddings
    num_frames: torch.Tensor  # (N,) frames of each video
    position: torch.Tensor  # (N,) position in the union
    skipped: list[dict[str, Any]]  # unreadable videos with the reason
    partial: list[dict[str, Any]]  # videos encoded from the frames of a damaged or truncated file
    n_in_shards: int  # videos of the shards, encoded or skipped
    seconds: float
    devices: list[str] = field(default_factory=list)
    provenance: dict[str, Any] | None = None
    shard: list[int] | None = None  # [k, n]: shard k of n; None when merged
    # per encoded video (as video_ids): the file it was read from, {"listed": the list's path,
    # "path": resolved, "size": bytes, "mtime_ns"}; zar tune checks them (None: not recorded)
    files: list[dict[str, Any] | None] = field(default_factory=list)

    def header(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in HEADER_KEYS}

    def to_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in dataclasses.fields(self)}

    @classmethod
    def from_dict(cls, data: dict[str, Any], name: str) -> "EmbeddingCache":
        missing = [f.name for f in dataclasses.fields(cls)
                   if f.name not in data and f.default is dataclasses.MISSING and f.default_factory is dataclasses.MISSING]
        if missing:
            raise UserError(f"{name}: not a complete embedding cache (no {', '.join(missing)}); encode again")
        return cls(**{f.name: data[f.name] for f in dataclasses.fields(cls) if f.name in data})

    def save(self, path: str | Path) -> None:
        save_cache(path, self.to_dict())


def save_cache(path: str | Path, data: dict[str, Any]) -> None:
    """Write an embedding cache (or part file) atomically, with a checksum of its content."""
    integrity.save(path, data)


def load_cache(path: str | Path) -> EmbeddingCache:
    """Load an embedding cache (tensors and plain values only: ``weights_only=True``) and
    verify its content checksum; a corrupt or unverifiable cache is a UserError naming it."""
    try:
        data = integrity.load(path, "embedding cache")
    except FileNotFoundError:
        raise UserError(f"{path}: embedding cache not found (run `zar encode` first)") from None
    except integrity.IntegrityError as e:
        raise UserError(f"{e}; delete it and run `zar encode` again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a {FORMAT} file (re-encode with this version of zar)")
    return EmbeddingCache.from_dict(data, str(path))


def merge_caches(caches: list[EmbeddingCache], names: list[str]) -> EmbeddingCache:
    """The shards of one encoding run as one cache, in union order (the same for any shard count)."""
    first = caches[0]
    for c, n in zip(caches[1:], names[1:]):
        for key in HEADER_KEYS:
            if getattr(c, key) != getattr(first, key):
                raise UserError(f"{n}: {key} differs from {names[0]}; shards of different runs cannot be merged")
    pos = torch.cat([c.position for c in caches])
    if len(set(pos.tolist())) != len(pos):
        raise UserError(f"{', '.join(names)}: the shards overlap (a video appears twice)")
    order = torch.argsort(pos)
    cat = lambda key: torch.cat([getattr(c, key) for c in caches])[order]  # noqa: E731
    ids = [x for c in caches for x in c.video_ids]
    files = [x for c in caches for x in (c.files or [None] * len(c.video_ids))]
    return EmbeddingCache(
        **first.header(), video_ids=[ids[i] for i in order.tolist()], views=cat("views"), infer=cat("infer"),
        num_frames=cat("num_frames"), position=pos[order],
        skipped=sorted((s for c in caches for s in c.skipped), key=lambda s: s["position"]),
        partial=[x for c in caches for x in c.partial], n_in_shards=sum(c.n_in_shards for c in caches),
        seconds=sum(c.seconds for c in caches), devices=sorted({d for c in caches for d in c.devices}),
        files=[files[i] for i in order.tolist()],
    )


def open_caches(paths: list[str]) -> EmbeddingCache:
    """Load the shard files of one encoding and merge them."""
    caches = [load_cache(p) for p in paths]
    return merge_caches(caches, list(paths)) if len(caches) > 1 else caches[0]


# ----------------------------------------------------------------------------- chunks of a run
def empty_part() -> dict[str, list]:
    return {"ids": [], "views": [], "infer": [], "num_frames": [], "pos": [], "skipped": [], "partial": [],
            "files": [], "seconds": 0.0}


def save_part(parts_dir: Path, index: int, header: dict, buf: dict[str, list]) -> None:
    """Write chunk ``index`` (or the next number no file has: never over a kept chunk)."""
    while (parts_dir / f"part_{index:05d}.pt").exists():
        index += 1
    save_cache(parts_dir / f"part_{index:05d}.pt", {**header, "part": buf})


def file_identity(listed: str, path: str) -> dict[str, Any] | None:
    """What tells a video file from another at the same path: its size and modification time
    (``None`` when it cannot be seen; the reader then records why)."""
    try:
        st = Path(path).stat()
    except OSError:
        return None
    return {"listed": listed, "path": str(path), "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def stray_temporaries(parts_dir: Path) -> list[Path]:
    """The temporary files of chunks whose writing was cut (zar.core.files.atomic_path names
    them ``.part_NNNNN.pt.XXXX.part`` beside their final name)."""
    return sorted(parts_dir.glob(".part_*.pt.*")) if parts_dir.exists() else []


def load_parts(parts_dir: Path, header: dict) -> list[dict[str, list]]:
    """Chunks a crashed run already wrote (only those made with the same settings and whose
    content checksum holds: a corrupt chunk is ignored, so its videos are encoded again)."""
    parts = []
    for f in stray_temporaries(parts_dir):  # a chunk being written when the run was killed: never complete
        log.warning("removing %s, a chunk a killed run was writing (its videos are encoded again)", f)
        f.unlink(missing_ok=True)
    for f in sorted(parts_dir.glob("part_*.pt")) if parts_dir.exists() else []:
        try:
            data = integrity.load(f, "encode part file")
        except integrity.IntegrityError as e:
            log.warning("removing corrupt chunk %s, its videos are encoded again: %s", f, e)
            f.unlink(missing_ok=True)
            continue
        except OSError as e:
            log.warning("ignoring unreadable chunk %s, its videos are encoded again: %s", f, e)
            continue
        if not isinstance(data, dict) or any(data.get(k) != v for k, v in header.items()):
            log.warning("ignoring chunk %s written with other settings", f)
            continue
        parts.append(data["part"])
    if parts:
        log.info("resuming: %d chunks already written in %s", len(parts), parts_dir)
    return parts


def assemble(header: dict, parts: list[dict[str, list]], n_in_shard: int) -> EmbeddingCache:
    ids = [i for p in parts for i in p["ids"]]
    files = [x for p in parts for x in (p.get("files") or [None] * len(p["ids"]))]  # chunks of older runs: None
    pos = torch.tensor([x for p in parts for x in p["pos"]], dtype=torch.long)
    order = torch.argsort(pos)
    n_views, dim = len(header["plan"]), header["embed_dim"]
    stack = lambda xs, shape: torch.stack(xs)[order] if xs else torch.zeros(shape)  # noqa: E731
    return EmbeddingCache(
        **header,
        video_ids=[ids[i] for i in order.tolist()],
        views=stack([x for p in parts for x in p["views"]], (0, n_views, dim)),
        infer=stack([x for p in parts for x in p["infer"]], (0, dim)),
        num_frames=torch.tensor([x for p in parts for x in p["num_frames"]], dtype=torch.long)[order],
        position=pos[order],
        skipped=sorted((s for p in parts for s in p["skipped"]), key=lambda s: s["position"]),
        partial=[x for p in parts for x in p.get("partial", [])],
        n_in_shards=n_in_shard,
        seconds=float(sum(p["seconds"] for p in parts)),
        files=[files[i] for i in order.tolist()],
    )


class CacheWriter:
    """One `zar encode` run's cache, written chunk by chunk as the videos come: chunk ``c``
    holds the videos at union positions ``[c * chunk, (c + 1) * chunk)``, saved (with a
    checksum) under ``OUT.parts/`` once full. A rerun after a crash keeps the chunks written
    (with the same settings and an intact checksum) and encodes only the other videos;
    :meth:`finish` assembles the cache, saves it under ``OUT`` and removes the chunks."""

    def __init__(self, out: str | Path, header: dict[str, Any], chunk: int,
                 files: dict[str, dict[str, Any]] | None = None):
        self.out, self.header, self.chunk = Path(out), header, chunk
        self.files = files or {}  # video id -> the file it is read from (see EmbeddingCache.files)
        self.parts_dir = self.out.with_name(self.out.name + ".parts")
        self.done = load_parts(self.parts_dir, header)
        self.buf, self.buf_chunk, self.t0 = empty_part(), None, time.perf_counter()

    def done_ids(self) -> set[str]:
        return {v for p in self.done for v in p["ids"]} | {s["video_id"] for p in self.done for s in p["skipped"]}

    def chunk_of(self, position: int) -> int:
        return position // self.chunk

    def _close(self) -> None:
        self.buf["seconds"] = time.perf_counter() - self.t0
        save_part(self.parts_dir, len(self.done), self.header, self.buf)
        self.done.append(self.buf)
        self.buf, self.t0 = empty_part(), time.perf_counter()

    def add(self, position: int, video_id: str, views: torch.Tensor, infer: torch.Tensor, num_frames: int,
            partial: dict[str, Any] | None = None) -> None:
        """A video's embeddings (``partial``: its record when read from a damaged file)."""
        self._start(position)
        b = self.buf
        b["ids"].append(video_id)
        b["views"].append(views)
        b["infer"].append(infer)
        b["num_frames"].append(num_frames)
        b["pos"].append(position)
        b["files"].append(self.files.get(video_id))
        if partial is not None:
            b["partial"].append(partial)
        self._end(position)

    def skip(self, position: int, video_id: str, path: str, reason: str) -> None:
        """A video that could not be read: recorded with the reason."""
        self._start(position)
        self.buf["skipped"].append({"video_id": video_id, "path": path, "reason": reason, "position": position})
        self._end(position)

    def _start(self, position: int) -> None:
        if (self.buf["ids"] or self.buf["skipped"]) and self.chunk_of(position) != self.buf_chunk:
            self._close()  # the rest of that chunk was done before a crash
        self.buf_chunk = self.chunk_of(position)

    def _end(self, position: int) -> None:
        if (position + 1) % self.chunk == 0:
            self._close()

    def finish(self, n_in_shard: int, provenance: dict[str, Any], shard: list[int]) -> EmbeddingCache:
        if self.buf["ids"] or self.buf["skipped"]:
            self._close()
        cache = assemble(self.header, self.done, n_in_shard)
        cache.provenance, cache.shard, cache.devices = provenance, shard, [provenance["device"]]
        cache.save(self.out)
        for f in [*sorted(self.parts_dir.glob("part_*.pt")), *stray_temporaries(self.parts_dir)]:
            f.unlink(missing_ok=True)
        if self.parts_dir.exists():
            self.parts_dir.rmdir()
        return cache
