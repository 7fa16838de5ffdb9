"""The embedding cache `zar encode` writes and `zar tune` reads (format ``zar-embeddings/3``).

A cache holds, for each video of the union of one or more lists (each video once), its
per-view embeddings and its inference-clip embedding, plus the videos that could not be read
(with the reason) and those read only in part. It holds no labels: each tuning job takes its
videos, labels and classifier from its own list. Files carry a checksum of their content
(:mod:`zar.core.integrity`) verified on load. Shards of one run merge into the same cache whatever
their number.
"""
from __future__ import annotations

from pathlib import Path
import logging
from typing import Any

import torch

from zar.core import integrity
from zar.core.errors import UserError

log = logging.getLogger(__name__)

FORMAT = "zar-embeddings/3"
# Header keys: what a cache was made from and with. Shards of one run agree on all of them.
HEADER_KEYS = ("format", "views_config", "plan", "backbone", "image_precision", "image_size", "view_short_side",
               "embed_dim", "lists", "n_union")


def save_cache(path: str | Path, data: dict[str, Any]) -> None:
    """Write an embedding cache (or part file) atomically, with a checksum of its content."""
    integrity.save(path, data)


def load_cache(path: str | Path) -> dict[str, Any]:
    """Load an embedding cache (tensors and plain values only: ``weights_only=True``) and
    verify its content checksum; a corrupt or unverifiable cache is a UserError naming it."""
    from zar.core import integrity
    try:
        data = integrity.load(path, "embedding cache")
    except FileNotFoundError:
        raise UserError(f"{path}: embedding cache not found (run `zar encode` first)") from None
    except integrity.IntegrityError as e:
        raise UserError(f"{e}; delete it and run `zar encode` again") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT:
        raise UserError(f"{path}: not a {FORMAT} file (re-encode with this version of zar)")
    return data


def merge_caches(caches: list[dict[str, Any]], names: list[str]) -> dict[str, Any]:
    """The shards of one encoding run as one cache, in union order (the same for any shard count)."""
    first = caches[0]
    for c, n in zip(caches[1:], names[1:]):
        for key in HEADER_KEYS:
            if c[key] != first[key]:
                raise UserError(f"{n}: {key} differs from {names[0]}; shards of different runs cannot be merged")
    pos = torch.cat([c["position"] for c in caches])
    if len(set(pos.tolist())) != len(pos):
        raise UserError(f"{', '.join(names)}: the shards overlap (a video appears twice)")
    order = torch.argsort(pos)
    cat = lambda key: torch.cat([c[key] for c in caches])[order]  # noqa: E731
    ids = [x for c in caches for x in c["video_ids"]]
    merged = {k: first[k] for k in HEADER_KEYS}
    merged.update(
        video_ids=[ids[i] for i in order.tolist()], views=cat("views"), infer=cat("infer"),
        num_frames=cat("num_frames"), position=pos[order],
        skipped=sorted((s for c in caches for s in c["skipped"]), key=lambda s: s["position"]),
        partial=[x for c in caches for x in c["partial"]],
        n_in_shards=sum(c["n_in_shards"] for c in caches),
        seconds=sum(c["seconds"] for c in caches), devices=sorted({d for c in caches for d in c["devices"]}),
    )
    return merged


def open_caches(paths: list[str]) -> dict[str, Any]:
    """Load the shard files of one encoding and merge them."""
    caches = [load_cache(p) for p in paths]
    return merge_caches(caches, list(paths)) if len(caches) > 1 else caches[0]


# ----------------------------------------------------------------------------- chunks of a run
def empty_part() -> dict[str, list]:
    return {"ids": [], "views": [], "infer": [], "num_frames": [], "pos": [], "skipped": [], "partial": [],
            "seconds": 0.0}


def save_part(parts_dir: Path, index: int, header: dict, buf: dict[str, list]) -> None:
    """Write chunk ``index`` (or the next number no file has: never over a kept chunk)."""
    while (parts_dir / f"part_{index:05d}.pt").exists():
        index += 1
    save_cache(parts_dir / f"part_{index:05d}.pt", {**header, "part": buf})


def load_parts(parts_dir: Path, header: dict) -> list[dict[str, list]]:
    """Chunks a crashed run already wrote (only those made with the same settings and whose
    content checksum holds: a corrupt chunk is ignored, so its videos are encoded again)."""
    parts = []
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


def assemble(header: dict, parts: list[dict[str, list]], n_in_shard: int) -> dict[str, Any]:
    ids = [i for p in parts for i in p["ids"]]
    pos = torch.tensor([x for p in parts for x in p["pos"]], dtype=torch.long)
    order = torch.argsort(pos)
    n_views, dim = len(header["plan"]), header["embed_dim"]
    stack = lambda xs, shape: torch.stack(xs)[order] if xs else torch.zeros(shape)  # noqa: E731
    return {
        **header,
        "video_ids": [ids[i] for i in order.tolist()],
        "views": stack([x for p in parts for x in p["views"]], (0, n_views, dim)),
        "infer": stack([x for p in parts for x in p["infer"]], (0, dim)),
        "num_frames": torch.tensor([x for p in parts for x in p["num_frames"]], dtype=torch.long)[order],
        "position": pos[order],
        "skipped": sorted((s for p in parts for s in p["skipped"]), key=lambda s: s["position"]),
        "partial": [x for p in parts for x in p.get("partial", [])],
        "n_in_shards": n_in_shard,
        "seconds": float(sum(p["seconds"] for p in parts)),
    }
