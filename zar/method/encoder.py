"""`zar encode`: encode every view of every video ONCE and cache the embeddings
(docs/protocol.md §3.1-3.2).

The image encoder is frozen during test-time tuning, so the per-view video embeddings
(mean of frame embeddings, L2-normalised) and the inference-clip embedding are computed
once per video, batched, under ``no_grad``; every (frame, crop) pair once even when several
views share it. All method variants (confidence ratio, rate drops, crop counts) then tune
from the cache (:mod:`zar.method.cache`) without reading the videos again. One run covers the union
of several lists (e.g. a dataset's test splits), each video once.
"""
from __future__ import annotations

import contextlib
import logging
from collections import deque
from typing import Any, Callable, Iterable, Iterator

import torch
import torch.nn.functional as F

from zar.method import views as V
from zar.model.backbone import Preprocess, autocast
from zar.method.cache import FORMAT, CacheWriter
from zar.method.frames import FramePlan, PreparedVideo, Unreadable, crop, iter_prepared, partial_record
from zar.core.splitfiles import VideoRow
from zar.core.errors import UserError

log = logging.getLogger(__name__)


PRECISIONS = ("autocast", "bf16")


class _Pending:
    """One video in the encoder's stream: its images on the device, waiting for their features."""

    def __init__(self, key: Any, prepared: dict[str, Any]):
        self.key, self.prepared = key, prepared
        self.chunks: list[tuple[int, torch.Tensor]] = []  # (first image, features) as batches finish
        self.remaining = 0


class VideoEncoder:
    """Turns prepared frames into per-view and inference-clip embeddings with a frozen CLIP.

    Videos stream through :meth:`stream`: each video's uint8 frames go to the device once
    (non-blocking; pinned by the reader's DataLoader on CUDA), the crops are slices taken
    there, and the image batches span videos so every batch but the last is full. Each
    (frame, crop) pair is encoded once even when several views share it.

    ``precision``: ``autocast`` (the protocol: fp32 weights, bf16 autocast on CUDA, fp32 on
    the CPU) or ``bf16`` (a bf16 copy of the image tower, fed bf16 images: no casts per call;
    features agree with ``autocast`` within bf16's precision). The text tower is untouched.
    """

    def __init__(self, model: torch.nn.Module, pre: Preprocess, cfg: V.ViewConfig,
                 device: str | torch.device = "cpu", batch_size: int = 256, precision: str = "autocast"):
        if precision not in PRECISIONS:
            raise UserError(f"image precision {precision!r}: choose from {', '.join(PRECISIONS)}")
        self.model = model.eval()
        self.pre = pre
        self.cfg = cfg
        self.device = torch.device(device)
        self.batch_size = batch_size
        self.precision = precision
        self.plan_views = V.view_plan(cfg)
        self.crops = V.CROP_SETS[cfg.crops] if self.plan_views else ()
        self.visual = model.visual
        self.dtype = torch.float32
        if precision == "bf16":
            import copy

            self.visual = copy.deepcopy(model.visual).to(torch.bfloat16).eval()
            self.dtype = torch.bfloat16
        self.mean = torch.tensor(pre.mean, device=self.device).view(1, 3, 1, 1)
        self.std = torch.tensor(pre.std, device=self.device).view(1, 3, 1, 1)

    @classmethod
    def for_run(cls, model: torch.nn.Module, pre: Preprocess, cfg: V.ViewConfig, run, device) -> "VideoEncoder":
        """The encoder a job's run settings (``zar.method.settings.RunConfig``) ask for."""
        return cls(model, pre, cfg, device=device, batch_size=run.batch_size, precision=run.image_precision)

    @property
    def embed_dim(self) -> int:
        d = getattr(self.model.visual, "output_dim", None)
        if d is None:
            size = self.pre.image_size
            d = self.encode_images(torch.zeros(1, 3, size, size, dtype=torch.uint8)).shape[1]
        return int(d)

    def _normalise(self, x: torch.Tensor) -> torch.Tensor:
        return ((x.to(self.device, non_blocking=True).float() / 255.0 - self.mean) / self.std).to(self.dtype)

    @torch.no_grad()
    def encode_batch(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N,3,S,S) -> unnormalised fp32 image features (N,D), one call."""
        with contextlib.nullcontext() if self.precision == "bf16" else autocast(self.device):
            return self.visual(self._normalise(images)).float()

    def encode_images(self, images: torch.Tensor) -> torch.Tensor:
        """uint8 (N,3,S,S) -> fp32 features (N,D), in batches of ``batch_size``."""
        return torch.cat([self.encode_batch(images[i:i + self.batch_size])
                          for i in range(0, images.shape[0], self.batch_size)])

    def _pieces(self, item: _Pending) -> list[tuple[_Pending, int, torch.Tensor]]:
        """The video's images on the device: the inference clip, then each crop of the view frames."""
        prepared = item.prepared
        to_dev = lambda t: t.to(self.device, non_blocking=True)  # noqa: E731
        pieces = [to_dev(prepared.infer_frames)]
        if self.plan_views:
            frames = to_dev(prepared.view_frames)
            pieces += [crop(frames, self.pre.image_size, c) for c in self.crops]  # crop-major: slices, no copy
        out, first = [], 0
        for t in pieces:
            out.append((item, first, t))
            first += t.shape[0]
        item.remaining = first
        return out

    def _finish(self, item: _Pending) -> tuple[torch.Tensor, torch.Tensor]:
        """(views (V,D), infer (D,)): L2-normalised video embeddings = mean of frame features."""
        feats = torch.cat([f for _, f in sorted(item.chunks, key=lambda c: c[0])])
        item.chunks = []
        plan: FramePlan = item.prepared.plan
        n_t = item.prepared.infer_frames.shape[0]
        infer_emb = F.normalize(feats[:n_t].mean(dim=0), dim=-1)
        if not self.plan_views:  # an inference-clip-only run (views.samples_per_rate = 0)
            return infer_emb.new_zeros((0, infer_emb.shape[0])).cpu(), infer_emb.cpu()
        pairs = feats[n_t:]  # (len(crops) * U, D), crop-major
        pos = {int(f): i for i, f in enumerate(plan.view_frames)}
        n_u = len(plan.view_frames)
        crop_slot = {c: j for j, c in enumerate(self.crops)}
        idx = torch.tensor([[crop_slot[view.crop] * n_u + pos[int(f)] for f in plan.clips[(view.rate, view.sample)]]
                            for view in self.plan_views], device=pairs.device)
        view_emb = F.normalize(pairs[idx].mean(dim=1), dim=-1)
        return view_emb.cpu(), infer_emb.cpu()

    def _run_batch(self, queue: deque, n: int) -> None:
        """Encode the first ``n`` queued images (they may come from several videos)."""
        parts, owners = [], []
        while n:
            item, first, t = queue.popleft()
            take = min(n, t.shape[0])
            parts.append(t[:take])
            owners.append((item, first, take))
            if take < t.shape[0]:
                queue.appendleft((item, first + take, t[take:]))
            n -= take
        feats = self.encode_batch(parts[0] if len(parts) == 1 else torch.cat(parts))
        at = 0
        for item, first, take in owners:
            item.chunks.append((first, feats[at:at + take]))
            item.remaining -= take
            at += take

    def stream(self, items: Iterable[tuple[Any, dict[str, Any]]],
               group: Callable[[Any], Any] | None = None) -> Iterator[tuple[Any, dict, Any, Any]]:
        """``(key, prepared)`` in, ``(key, prepared, views, infer)`` out, in the same order.

        Batches of ``batch_size`` images span videos; a video comes out once all its images
        are encoded. An unreadable one (:class:`Unreadable`) comes through in its
        place with ``views = infer = None``. ``group(key)``: batches never span two groups
        (`zar encode` groups by chunk, so a chunk encoded again after a crash meets the
        same batches and gives the same bits on any device)."""
        waiting: deque[_Pending] = deque()
        queue: deque = deque()
        queued = 0
        current = None

        def ready():
            while waiting and (isinstance(waiting[0].prepared, Unreadable) or waiting[0].remaining == 0):
                item = waiting.popleft()
                if isinstance(item.prepared, Unreadable):
                    yield item.key, item.prepared, None, None
                else:
                    yield (item.key, item.prepared, *self._finish(item))

        with torch.no_grad():
            for key, prepared in items:
                if group is not None:
                    g = group(key)
                    if g != current and queued:
                        self._run_batch(queue, queued)
                        queued = 0
                        yield from ready()
                    current = g
                item = _Pending(key, prepared)
                waiting.append(item)
                if not isinstance(prepared, Unreadable):
                    pieces = self._pieces(item)
                    queue.extend(pieces)
                    queued += item.remaining
                while queued >= self.batch_size:
                    self._run_batch(queue, self.batch_size)
                    queued -= self.batch_size
                yield from ready()
            if queued:
                self._run_batch(queue, queued)
            yield from ready()

    def encode(self, prepared: PreparedVideo) -> tuple[torch.Tensor, torch.Tensor]:
        """(views (V,D), infer (D,)) of one video (the stream of one)."""
        (_, _, views, infer), = self.stream([(None, prepared)])
        return views, infer


# ----------------------------------------------------------------------------- into a cache
def cache_header(enc: VideoEncoder, spec, run, lists: list[dict[str, str]], n_union: int) -> dict[str, Any]:
    """What a cache records of how it was made (chunks and shards of one run agree on it)."""
    cfg, pre = enc.cfg, enc.pre
    return {
        "format": FORMAT, "views_config": cfg.to_dict(), "plan": [[v.rate, v.sample, v.crop] for v in enc.plan_views],
        "backbone": spec.to_dict(), "image_precision": run.image_precision, "image_size": pre.image_size,
        "view_short_side": cfg.view_short_side(pre.image_size), "embed_dim": enc.embed_dim,
        "lists": lists, "n_union": n_union,
    }


def encode_videos(enc: VideoEncoder, todo: list[tuple[int, VideoRow]], writer: CacheWriter, run) -> None:
    """Encode ``todo`` ((union position, row) pairs) into ``writer``, reading ahead in
    ``run.workers`` processes; an unreadable video is recorded with its reason, a partial one
    is encoded from the frames that decode and recorded as such."""
    from zar.core.progress import progress

    store = getattr(torch, run.store_dtype)
    prepared = iter_prepared([r for _, r in todo], enc.cfg, enc.pre, run.backend, run.timeout, run.workers,
                             pin_memory=enc.device.type == "cuda")
    stream = enc.stream(zip(todo, prepared), group=lambda key: writer.chunk_of(key[0]))  # a rerun meets the same
    for (pos, row), p, views, infer in progress(stream, total=len(todo), desc="encode"):
        if isinstance(p, Unreadable):
            log.warning("skipped %s: %s", row.path, p.error)
            writer.skip(pos, row.video_id, row.path, p.error)
            continue
        partial = None
        if p.partial:
            log.warning("%s is damaged or truncated: encoded from the %d frames that decode (%s declared)",
                        row.path, p.frames_read, p.frames_declared)
            partial = partial_record(row, p)
        writer.add(pos, row.video_id, views.to(store), infer.to(store), p.num_frames, partial)
