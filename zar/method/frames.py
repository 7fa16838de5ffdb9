"""The frames one video's views and inference clip need: which indices (a plan), read in one
batched call, resized and cropped (docs/protocol.md §3.1, §3.6). Runs in reader workers.

Per video: ONE batched read of the union of frame indices of all views and the inference
clip; each frame is resized once for the views; the inference clip's frames are resized to
the image size and centre-cropped (``views.preprocess: vifi``: ViFi-CLIP's evaluation
pipeline instead, see :func:`vifi_resize_crop`).
"""
from __future__ import annotations

import dataclasses
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch

from zar.method import views as V
from zar.model.backbone import Preprocess
from zar.core.splitfiles import VideoRow
from zar.video import VideoDecodeError, VideoInfo, read_video


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


# The views see at most a MAX_ASPECT:1 (or 1:MAX_ASPECT) region of a frame, centred: a wider
# frame (no real video is) is cropped to it before resizing, so that resizing its short side to
# the views' size cannot make a frame of 65536x256 pixels (docs/protocol.md §3.1).
MAX_ASPECT = 4


def centre_aspect(frames: torch.Tensor, max_aspect: int = MAX_ASPECT) -> torch.Tensor:
    """(N,3,H,W) frames, centre-cropped to an aspect ratio of at most ``max_aspect`` (a view of
    them, unchanged when within it)."""
    h, w = frames.shape[-2:]
    if w > max_aspect * h:
        left = (w - max_aspect * h) // 2
        return frames[..., left:left + max_aspect * h]
    if h > max_aspect * w:
        top = (h - max_aspect * w) // 2
        return frames[..., top:top + max_aspect * w, :]
    return frames


def resize_short(frames: torch.Tensor, short: int, interpolation: str = "bicubic",
                 antialias: bool = True) -> torch.Tensor:
    """uint8 (N,3,H,W) -> uint8 with the short side resized to ``short`` (antialiased unless asked not to)."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    h, w = frames.shape[-2:]
    nh, nw = V.resized_shape(h, w, short)
    if (nh, nw) == (h, w):
        return frames
    mode = {"bicubic": InterpolationMode.BICUBIC, "bilinear": InterpolationMode.BILINEAR}[interpolation]
    return TF.resize(frames, [nh, nw], interpolation=mode, antialias=antialias)


def vifi_resize_crop(frames: torch.Tensor, short: int, size: int) -> torch.Tensor:
    """ViFi-CLIP's evaluation pipeline on uint8 (N,3,H,W) frames: mmaction's ``Resize(scale=(-1,
    short))`` (the short side to ``short``, each side ``int(side * factor + 0.5)``; bilinear with
    half-pixel centres, no antialiasing, as OpenCV's INTER_LINEAR, rounded to uint8) then
    ``CenterCrop(size)`` (top-left at ``(side - size) // 2``)."""
    h, w = frames.shape[-2:]
    f = short / min(h, w)
    nh, nw = int(h * f + 0.5), int(w * f + 0.5)
    if (nh, nw) != (h, w):
        x = torch.nn.functional.interpolate(frames.float(), size=(nh, nw), mode="bilinear", align_corners=False,
                                            antialias=False)
        frames = x.round_().clamp_(0, 255).to(torch.uint8)
    top, left = (nh - size) // 2, (nw - size) // 2
    return frames[..., top:top + size, left:left + size]


def crop(frames: torch.Tensor, size: int, position: str) -> torch.Tensor:
    h, w = frames.shape[-2:]
    top, left, ch, cw = V.crop_box(h, w, size, position)
    return frames[..., top:top + ch, left:left + cw]


@dataclass
class PreparedVideo:
    """The frames one video's views and inference clip need, as a reader worker returns them.

    ``view_frames`` (U,3,h,w) uint8 at the view short side, one per index of
    ``plan.view_frames``; ``infer_frames`` (T,3,S,S) uint8 centre crops. ``partial``: the file
    is damaged or truncated, the views then cover the ``frames_read`` frames that decode, of
    ``frames_declared`` the container announces (None: it gives no count)."""

    video_id: str
    plan: FramePlan
    view_frames: torch.Tensor
    infer_frames: torch.Tensor
    num_frames: int
    fps: float
    partial: bool
    frames_read: int
    frames_declared: int | None
    read_seconds: float = 0.0

    def pin_memory(self) -> "PreparedVideo":
        """Page-locked copies of the frames (the DataLoader calls it on CUDA)."""
        return dataclasses.replace(self, view_frames=self.view_frames.pin_memory(),
                                   infer_frames=self.infer_frames.pin_memory())

    def images(self, crops: int) -> int:
        """Images the encoder computes for this video: each (frame, crop) pair once, and the clip."""
        return len(self.plan.view_frames) * crops + len(self.plan.infer)


@dataclass
class Unreadable:
    """A video that could not be read, with the reason (it is skipped and recorded, never dropped)."""

    video_id: str
    error: str
    read_seconds: float = 0.0

    def pin_memory(self) -> "Unreadable":
        return self


def prepare_video(row: VideoRow, cfg: V.ViewConfig, pre: Preprocess, backend: str = "decord",
                  timeout: float = 120.0) -> PreparedVideo | Unreadable:
    """Read and resize the frames one video needs (runs in a reader worker). Sources larger
    than the view short side are scaled down by the decoder (memory does not grow with the
    source resolution); smaller ones are read as they are."""
    holder: dict[str, FramePlan] = {}
    short = cfg.view_short_side(pre.image_size)

    def indices_fn(info: VideoInfo):
        holder["plan"] = FramePlan.make(info.num_frames, cfg, row.video_id)
        return holder["plan"].read_indices()

    try:
        frames, info = read_video(row.path, indices_fn, backend=backend, timeout=timeout, max_short_side=short)
    except VideoDecodeError as e:
        return Unreadable(row.video_id, e.reason)
    plan = holder["plan"]
    if info.num_frames != plan.num_frames:  # the reader found fewer frames than the header said
        plan = FramePlan.make(info.num_frames, cfg, row.video_id)
        try:
            frames, info = read_video(row.path, lambda _i: plan.read_indices(), backend=backend, timeout=timeout,
                                      max_short_side=short)
        except VideoDecodeError as e:
            return Unreadable(row.video_id, e.reason)
    t = centre_aspect(torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2))  # N,3,H,W uint8
    nv = len(plan.view_frames)
    vifi = cfg.preprocess == "vifi"
    view_frames = resize_short(t[:nv], short, pre.interpolation, antialias=not vifi) if nv else t[:0]
    if vifi:
        infer = vifi_resize_crop(t[nv:], short, pre.image_size).contiguous()
    else:
        infer = crop(resize_short(t[nv:], pre.image_size, pre.interpolation), pre.image_size, "center").contiguous()
    return PreparedVideo(row.video_id, plan, view_frames.contiguous(), infer, info.num_frames, info.fps,
                         bool(info.partial), info.num_frames, info.declared_frames)


class _PrepareDataset(torch.utils.data.Dataset):
    def __init__(self, rows: list[VideoRow], cfg: V.ViewConfig, pre: Preprocess, backend: str, timeout: float):
        self.rows, self.cfg, self.pre, self.backend, self.timeout = rows, cfg, pre, backend, timeout

    def __len__(self) -> int:
        return len(self.rows)

    def __getitem__(self, i: int) -> PreparedVideo | Unreadable:
        t0 = time.perf_counter()
        out = prepare_video(self.rows[i], self.cfg, self.pre, self.backend, self.timeout)
        out.read_seconds = time.perf_counter() - t0
        return out


def iter_prepared(rows: list[VideoRow], cfg: V.ViewConfig, pre: Preprocess, backend: str = "decord",
                  timeout: float = 120.0, workers: int = 0, pin_memory: bool = False):
    """Prepared videos in list order; reading runs ahead in ``workers`` processes. With
    ``pin_memory`` (CUDA) the frames come in page-locked memory, so copies to the GPU are
    asynchronous (the DataLoader pins them in a background thread)."""
    ds = _PrepareDataset(rows, cfg, pre, backend, timeout)
    loader = torch.utils.data.DataLoader(
        ds, batch_size=None, shuffle=False, num_workers=workers,
        prefetch_factor=2 if workers > 0 else None, persistent_workers=False, pin_memory=pin_memory,
    )
    yield from loader


def partial_record(row: VideoRow, prepared: PreparedVideo) -> dict[str, Any]:
    """What a result records of a video evaluated on the frames of a damaged or truncated file."""
    return {"video_id": row.video_id, "path": row.path, "frames_read": int(prepared.frames_read),
            "frames_declared": prepared.frames_declared}
