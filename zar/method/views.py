"""Where the views of a video come from (docs/protocol.md §3.1): frame indices and crop boxes.

A view is (rate, sample, crop). Rate r means a window of 1/r of the video; each rate gives
``samples_per_rate`` clips of ``frames`` indices; every clip is cropped at each crop position.
The temporal draw of a clip depends only on (seed, video id, rate, sample), so removing
crops or rates (the ablations) keeps the remaining views identical, and a video's views are
the same whatever order, shard, process or machine evaluates it.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np

from zar.core.fields import check, setting
from zar.core.files import stable_int

# Crop positions on a 3x3 grid: (fraction of the free range along x, along y).
CROP_POSITIONS: dict[str, tuple[float, float]] = {
    "top_left": (0.0, 0.0), "top": (0.5, 0.0), "top_right": (1.0, 0.0),
    "left": (0.0, 0.5), "center": (0.5, 0.5), "right": (1.0, 0.5),
    "bottom_left": (0.0, 1.0), "bottom": (0.5, 1.0), "bottom_right": (1.0, 1.0),
}
CROP_SETS: dict[int, tuple[str, ...]] = {
    1: ("center",),
    3: ("left", "center", "right"),
    5: ("left", "center", "right", "top", "bottom"),
    9: ("top_left", "top", "top_right", "left", "center", "right", "bottom_left", "bottom", "bottom_right"),
}
DEFAULT_RATES = (1, 2, 4, 8)


@dataclass(frozen=True)
class ViewConfig:
    """The views of one video and the inference clip. Defaults are the paper's: 3 crops x 4
    rates x 4 samples of 16-frame views, and a 16-frame inference clip (docs/protocol.md §3.1, §3.6)."""

    frames: int = setting(16, "integer", "frames per tuning view (T; the paper's base-to-novel setting: 8; at "
                          "most 1024: 48 such views at 224 px are 30 GB of pixels)", minimum=1, maximum=1024)
    infer_frames: int = setting(16, "integer", "frames of the inference clip (16 in every setting of the "
                                "paper: its single 16x3x224^2 clip)", minimum=1, maximum=1024)
    rates: tuple[int, ...] = setting(DEFAULT_RATES, "array", "sampling rates: a view's window spans 1/rate "
                                     "of the video", items={"type": "integer", "minimum": 1, "maximum": 1024},
                                     minItems=1, maxItems=16, uniqueItems=True)
    samples_per_rate: int = setting(4, "integer", "temporal samples per rate (0: no views, only the "
                                    "inference clip, for vanilla runs)", minimum=0, maximum=64)
    crops: int = setting(3, "integer", "crop positions per temporal sample (1 centre; 3 left/centre/right; "
                         "5 adds top/bottom; 9 the 3x3 grid)", enum=sorted(CROP_SETS))
    short_side: int | None = setting(None, "integer", "short side the frames are resized to before the view "
                                     "crops (null: image size x 256/224)", nullable=True, minimum=16, maximum=4096)
    seed: int = setting(0, "integer", "seed of the views' temporal sampling (with the video id)", minimum=0,
                        maximum=2**63 - 1)
    preprocess: str = setting("backbone", "string", "how frames are resized, cropped and normalised: backbone (the "
                              "protocol: the backbone's normalisation and interpolation, antialiased; the inference "
                              "clip's short side resized to the image size) or vifi (ViFi-CLIP's evaluation "
                              "pipeline: short side to image size x 256/224, bilinear without antialiasing, centre "
                              "crop at (w - s) // 2, ImageNet mean and std)", enum=["backbone", "vifi"])

    def __post_init__(self):
        check(self, "views")
        object.__setattr__(self, "rates", tuple(int(r) for r in self.rates))

    @property
    def n_views(self) -> int:
        return len(self.rates) * self.samples_per_rate * self.crops

    def view_short_side(self, image_size: int) -> int:
        return int(self.short_side) if self.short_side else int(round(image_size * 256 / 224))

    def to_dict(self) -> dict:
        d = asdict(self)
        d["rates"] = list(self.rates)
        return d


@dataclass(frozen=True)
class View:
    rate: int
    sample: int
    crop: str

    def key(self) -> str:
        return f"r{self.rate}/s{self.sample}/{self.crop}"


def view_plan(cfg: ViewConfig) -> list[View]:
    """All views in canonical order: rate, then sample, then crop."""
    return [View(r, s, c) for r in cfg.rates for s in range(cfg.samples_per_rate) for c in CROP_SETS[cfg.crops]]


def _rng(seed: int, video_id: str, rate: int, sample: int) -> np.random.Generator:
    return np.random.default_rng(np.random.SeedSequence([int(seed), stable_int("video", video_id), rate, sample]))


def segment_indices(num_frames: int, frames: int, start: float, length: float, offsets: np.ndarray) -> np.ndarray:
    """One index per equal segment of the window [start, start+length): floor(start + (i+u_i)*length/T)."""
    seg = length / frames
    idx = np.floor(start + (np.arange(frames) + offsets) * seg).astype(np.int64)
    return np.clip(idx, 0, num_frames - 1)


def clip_indices(num_frames: int, cfg: ViewConfig, video_id: str, rate: int, sample: int) -> np.ndarray:
    """The T frame indices of one view clip: a window of num_frames/rate frames at a random
    start, one random index inside each of T equal segments (our choice, docs/protocol.md §3.1)."""
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    rng = _rng(cfg.seed, video_id, rate, sample)
    length = num_frames / rate
    start = rng.uniform(0.0, num_frames - length) if rate > 1 else 0.0
    offsets = rng.uniform(0.0, 1.0, size=cfg.frames)
    return segment_indices(num_frames, cfg.frames, start, length, offsets)


def inference_indices(num_frames: int, frames: int) -> np.ndarray:
    """The inference clip: T segment centres over the whole video."""
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    return segment_indices(num_frames, frames, 0.0, float(num_frames), np.full(frames, 0.5))


def all_clip_indices(num_frames: int, cfg: ViewConfig, video_id: str) -> dict[tuple[int, int], np.ndarray]:
    """{(rate, sample): indices} for every temporal clip of the plan."""
    return {(r, s): clip_indices(num_frames, cfg, video_id, r, s)
            for r in cfg.rates for s in range(cfg.samples_per_rate)}


def crop_box(height: int, width: int, size: int, position: str) -> tuple[int, int, int, int]:
    """(top, left, h, w) of a size x size crop at a named grid position of a height x width frame."""
    if height < size or width < size:
        raise ValueError(f"frame {height}x{width} is smaller than the crop {size}")
    fx, fy = CROP_POSITIONS[position]
    top = int(round((height - size) * fy))
    left = int(round((width - size) * fx))
    return top, left, size, size


def resized_shape(height: int, width: int, short_side: int) -> tuple[int, int]:
    """(h, w) after resizing the short side to ``short_side``, keeping the aspect ratio."""
    if height <= width:
        return short_side, max(short_side, int(round(width * short_side / height)))
    return max(short_side, int(round(height * short_side / width))), short_side
