"""Encode every view of every video ONCE and cache the embeddings (docs/protocol.md §3.1-3.2).

The image encoder is frozen during test-time tuning, so the per-view video embeddings
(mean of frame embeddings, L2-normalised) and the inference-clip embedding are computed
once per video, batched, under ``no_grad``. All method variants (confidence ratio, rate
drops, crop counts) then tune from this cache without reading the videos again.

Per video: ONE batched read of the union of frame indices of all views and the inference
clip; each (frame, crop) pair is encoded once even when several views share it.

A cache covers the union of one or more video lists (e.g. the three test splits of a
dataset, which share most of their videos): each video is encoded once, and each split's
tuning job picks its videos, labels and classifier from its own list (``zar tune``). It
holds no labels.
"""
from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import torch.nn.functional as F

from zar import views as V
from zar.backbone import Preprocess, autocast
from zar.lists import VideoRow
from zar.video import VideoDecodeError, VideoInfo, read_video

log = logging.getLogger(__name__)

FORMAT = "zar-embeddings/2"


@dataclass
class FramePlan:
    num_frames: int
    clips: dict[tuple[int, int], np.ndarray]  # (rate, sample) -> T indices
    infer: np.ndarray  # T indices of the inference clip
    view_frames: np.ndarray  # sorted unique indices used by the views

    @classmethod
    def make(cls, num_frames: int, cfg: V.ViewConfig, video_id: str) -> "FramePlan":
        clips = V.all_clip_indices(num_frames, cfg, video_id)
        infer = V.inference_indices(num_frames, cfg.infer_frames)
        view_frames = np.unique(np.concatenate(list(clips.values()) or [np.zeros(0, np.int64)]))
        return cls(num_frames, clips, infer, view_frames)

    def read_indices(self) -> np.ndarray:
        return np.concatenate([self.view_frames, self.infer])


def _resize_short(frames: torch.Tensor, short: int, interpolation: str = "bicubic") -> torch.Tensor:
    """uint8 (N,3,H,W) -> uint8 with the short side resized to ``short`` (antialiased)."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    h, w = frames.shape[-2:]
    nh, nw = V.resized_shape(h, w, short)
    if (nh, nw) == (h, w):
        return frames
    mode = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}[interpolation]
    return TF.resize(frames, [nh, nw], interpolation=mode, antialias=True)


def _crop(frames: torch.Tensor, size: int, position: str) -> torch.Tensor:
    h, w = frames.shape[-2:]
    top, left, ch, cw = V.crop_box(h, w, size, position)
    return frames[..., top:top + ch, left:left + cw]


def prepare_video(row: VideoRow, cfg: V.ViewConfig, pre: Preprocess, backend: str = "decord",
                  timeout: float = 120.0) -> dict[str, Any]:
    """Read and resize the frames one video needs (runs in a reader worker).

    Returns ``{"video_id", "plan", "view_frames" (U,3,h,w) uint8 at the view short side,
    "infer_frames" (T,3,S,S) uint8 centre crops, "num_frames", "fps", "partial",
    "frames_read", "frames_declared"}``, or ``{"video_id", "error"}``. ``partial`` is True
    when the file is damaged or truncated: the views then cover the ``frames_read`` frames
    that decode, of ``frames_declared`` the container announces (None: it gives no count).
    Sources larger than the view short side are scaled down by the decoder (memory does not
    grow with the source resolution); smaller ones are read as they are.
    """
    holder: dict[str, FramePlan] = {}
    short = cfg.view_short_side(pre.image_size)

    def indices_fn(info: VideoInfo):
        holder["plan"] = FramePlan.make(info.num_frames, cfg, row.video_id)
        return holder["plan"].read_indices()

    try:
        frames, info = read_video(row.path, indices_fn, backend=backend, timeout=timeout, max_short_side=short)
    except VideoDecodeError as e:
        return {"video_id": row.video_id, "error": e.reason}
    plan = holder["plan"]
    if info.num_frames != plan.num_frames:  # the reader found fewer frames than the header said
        plan = FramePlan.make(info.num_frames, cfg, row.video_id)
        try:
            frames, info = read_video(row.path, lambda _i: plan.read_indices(), backend=backend, timeout=timeout,
                                      max_short_side=short)
        except VideoDecodeError as e:
            return {"video_id": row.video_id, "error": e.reason}
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)  # N,3,H,W uint8
    nv = len(plan.view_frames)
    view_frames = _resize_short(t[:nv], short, pre.interpolation) if nv else t[:0]
    infer = _crop(_resize_short(t[nv:], pre.image_size, pre.interpolation), pre.image_size, "center").contiguous()
    return {"video_id": row.video_id, "plan": plan, "view_frames": view_frames.contiguous(),
            "infer_frames": infer, "num_frames": info.num_frames, "fps": info.fps,
            "partial": bool(info.partial), "frames_read": info.num_frames, "frames_declared": info.declared_frames}


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
        pair_images = torch.cat([_crop(frames, size, c) for c in crops])
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


class _PrepareDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[VideoRow], cfg: V.ViewConfig, pre: Preprocess, backend: str, timeout: float):
        self.rows, self.cfg, self.pre, self.backend, self.timeout = rows, cfg, pre, backend, timeout

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> dict[str, Any]:
        t0 = time.perf_counter()
        out = prepare_video(self.rows[i], self.cfg, self.pre, self.backend, self.timeout)
        out["read_seconds"] = time.perf_counter() - t0
        return out


def iter_prepared(rows: list[VideoRow], cfg: V.ViewConfig, pre: Preprocess, backend: str = "decord",
                  timeout: float = 120.0, workers: int = 0):
    """Prepared videos in list order; reading runs ahead in ``workers`` processes."""
    ds = _PrepareDataset(rows, cfg, pre, backend, timeout)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, shuffle=False, num_workers=workers,
        prefetch_factor=2 if workers > 0 else None, persistent_workers=False,
    )
    yield from loader


# ----------------------------------------------------------------------------- the cache
# Header keys: what a cache was made from and with. Shards of one run agree on all of them.
HEADER_KEYS = ("format", "views_config", "plan", "backbone", "image_size", "view_short_side", "embed_dim",
               "lists", "n_union")


def save_cache(path: str | Path, data: dict[str, Any]) -> None:
    """Write an embedding cache (or part file) atomically, with a checksum of its content."""
    from zar import integrity

    integrity.save(path, data)


def load_cache(path: str | Path) -> dict[str, Any]:
    """Load an embedding cache (tensors and plain values only: ``weights_only=True``) and
    verify its content checksum; a corrupt or unverifiable cache is a UserError naming it."""
    from zar import integrity
    from zar.utils import UserError

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
    from zar.utils import UserError

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


def union_rows(lists: list[str], root: str | None, ext: str | None) -> list[VideoRow]:
    """The videos of several lists, each once, in order of first appearance. A video listed
    twice must have the same path (labels are the tuning's business, not the encoder's)."""
    from zar.lists import read_videos
    from zar.utils import UserError

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


def open_caches(paths: list[str]) -> dict[str, Any]:
    """Load the shard files of one encoding and merge them."""
    caches = [load_cache(p) for p in paths]
    return merge_caches(caches, list(paths)) if len(caches) > 1 else caches[0]


# ----------------------------------------------------------------------------- verb
def shard_slice(n: int, shard: str | None) -> tuple[int, int, int, int]:
    """(start, stop, k, count) of shard ``k/N`` (1-based k) over n rows: contiguous blocks."""
    from zar.utils import UserError

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
    from zar.backbone import build_model, parse_spec
    from zar.config import load_settings
    from zar.utils import progress, provenance, sha256_file, write_json

    settings = load_settings(args.config, args.set)
    cfg, runcfg = settings.views, settings.run
    device = runcfg.resolved_device()
    rows_all = union_rows(list(args.videos), args.root, args.ext)
    start, stop, k, count = shard_slice(len(rows_all), args.shard)
    rows = rows_all[start:stop]
    out = Path(args.out)
    parts_dir = out.with_name(out.name + ".parts")
    spec = parse_spec(args.backbone)
    model, pre = build_model(spec, device=device)
    enc = VideoEncoder(model, pre, cfg, device=device, batch_size=runcfg.batch_size)
    header = {
        "format": FORMAT, "views_config": cfg.to_dict(), "plan": [[v.rate, v.sample, v.crop] for v in enc.plan_views],
        "backbone": spec.to_dict(), "image_size": pre.image_size,
        "view_short_side": cfg.view_short_side(pre.image_size), "embed_dim": enc.embed_dim,
        "lists": [{"path": str(p), "sha256": sha256_file(p)} for p in args.videos], "n_union": len(rows_all),
    }
    done = _load_parts(parts_dir, header)
    done_ids = {vid for part in done for vid in part["ids"]} | {s["video_id"] for part in done for s in part["skipped"]}
    todo = [(start + i, r) for i, r in enumerate(rows) if r.video_id not in done_ids]
    log.info("encode %d videos (shard %d/%d of the %d in %d list(s)), %d already done, %d views each, device %s",
             len(rows), k, count, len(rows_all), len(args.videos), len(rows) - len(todo), cfg.n_views, device)
    t0 = time.perf_counter()
    buf: dict[str, list] = _empty_part()
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
            _save_part(parts_dir, len(done), header, buf)
            done.append(buf)
            buf, t0 = _empty_part(), time.perf_counter()
    if buf["ids"] or buf["skipped"]:
        buf["seconds"] = time.perf_counter() - t0
        _save_part(parts_dir, len(done), header, buf)
        done.append(buf)
    prov = provenance()
    cache = _assemble(header, done, n_in_shard=len(rows))
    cache.update(provenance=prov, shard=[k, count], devices=[prov["device"]])
    save_cache(out, cache)
    n_ok, n_skip = len(cache["video_ids"]), len(cache["skipped"])
    write_json(out.with_suffix(".json"), {
        "embeddings": str(out), "lists": header["lists"], "shard": [k, count], "n_in_shard": len(rows),
        "n_union": len(rows_all), "n_encoded": n_ok, "n_skipped": n_skip, "skipped": cache["skipped"],
        "partial": cache["partial"],
        "settings": settings.to_dict(), "backbone": spec.to_dict(), "seconds": cache["seconds"],
        "provenance": prov,
    })
    for f in sorted(parts_dir.glob("part_*.pt")):
        f.unlink()
    if parts_dir.exists():
        parts_dir.rmdir()
    log.info("encoded %d of %d videos (%d skipped) -> %s", n_ok, len(rows), n_skip, out)
    return 0


def _empty_part() -> dict[str, list]:
    return {"ids": [], "views": [], "infer": [], "num_frames": [], "pos": [], "skipped": [], "partial": [],
            "seconds": 0.0}


def partial_record(row: VideoRow, prepared: dict[str, Any]) -> dict[str, Any]:
    """What a result records of a video evaluated on the frames of a damaged or truncated file."""
    return {"video_id": row.video_id, "path": row.path, "frames_read": int(prepared["frames_read"]),
            "frames_declared": prepared["frames_declared"]}


def _save_part(parts_dir: Path, index: int, header: dict, buf: dict[str, list]) -> None:
    """Write chunk ``index`` (or the next number no file has: never over a kept chunk)."""
    while (parts_dir / f"part_{index:05d}.pt").exists():
        index += 1
    save_cache(parts_dir / f"part_{index:05d}.pt", {**header, "part": buf})


def _load_parts(parts_dir: Path, header: dict) -> list[dict[str, list]]:
    """Chunks a crashed run already wrote (only those made with the same settings and whose
    content checksum holds: a corrupt chunk is ignored, so its videos are encoded again)."""
    from zar import integrity

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


def _assemble(header: dict, parts: list[dict[str, list]], n_in_shard: int) -> dict[str, Any]:
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
