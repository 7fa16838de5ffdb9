"""`zar encode`: encode every view of every video of one or more lists ONCE and cache the
embeddings (docs/protocol.md §3.1-3.2); every tuning job then reads the cache."""
from __future__ import annotations

import logging
from pathlib import Path

from zar.core.errors import UserError
from zar.core.splitfiles import VideoRow

log = logging.getLogger(__name__)


def union_rows(lists: list[str], root: str | None, ext: str | None) -> tuple[list[VideoRow], dict[str, str]]:
    """The videos of several lists, each once, in order of first appearance, their paths
    resolved (``root``, ``ext``); and each one's path as listed. A video listed twice must have
    the same path (labels are the tuning's business, not the encoder's)."""
    import dataclasses

    from zar.core.splitfiles import read_videos, resolve_path
    out: dict[str, VideoRow] = {}
    listed: dict[str, str] = {}
    where: dict[str, str] = {}
    for path in lists:
        for raw in read_videos(path, None):
            row = dataclasses.replace(raw, path=resolve_path(raw.path, root, ext))
            old = out.get(row.video_id)
            if old is None:
                out[row.video_id], listed[row.video_id], where[row.video_id] = row, raw.path, path
            elif old.path != row.path:
                raise UserError(f"{path}: video {row.video_id!r} has path {row.path!r} here but {old.path!r} "
                                f"in {where[row.video_id]}")
    return list(out.values()), listed


def shard_slice(n: int, shard: str | None) -> tuple[int, int, int, int]:
    """(start, stop, k, count) of shard ``k/N`` (1-based k) over n rows: contiguous blocks."""
    if not shard:
        return 0, n, 1, 1
    try:
        k, count = (int(x) for x in shard.split("/"))
    except ValueError:
        raise UserError(f"--shard {shard!r}: expected K/N, e.g. 2/4") from None
    if not 1 <= k <= count:
        raise UserError(f"--shard {shard!r}: K must be in 1..N")
    return (k - 1) * n // count, k * n // count, k, count


def add_arguments(p) -> None:
    from zar.method.settings import add_settings_arguments

    p.add_argument("--videos", required=True, nargs="+",
                   help="video list CSV(s): their union is encoded, each video once (labels are not needed)")
    p.add_argument("--root", default=None, help="directory the relative video paths start from")
    p.add_argument("--ext", default=None, help="replace the video file suffix (e.g. .mp4 for normalised copies)")
    p.add_argument("--backbone", required=True, help="backbone name, ARCH:PRETRAINED, spec .json or checkpoint")
    p.add_argument("--out", required=True, help="embedding cache to write (.pt)")
    p.add_argument("--shard", default=None, help="encode only shard K/N of the union (contiguous blocks)")
    add_settings_arguments(p)


def outputs(args) -> list:
    out = Path(args.out)
    return [(out, "file"), (out.with_suffix(".json"), "file")]


def run(args) -> int:
    from zar.core.files import sha256_file, write_json
    from zar.core.provenance import provenance
    from zar.jobs.common import start
    from zar.method.cache import CacheWriter, file_identity
    from zar.method.encoder import VideoEncoder, cache_header, encode_videos

    job = start(args)
    rows_all, listed = union_rows(list(args.videos), args.root, args.ext)
    first, stop, k, count = shard_slice(len(rows_all), args.shard)
    rows = rows_all[first:stop]
    model, pre = job.model()
    enc = VideoEncoder.for_run(model, pre, job.settings.views, job.settings.run, job.device)
    lists = [{"path": str(p), "sha256": sha256_file(p)} for p in args.videos]
    files = {r.video_id: file_identity(listed[r.video_id], r.path) for r in rows}  # zar tune checks them
    writer = CacheWriter(args.out, cache_header(enc, job.spec, job.settings.run, lists, len(rows_all)),
                         job.settings.run.chunk, files)
    done = writer.done_ids()
    todo = [(first + i, r) for i, r in enumerate(rows) if r.video_id not in done]
    log.info("encode %d videos (shard %d/%d of the %d in %d list(s)), %d already done, %d views each, device %s",
             len(rows), k, count, len(rows_all), len(args.videos), len(rows) - len(todo), job.settings.views.n_views,
             job.device)
    encode_videos(enc, todo, writer, job.settings.run)
    prov = provenance()
    cache = writer.finish(len(rows), prov, [k, count])
    write_json(Path(args.out).with_suffix(".json"), {
        "embeddings": str(args.out), "lists": lists, "shard": [k, count], "n_in_shard": len(rows),
        "n_union": len(rows_all), "n_encoded": len(cache.video_ids), "n_skipped": len(cache.skipped),
        "skipped": cache.skipped, "partial": cache.partial, "settings": job.settings.to_dict(),
        "backbone": job.spec.to_dict(), "seconds": cache.seconds, "provenance": prov,
    })
    log.info("encoded %d of %d videos (%d skipped) -> %s", len(cache.video_ids), len(rows), len(cache.skipped),
             args.out)
    return 0
