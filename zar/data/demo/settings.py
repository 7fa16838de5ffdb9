"""The demo dataset's settings (a YAML file may override any of them) and their rules."""
from __future__ import annotations

from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from zar.core import datasets
from zar.core.fields import check, from_mapping, setting
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

@dataclass(frozen=True)
class DemoConfig:
    """What the demo dataset looks like: every key a setting with its bounds (a YAML file may
    override any; a bad value is refused in one line naming the file and the key). The rules
    across keys (enough classes for the words, low <= high...) are :func:`validate`'s."""

    seed: int = setting(0, "integer", "the seed of every draw (classes, videos, pixels)", minimum=0)
    # the four factors of a class name; colours map to RGB, speeds to pixels per frame
    colours: dict[str, tuple[int, int, int]] = setting(
        {"red": (225, 35, 35), "green": (40, 200, 60), "blue": (45, 95, 235), "yellow": (235, 215, 40)}, "object",
        "colour word -> RGB", items={"type": "array", "items": {"type": "integer", "minimum": 0, "maximum": 255},
                                     "minItems": 3, "maxItems": 3}, minProperties=1)
    shapes: tuple[str, ...] = setting(("circle", "square", "triangle"), "array", "shape words",
                                      items={"type": "string", "enum": list(SHAPES)}, minItems=1, uniqueItems=True)
    directions: tuple[str, ...] = setting(("left", "right", "up", "down"), "array", "direction words",
                                          items={"type": "string", "enum": list(DIRECTIONS)}, minItems=1,
                                          uniqueItems=True)
    speeds: dict[str, float] = setting({"slowly": 1.0, "quickly": 3.0}, "object", "speed word -> pixels per frame",
                                       items={"type": "number", "exclusiveMinimum": 0}, minProperties=1)
    # roles and sizes
    finetune_classes: int = setting(24, "integer", "k400-role classes (half base, half novel for b2n)", minimum=2)
    finetune_train_videos: int = setting(10, "integer", "per k400-role class (train/)", minimum=1)
    finetune_val_videos: int = setting(4, "integer", "per k400-role class (val/), the b2n test videos", minimum=1)
    pool_classes: int = setting(16, "integer", "classes of each zero-shot role (k600: its novel pool)", minimum=2)
    split_classes: int = setting(12, "integer", "classes of each zero-shot split (a subset of the pool)", minimum=1)
    test_videos: int = setting(6, "integer", "per zero-shot class", minimum=1)
    b2n_train_videos: int = setting(6, "integer", "per hmdb51/ucf101-role class: the pool the shot lists draw from",
                                    minimum=1)
    shots: int = setting(4, "integer", "videos per base class in each train_s{1,2,3}.csv", minimum=1)
    # rendering
    width: int = setting(128, "integer", "frame width in pixels (even)", minimum=32, maximum=4096)
    height: int = setting(96, "integer", "frame height in pixels (even)", minimum=32, maximum=4096)
    fps: int = setting(12, "integer", "frames per second", minimum=1, maximum=240)
    min_frames: int = setting(24, "integer", "the shortest video, in frames (2 s)", minimum=1)
    max_frames: int = setting(48, "integer", "the longest video, in frames (4 s)", minimum=1, maximum=10_000)
    short_clip_frames: int = setting(10, "integer", "the first test video of every role is this short", minimum=1)
    # the share of a video during which the shape is on screen, drawn per video from [low, high]
    hidden: str = setting("absent", "string", "outside that stretch the shape is absent, or grey (colourless)",
                          enum=["absent", "grey"])
    train_visible: tuple[float, float] = setting((1.0, 1.0), "array", "[low, high] share on screen, fine-tuning "
                                                 "videos", items={"type": "number", "exclusiveMinimum": 0,
                                                                  "maximum": 1}, minItems=2, maxItems=2)
    test_visible: tuple[float, float] = setting((1.0, 1.0), "array", "[low, high] share on screen, evaluation "
                                                "videos", items={"type": "number", "exclusiveMinimum": 0,
                                                                 "maximum": 1}, minItems=2, maxItems=2)
    # the share of videos whose shape moves along a side border of the inference clip's centre
    # crop (the frame's height-wide middle): that crop cuts the shape, a side crop sees it whole
    train_edge: float = setting(0.0, "number", "share of fine-tuning videos along a side edge", minimum=0, maximum=1)
    test_edge: float = setting(0.0, "number", "share of evaluation videos along a side edge", minimum=0, maximum=1)
    edge_depth: float = setting(0.0, "number", "the shape's centre that many radii outside the centre crop's "
                                "border (1: just out of it)", minimum=0)
    object_size: float = setting(48.0, "number", "diameter in pixels (smaller than the frame)", exclusiveMinimum=0)
    size_jitter: float = setting(0.1, "number", "relative, uniform", minimum=0, exclusiveMaximum=1)
    speed_jitter: float = setting(0.1, "number", "relative, uniform", minimum=0, exclusiveMaximum=1)
    colour_jitter: int = setting(15, "integer", "per channel, uniform", minimum=0, maximum=255)
    trail_frames: int = setting(16, "integer", "how many past positions leave a fading trail", minimum=0)
    trail_alpha: float = setting(0.7, "number", "opacity of the trail right behind the shape", minimum=0, maximum=1)
    trail_taper: float = setting(0.6, "number", "the trail narrows to (1 - taper) of the shape: a comet", minimum=0,
                                 exclusiveMaximum=1)
    background_range: tuple[int, int] = setting((20, 70), "array", "[low, high] grey level of the backgrounds",
                                                items={"type": "integer", "minimum": 0, "maximum": 255}, minItems=2,
                                                maxItems=2)
    noise_std: float = setting(3.0, "number", "pixel noise, standard deviation", minimum=0)

    def __post_init__(self):
        check(self, "demo_data")

    def to_dict(self) -> dict[str, Any]:
        """Plain YAML/JSON values (lists, not tuples), in declaration order."""
        def plain(v):
            if isinstance(v, (list, tuple)):
                return [plain(x) for x in v]
            return {k: plain(x) for k, x in v.items()} if isinstance(v, dict) else v
        return {f.name: plain(getattr(self, f.name)) for f in fields(self)}

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
    """Defaults overridden by ``data``; an unknown key, a value of the wrong type or out of its
    bounds, or keys that cannot make a dataset together, is an error naming ``source``."""
    try:
        cfg = from_mapping(DemoConfig, data, f"{source}: demo dataset settings")
    except UserError as e:
        raise UserError(f"{source}: {e}") if not str(e).startswith(source) else e from None
    validate(cfg, source)
    return cfg


def validate(cfg: DemoConfig, source: str = "config") -> None:
    """Raise UserError naming the first rule across settings that they break (each setting's
    own bounds are DemoConfig's)."""
    def bad(msg: str):
        raise UserError(f"{source}: {msg}")

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
    if cfg.split_classes > cfg.pool_classes:
        bad("split_classes must be at most pool_classes")
    need = cfg.finetune_classes + len(zeroshot_roles()) * cfg.pool_classes
    if need > len(cfg.combos()):
        bad(f"{need} classes needed (finetune_classes + {len(zeroshot_roles())} x pool_classes) but the words "
            f"only make {len(cfg.combos())} combinations")
    if cfg.shots > min(cfg.finetune_train_videos, cfg.b2n_train_videos):
        bad("shots must be at most finetune_train_videos and b2n_train_videos")
    if cfg.min_frames > cfg.max_frames:
        bad("min_frames must be at most max_frames")
    if cfg.width % 2 or cfg.height % 2:
        bad("width and height must be even")
    if not cfg.object_size < min(cfg.width, cfg.height) - 2:
        bad("object_size must be smaller than the frame")
    for key in ("train_visible", "test_visible", "background_range"):
        low, high = getattr(cfg, key)
        if low > high:
            bad(f"{key} must be [low, high] with low <= high, got {list(getattr(cfg, key))!r}")
