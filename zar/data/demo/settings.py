"""The demo dataset's settings (a YAML file may override any of them) and their rules."""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from zar.core import datasets
from zar.core.fields import from_mapping
from zar.core.errors import UserError
from zar.core.files import read_yaml

DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")


def finetune_role() -> str:
    """The dataset whose classes the demo's tiny CLIP is fine-tuned on (zar.core.datasets)."""
    return datasets.with_role("finetune")[0]


def zeroshot_roles() -> tuple[str, ...]:
    """The zero-shot datasets, in the order their class pools are drawn: the registry's
    order reversed (the order the demo has always used, so its data stay the same)."""
    return datasets.with_role("zeroshot")[::-1]

@dataclass
class DemoConfig:
    """What the demo dataset looks like. A YAML file may override any field."""

    seed: int = 0
    # the four factors of a class name; colours map to RGB, speeds to pixels per frame
    colours: dict[str, list[int]] = field(default_factory=lambda: {
        "red": [225, 35, 35], "green": [40, 200, 60], "blue": [45, 95, 235], "yellow": [235, 215, 40]})
    shapes: list[str] = field(default_factory=lambda: ["circle", "square", "triangle"])
    directions: list[str] = field(default_factory=lambda: ["left", "right", "up", "down"])
    speeds: dict[str, float] = field(default_factory=lambda: {"slowly": 1.0, "quickly": 3.0})
    # roles and sizes
    finetune_classes: int = 24        # k400 role classes (half base, half novel for b2n)
    finetune_train_videos: int = 10   # per k400 class (train/)
    finetune_val_videos: int = 4      # per k400 class (val/), the b2n test videos
    pool_classes: int = 16            # classes of each zero-shot role (k600: its "novel pool")
    split_classes: int = 12           # classes of each zero-shot split (a subset of the pool)
    test_videos: int = 6              # per zero-shot class
    b2n_train_videos: int = 6         # per hmdb51/ucf101 class: the pool the shot lists draw from
    shots: int = 4                    # videos per base class in each train_s{1,2,3}.csv
    # rendering
    width: int = 128
    height: int = 96
    fps: int = 12
    min_frames: int = 24              # 2 s
    max_frames: int = 48              # 4 s
    short_clip_frames: int = 10       # the first test video of every role is this short
    # the share of a video during which the shape is on screen, drawn per video from [low, high]
    hidden: str = "absent"            # outside that stretch the shape is absent, or "grey" (colourless)
    train_visible: list[float] = field(default_factory=lambda: [1.0, 1.0])  # fine-tuning videos
    test_visible: list[float] = field(default_factory=lambda: [1.0, 1.0])   # evaluation videos
    # the share of videos whose shape moves along a side border of the inference clip's centre
    # crop (the frame's height-wide middle): that crop cuts the shape, a side crop sees it whole
    train_edge: float = 0.0
    test_edge: float = 0.0
    edge_depth: float = 0.0           # its centre that many radii outside the border (1: just out of the crop)
    object_size: float = 48.0         # diameter in pixels
    size_jitter: float = 0.1          # relative, uniform
    speed_jitter: float = 0.1         # relative, uniform
    colour_jitter: int = 15           # per channel, uniform
    trail_frames: int = 16            # how many past positions leave a fading trail
    trail_alpha: float = 0.7          # opacity of the trail right behind the shape
    trail_taper: float = 0.6          # the trail narrows to (1 - taper) of the shape: a comet
    background_range: list[int] = field(default_factory=lambda: [20, 70])
    noise_std: float = 3.0

    def combos(self) -> list[tuple[str, str, str, str]]:
        return [(c, s, d, p) for c in self.colours for s in self.shapes
                for d in self.directions for p in self.speeds]


def load_config(path: str | Path | None) -> DemoConfig:
    """The default config, overridden by a YAML file (its top level, or its ``demo_data`` key)."""
    if path is None:
        return DemoConfig()
    data = read_yaml(path, "config file")
    if isinstance(data, dict) and "demo_data" in data:
        data = data["demo_data"]
    if not isinstance(data, dict):
        raise UserError(f"{path}: expected a mapping of demo dataset settings")
    return config_from_dict(data, source=str(path))


def config_from_dict(data: dict[str, Any], source: str = "config") -> DemoConfig:
    """Defaults overridden by ``data``; an unknown key or a value of the wrong type is an error."""
    cfg = from_mapping(DemoConfig, data, f"{source}: demo dataset settings")
    validate(cfg, source)
    return cfg


def validate(cfg: DemoConfig, source: str = "config") -> None:
    """Raise UserError naming the first setting that cannot make a valid dataset."""
    def bad(msg: str):
        raise UserError(f"{source}: {msg}")

    for s in cfg.shapes:
        if s not in SHAPES:
            bad(f"unknown shape {s!r} (known: {', '.join(SHAPES)})")
    for d in cfg.directions:
        if d not in DIRECTIONS:
            bad(f"unknown direction {d!r} (known: {', '.join(DIRECTIONS)})")
    for name, rgb in cfg.colours.items():
        if not (isinstance(rgb, list) and len(rgb) == 3
                and all(isinstance(v, int) and 0 <= v <= 255 for v in rgb)):
            bad(f"colour {name!r} must be a list of three integers 0..255, got {rgb!r}")
    for name, v in cfg.speeds.items():
        if not isinstance(v, (int, float)) or v <= 0:
            bad(f"speed {name!r} must be a positive number of pixels per frame, got {v!r}")
    words = [*cfg.colours, *cfg.shapes, *cfg.directions, *(w for w in cfg.speeds if w or len(cfg.speeds) > 1)]
    for w in words:
        if not (isinstance(w, str) and w.isascii() and w.isalpha() and w.islower()):
            bad(f"class words must be plain lowercase letters, got {w!r}")
    if len(set(words)) != len(words) or "moving" in words:
        bad("class words must be distinct (and not 'moving')")
    largest = max(len(cfg.colours), len(cfg.shapes), len(cfg.directions), len(cfg.speeds))
    for key in ("finetune_classes", "pool_classes"):
        if getattr(cfg, key) < 2 * largest:
            bad(f"{key} must be at least {2 * largest} (twice the largest word list) so that "
                "the base half of its base-to-novel split can use every word")
    if not 0 < cfg.split_classes <= cfg.pool_classes:
        bad("split_classes must be between 1 and pool_classes")
    need = cfg.finetune_classes + len(zeroshot_roles()) * cfg.pool_classes
    if need > len(cfg.combos()):
        bad(f"{need} classes needed (finetune_classes + {len(zeroshot_roles())} x pool_classes) but the words "
            f"only make {len(cfg.combos())} combinations")
    if not 1 <= cfg.shots <= min(cfg.finetune_train_videos, cfg.b2n_train_videos):
        bad("shots must be at least 1 and at most finetune_train_videos and b2n_train_videos")
    if min(cfg.finetune_val_videos, cfg.test_videos) < 1:
        bad("finetune_val_videos and test_videos must be at least 1")
    if not 1 <= cfg.min_frames <= cfg.max_frames or cfg.short_clip_frames < 1 or cfg.fps < 1:
        bad("need 1 <= min_frames <= max_frames, short_clip_frames >= 1 and fps >= 1")
    if cfg.width % 2 or cfg.height % 2 or cfg.width < 32 or cfg.height < 32:
        bad("width and height must be even and at least 32")
    if not 0 < cfg.object_size < min(cfg.width, cfg.height) - 2:
        bad("object_size must be positive and smaller than the frame")
    if not (0 <= cfg.size_jitter < 1 and 0 <= cfg.speed_jitter < 1 and 0 <= cfg.trail_taper < 1):
        bad("size_jitter, speed_jitter and trail_taper must be in [0, 1)")
    if not (0 <= cfg.train_edge <= 1 and 0 <= cfg.test_edge <= 1):
        bad("train_edge and test_edge must be in [0, 1]")
    for key in ("train_visible", "test_visible"):
        lo_hi = getattr(cfg, key)
        if not (len(lo_hi) == 2 and 0 < lo_hi[0] <= lo_hi[1] <= 1):
            bad(f"{key} must be [low, high] with 0 < low <= high <= 1, got {lo_hi!r}")
    if cfg.trail_frames < 0 or not 0 <= cfg.trail_alpha <= 1 or cfg.noise_std < 0 or cfg.colour_jitter < 0:
        bad("trail_frames, noise_std and colour_jitter must be >= 0 and trail_alpha in [0, 1]")
    lo_hi = cfg.background_range
    if not (len(lo_hi) == 2 and all(isinstance(v, int) for v in lo_hi) and 0 <= lo_hi[0] <= lo_hi[1] <= 255):
        bad(f"background_range must be [low, high] integers with 0 <= low <= high <= 255, got {lo_hi!r}")


