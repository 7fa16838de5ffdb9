"""`zar encode`: encode every view of every video ONCE and cache the embeddings
(docs/protocol.md §3.1-3.2).

The image encoder is frozen during test-time tuning, so the per-view video embeddings
(mean of frame embeddings, L2-normalised) and the inference-clip embedding are computed
once per video, batched, under ``no_grad``; every (frame, crop) pair once even when several
views share it. All method variants (confidence ratio, rate drops, crop counts) then tune
from the cache (:mod:`zar.cache`) without reading the videos again. One run covers the union
of several lists (e.g. a dataset's test splits), each video once.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F

from zar import views as V
from zar.backbone import Preprocess, autocast
from zar.cache import FORMAT, assemble, empty_part, load_parts, save_cache, save_part
from zar.frames import FramePlan, crop, iter_prepared, partial_record
from zar.splits.formats import VideoRow
from zar.utils import UserError

log = logging.getLogger(__name__)


class VideoEncoder:
    """Turns prepared frames into per-view and inference-clip embeddings with a frozen CLIP."""

    def __init__(self, model: torch.nn.Module, pre: Preprocess, cfg: V.ViewConfig,
                 device: str | torch.device = "cpu", batch_size: int = 256):
        self.model = model.eval()
        self.pre = pre
        self.cfg = cfg
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.plan_views = V.view_plan(cfg)
        self.mean = torch.tensor(pre.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std, device=self.device).view(1, 3, 1, 1)

    @property
    def embed_dim(self) -> int:
        d = getattr(self.model.visual, "output_dim", None)
        if d is None:
            size = self.pre.image_size
            d = self._encode_images(torch.zeros(1, 3, size, size, dtype=torch.uint8)).shape[1]
        return int(d)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return (x.to(self.device, non_blocking=True).float() / 255.0 - self.mean) / self.std

    @torch.no_grad()
    def _encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N,3,S,S) -> unnormalised fp32 image features (N,D), in batches."""
        outs = []
        for i in range(0, images.shape[0], self.batch_size):
            with autocast(self.device):
                f = self.model.encode_image(self._normalise(images[i:i + self.batch_size]))
            outs.append(f.float())
        return torch.cat(outs)

    @torch.no_grad()
    def encode(self, prepared: dict[str, Any]) -> tuple[torch.Tensor, torch.Tensor]:
        """(views (V,D), infer (D,)): L2-normalised video embeddings = mean of frame features."""
        plan: FramePlan = prepared["plan"]
        frames = prepared["view_frames"]
        size = self.pre.image_size
        infer_emb = F.normalize(self._encode_images(prepared["infer_frames"]).mean(dim=0), dim=-1)
        if not self.plan_views:  # an inference-clip-only run (views.samples_per_rate = 0)
            return infer_emb.new_zeros((0, infer_emb.shape[0])).cpu(), infer_emb.cpu()
        crops = V.CROP_SETS[self.cfg.crops]
        # every (frame, crop) pair once: crop-major so each crop is one strided slice
        pair_images = torch.cat([crop(frames, size, c) for c in crops])
        feats = self._encode_images(pair_images)  # (len(crops) * U, D)
        pos = {int(f): i for i, f in enumerate(plan.view_frames)}
        n_u = len(plan.view_frames)
        crop_slot = {c: j for j, c in enumerate(crops)}
        rows = []
        for view in self.plan_views:
            idx = torch.tensor([crop_slot[view.crop] * n_u + pos[int(f)] for f in plan.clips[(view.rate, view.sample)]],
                               device=feats.device)
            rows.append(feats.index_select(0, idx).mean(dim=0))
        view_emb = F.normalize(torch.stack(rows), dim=-1)
        return view_emb.cpu(), infer_emb.cpu()


# ----------------------------------------------------------------------------- verb
def union_rows(lists: list[str], root: str | None, ext: str | None) -> list[VideoRow]:
    """The videos of several lists, each once, in order of first appearance. A video listed
    twice must have the same path (labels are the tuning's business, not the encoder's)."""
    from zar.splits.formats import read_videos
    out: dict[str, VideoRow] = {}
    where: dict[str, str] = {}
    for path in lists:
        for row in read_videos(path, None, root, ext):
            old = out.get(row.video_id)
            if old is None:
                out[row.video_id], where[row.video_id] = row, path
            elif old.path != row.path:
                raise UserError(f"{path}: video {row.video_id!r} has path {row.path!r} here but {old.path!r} "
                                f"in {where[row.video_id]}")
    return list(out.values())


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
    from zar.config import add_settings_arguments

    p.add_argument("--videos", required=True, nargs="+",
                   help="video list CSV(s): their union is encoded, each video once (labels are not needed)")
    p.add_argument("--root", default=None, help="directory the relative video paths start from")
    p.add_argument("--ext", default=None, help="replace the video file suffix (e.g. .mp4 for normalised copies)")
    p.add_argument("--backbone", required=True, help="backbone name, ARCH:PRETRAINED, spec .json or checkpoint")
    p.add_argument("--out", required=True, help="embedding cache to write (.pt)")
    p.add_argument("--shard", default=None, help="encode only shard K/N of the union (contiguous blocks)")
    add_settings_arguments(p)


def run(args) -> int:
    from zar.job import start
    from zar.utils import progress, provenance, sha256_file, write_json

    job = start(args)
    cfg, runcfg, device, spec = job.settings.views, job.settings.run, job.device, job.spec
    rows_all = union_rows(list(args.videos), args.root, args.ext)
    start, stop, k, count = shard_slice(len(rows_all), args.shard)
    rows = rows_all[start:stop]
    out = Path(args.out)
    parts_dir = out.with_name(out.name + ".parts")
    model, pre = job.model()
    enc = VideoEncoder(model, pre, cfg, device=device, batch_size=runcfg.batch_size)
    header = {
        "format": FORMAT, "views_config": cfg.to_dict(), "plan": [[v.rate, v.sample, v.crop] for v in enc.plan_views],
        "backbone": spec.to_dict(), "image_size": pre.image_size,
        "view_short_side": cfg.view_short_side(pre.image_size), "embed_dim": enc.embed_dim,
        "lists": [{"path": str(p), "sha256": sha256_file(p)} for p in args.videos], "n_union": len(rows_all),
    }
    done = load_parts(parts_dir, header)
    done_ids = {vid for part in done for vid in part["ids"]} | {s["video_id"] for part in done for s in part["skipped"]}
    todo = [(start + i, r) for i, r in enumerate(rows) if r.video_id not in done_ids]
    log.info("encode %d videos (shard %d/%d of the %d in %d list(s)), %d already done, %d views each, device %s",
             len(rows), k, count, len(rows_all), len(args.videos), len(rows) - len(todo), cfg.n_views, device)
    t0 = time.perf_counter()
    buf: dict[str, list] = empty_part()
    store = getattr(torch, runcfg.store_dtype)
    prepared_iter = iter_prepared([r for _, r in todo], cfg, pre, runcfg.backend, runcfg.timeout, runcfg.workers)
    for (pos, row), prepared in progress(zip(todo, prepared_iter), total=len(todo), desc="encode"):
        if "error" in prepared:
            log.warning("skipped %s: %s", row.path, prepared["error"])
            buf["skipped"].append({"video_id": row.video_id, "path": row.path, "reason": prepared["error"],
                                   "position": pos})
        else:
            views, infer = enc.encode(prepared)
            buf["ids"].append(row.video_id)
            buf["views"].append(views.to(store))
            buf["infer"].append(infer.to(store))
            buf["num_frames"].append(prepared["num_frames"])
            buf["pos"].append(pos)
            if prepared.get("partial"):
                log.warning("%s is damaged or truncated: encoded from the %d frames that decode (%s declared)",
                            row.path, prepared["frames_read"], prepared["frames_declared"])
                buf["partial"].append(partial_record(row, prepared))
        if len(buf["ids"]) + len(buf["skipped"]) >= runcfg.chunk:
            buf["seconds"] = time.perf_counter() - t0
            save_part(parts_dir, len(done), header, buf)
            done.append(buf)
            buf, t0 = empty_part(), time.perf_counter()
    if buf["ids"] or buf["skipped"]:
        buf["seconds"] = time.perf_counter() - t0
        save_part(parts_dir, len(done), header, buf)
        done.append(buf)
    prov = provenance()
    cache = assemble(header, done, n_in_shard=len(rows))
    cache.update(provenance=prov, shard=[k, count], devices=[prov["device"]])
    save_cache(out, cache)
    n_ok, n_skip = len(cache["video_ids"]), len(cache["skipped"])
    write_json(out.with_suffix(".json"), {
        "embeddings": str(out), "lists": header["lists"], "shard": [k, count], "n_in_shard": len(rows),
        "n_union": len(rows_all), "n_encoded": n_ok, "n_skipped": n_skip, "skipped": cache["skipped"],
        "partial": cache["partial"],
        "settings": job.settings.to_dict(), "backbone": spec.to_dict(), "seconds": cache["seconds"],
        "provenance": prov,
    })
    for f in sorted(parts_dir.glob("part_*.pt")):
        f.unlink()
    if parts_dir.exists():
        parts_dir.rmdir()
    log.info("encoded %d of %d videos (%d skipped) -> %s", n_ok, len(rows), n_skip, out)
    return 0
