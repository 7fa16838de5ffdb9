"""The synthetic demo dataset: coloured shapes that move, in the layouts of the real data.

Every class is a combination of four factors, named in plain words, e.g.
``red circle moving left quickly``: a colour, a shape, a direction and a speed. A clip shows
one shape of that colour gliding across a noisy background with a fading trail behind it,
so each single frame shows the direction (the trail's side) and the speed (the trail's
length); a fast shape also sweeps across much more of the frame within a short window.

The roles mirror the paper's datasets:

- ``k400``: the fine-tuning classes (train and val videos), with a base-to-novel split;
- ``hmdb51``, ``ucf101``, ``k600``: zero-shot test sets of classes that are NOT fine-tuning
  classes but unseen combinations of words that all appear in fine-tuning classes; three
  splits each, every split a different subset of the role's class pool (like K600's
  160 of 220); ``hmdb51`` and ``ucf101`` also get base-to-novel lists.

``zar splits build --builder demo`` writes the split files (the same layout as ``splits/``);
``zar download --source synthetic`` renders one role's videos (already in the normalised
form that `zar decode` writes, so decoding them is bookkeeping only).
Everything follows from the config and its seed: same config, same bytes.
"""
from __future__ import annotations

import dataclasses
import hashlib
import logging
from dataclasses import dataclass, field
from fractions import Fraction
from pathlib import Path
from typing import Any

import numpy as np

from zar.splits import formats
from zar.utils import UserError, atomic_path, atomic_write_text, progress, read_yaml, sha256_file, stable_int

log = logging.getLogger(__name__)

DATASETS = ("k400", "k600", "ucf101", "hmdb51")
ZEROSHOT = ("hmdb51", "ucf101", "k600")
B2N = ("k400", "hmdb51", "ucf101")
DIRECTIONS = {"left": (-1.0, 0.0), "right": (1.0, 0.0), "up": (0.0, -1.0), "down": (0.0, 1.0)}
SHAPES = ("circle", "square", "triangle", "diamond", "cross")
YT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


# ----------------------------------------------------------------------------- config
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
    defaults = DemoConfig()
    values = {}
    for key, value in data.items():
        if not hasattr(defaults, key):
            known = ", ".join(f.name for f in dataclasses.fields(DemoConfig))
            raise UserError(f"{source}: unknown demo dataset setting {key!r} (known: {known})")
        values[key] = _coerce(key, getattr(defaults, key), value, source)
    cfg = dataclasses.replace(defaults, **values)
    validate(cfg, source)
    return cfg


def _coerce(key: str, default: Any, value: Any, source: str) -> Any:
    def wrong(kind: str):
        raise UserError(f"{source}: setting {key!r} must be {kind}, got {value!r}")

    if isinstance(default, int):
        return value if isinstance(value, int) and not isinstance(value, bool) else wrong("an integer")
    if isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else wrong("a number")
    if isinstance(default, list):
        return list(value) if isinstance(value, list) else wrong("a list")
    if isinstance(default, dict):
        return dict(value) if isinstance(value, dict) else wrong("a mapping")
    return value


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
    need = cfg.finetune_classes + len(ZEROSHOT) * cfg.pool_classes
    if need > len(cfg.combos()):
        bad(f"{need} classes needed (finetune_classes + 3 x pool_classes) but the words "
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


# ----------------------------------------------------------------------------- class design
Combo = tuple[str, str, str, str]  # colour, shape, direction, speed


def class_text(combo: Combo) -> str:
    c, s, d, p = combo
    return f"{c} {s} moving {d} {p}".strip()  # a single speed may be unnamed ("")


def class_name(dataset: str, combo: Combo) -> str:
    """The raw class name in the role's own convention (Kinetics words, HMDB snake, UCF camel)."""
    words = class_text(combo).split()
    if dataset == "hmdb51":
        return "_".join(words)
    if dataset == "ucf101":
        return "".join(w.capitalize() for w in words)
    return " ".join(words)


def pick_balanced(candidates: list[Combo], n: int, rng: np.random.Generator) -> list[Combo]:
    """``n`` combos chosen so every factor value is used as evenly as possible.

    Greedy: visit candidates in a seeded random order and repeatedly take the one whose
    factor values have been used least so far (ties: the earlier in that order).
    """
    order = [candidates[i] for i in rng.permutation(len(candidates))]
    counts: dict[tuple[int, str], int] = {}
    chosen: list[Combo] = []
    for _ in range(min(n, len(order))):
        best = min(range(len(order)), key=lambda i: (
            sum(counts.get((k, v), 0) for k, v in enumerate(order[i])), i))
        combo = order.pop(best)
        chosen.append(combo)
        for k, v in enumerate(combo):
            counts[(k, v)] = counts.get((k, v), 0) + 1
    return chosen


def _words(combos: list[Combo]) -> set[str]:
    return {w for c in combos for w in class_text(c).split()}


def design_classes(cfg: DemoConfig) -> dict[str, Any]:
    """Which combos play which part. Pure; deterministic in the config."""
    rng = np.random.default_rng(stable_int(cfg.seed, "demo-classes"))
    combos = cfg.combos()
    finetune = pick_balanced(combos, cfg.finetune_classes, rng)
    rest = [c for c in combos if c not in set(finetune)]
    pools: dict[str, list[Combo]] = {}
    for ds in ZEROSHOT:
        pools[ds] = pick_balanced(rest, cfg.pool_classes, rng)
        rest = [c for c in rest if c not in set(pools[ds])]
    base = {"k400": pick_balanced(finetune, cfg.finetune_classes // 2, rng)}
    for ds in ("hmdb51", "ucf101"):
        base[ds] = pick_balanced(pools[ds], cfg.pool_classes // 2 + cfg.pool_classes % 2, rng)
    words = _words(finetune)
    for part, combos_ in [("fine-tuning", finetune), ("k400 b2n base", base["k400"]),
                          ("hmdb51 b2n base", base["hmdb51"]), ("ucf101 b2n base", base["ucf101"])]:
        if _words(combos_) != words:
            raise UserError(f"the {part} classes do not use every word ({sorted(words - _words(combos_))} "
                            "missing); give more classes or change the seed")
    splits: dict[str, list[list[Combo]]] = {}
    drop = cfg.pool_classes - cfg.split_classes
    for ds in ZEROSHOT:
        order = [pools[ds][i] for i in rng.permutation(len(pools[ds]))]
        # split i leaves out ``drop`` classes from a different place of the shuffled pool
        starts = [round(i * len(order) / 3) for i in range(3)]
        splits[ds] = [[c for j, c in enumerate(order) if (j - start) % len(order) >= drop]
                      for start in starts]
    return {"finetune": finetune, "pools": pools, "base": base, "splits": splits}


# ----------------------------------------------------------------------------- video plan
@dataclass(frozen=True)
class Video:
    dataset: str
    video_id: str
    path: str          # relative to <data_root>/<dataset>/raw
    part: str          # "train" or "test"
    combo: Combo
    num_frames: int


def _youtube_like_id(*parts: Any) -> str:
    """11 characters of the YouTube id alphabet (letters, digits, '-', '_'), from a hash."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return "".join(YT_ALPHABET[b & 63] for b in digest[:11])


def plan_videos(cfg: DemoConfig, design: dict[str, Any] | None = None) -> dict[str, list[Video]]:
    """Every video of every role, sorted by path. Pure; deterministic in the config."""
    design = design or design_classes(cfg)
    per_role: dict[str, list[tuple[Combo, str, int]]] = {ds: [] for ds in DATASETS}
    for combo in design["finetune"]:
        per_role["k400"] += [(combo, "train", n) for n in range(cfg.finetune_train_videos)]
        per_role["k400"] += [(combo, "test", n) for n in range(cfg.finetune_val_videos)]
    for ds in ZEROSHOT:
        for combo in design["pools"][ds]:
            per_role[ds] += [(combo, "test", n) for n in range(cfg.test_videos)]
            if ds != "k600":
                per_role[ds] += [(combo, "train", n) for n in range(cfg.b2n_train_videos)]
    out: dict[str, list[Video]] = {}
    for ds, items in per_role.items():
        videos = []
        for combo, part, n in items:
            name = class_name(ds, combo)
            if ds in ("k400", "k600"):
                start = stable_int(cfg.seed, ds, name, part, n, "start") % 290
                vid = f"{_youtube_like_id(cfg.seed, ds, name, part, n)}_{start:06d}_{start + 10:06d}"
                folder = {"k400": {"train": "train", "test": "val"}, "k600": {"test": "test"}}[ds][part]
                path = f"{folder}/{vid}.mp4"
            elif ds == "ucf101":  # test clips in the low groups, like UCF's official lists
                k = n if part == "test" else cfg.test_videos + n
                vid = f"v_{name}_g{k // 3 + 1:02d}_c{k % 3 + 1:02d}"
                path = f"{name}/{vid}.avi"
            else:
                vid = f"{name}_synth_{part}_{n:02d}"
                path = f"{name}/{vid}.avi"
            lo, hi = cfg.min_frames, cfg.max_frames
            frames = lo + stable_int(cfg.seed, ds, vid, "frames") % (hi - lo + 1)
            videos.append(Video(ds, vid, path, part, combo, frames))
        videos.sort(key=lambda v: v.path)
        first_test = min((v for v in videos if v.part == "test"), key=lambda v: v.video_id)
        videos = [dataclasses.replace(v, num_frames=cfg.short_clip_frames) if v is first_test else v
                  for v in videos]
        ids = [v.video_id for v in videos]
        if len(set(ids)) != len(ids):
            raise UserError(f"{ds}: two demo videos got the same id; change the seed")
        out[ds] = videos
    return out


# ----------------------------------------------------------------------------- rendering
def _shape_alpha(shape: str, dx: np.ndarray, dy: np.ndarray, r: float) -> np.ndarray:
    """Anti-aliased coverage (0..1) of a shape of radius ``r`` centred at dx = dy = 0."""
    if shape == "circle":
        sd = np.sqrt(dx * dx + dy * dy) - r
    elif shape == "square":
        sd = np.maximum(np.abs(dx), np.abs(dy)) - 0.86 * r
    elif shape == "diamond":
        sd = (np.abs(dx) + np.abs(dy) - 1.2 * r) / np.sqrt(2.0)
    elif shape == "triangle":  # pointing up; inradius 0.6 r
        ty = dy - 0.25 * r
        sd = np.maximum(np.maximum(ty, 0.866 * dx - 0.5 * ty), -0.866 * dx - 0.5 * ty) - 0.6 * r
    elif shape == "cross":
        w = 0.38 * r
        ax, ay = np.abs(dx), np.abs(dy)
        sd = np.minimum(np.maximum(ax - r, ay - w), np.maximum(ax - w, ay - r))
    else:
        raise ValueError(f"unknown shape {shape!r}")
    return np.clip(0.5 - sd, 0.0, 1.0)


def render_clip(cfg: DemoConfig, combo: Combo, num_frames: int, seed: int,
                visible: tuple[float, float] = (1.0, 1.0), edge: float = 0.0) -> np.ndarray:
    """The frames of one clip, uint8 (T, H, W, 3). Pure; deterministic in its arguments.

    The shape is on screen during one stretch of the clip, a fraction drawn from ``visible``
    (1 = the whole clip; the rest shows the background alone), at a random place in time.
    It moves at constant velocity and wraps around the frame edges; its positions of the
    last ``trail_frames`` frames stay visible with falling opacity (a trail behind it).
    """
    colour, shape, direction, speed = combo
    rng = np.random.default_rng(seed)
    W, H = cfg.width, cfg.height
    r = 0.5 * cfg.object_size * rng.uniform(1 - cfg.size_jitter, 1 + cfg.size_jitter)
    v = cfg.speeds[speed] * rng.uniform(1 - cfg.speed_jitter, 1 + cfg.speed_jitter)
    ux, uy = DIRECTIONS[direction]
    shown = min(num_frames, max(2, int(round(rng.uniform(*visible) * num_frames))))
    first = int(rng.integers(0, num_frames - shown + 1))  # the first frame the shape is on screen
    # across the motion: fully inside the frame; along it: the path centred at a random
    # place that keeps the whole stretch inside the frame where the path is short enough
    span = v * max((num_frames if cfg.hidden == "grey" else shown) - 1, 0)
    ext = W if ux else H
    free = ext - 2 * (r + 1) - span
    mid = rng.uniform(r + 1 + span / 2, r + 1 + span / 2 + free) if free > 0 else rng.uniform(0, ext)
    along0 = mid - (ux + uy) * span / 2  # position at t = 0
    across = rng.uniform(r + 1, (H if ux else W) - r - 1)
    x0, y0 = (along0, across) if ux else (across, along0)
    if rng.uniform() < edge:  # at a side border of the centre crop (x = (W - H) / 2 or (W + H) / 2)
        left = rng.uniform() < 0.5
        out = (cfg.edge_depth + rng.uniform(-0.25, 0.25)) * r  # how far outside the crop its centre is
        x0 = ((W - H) / 2 - out if left else (W + H) / 2 + out) - (ux * span / 2)
    rgb = np.clip(np.asarray(cfg.colours[colour], np.float32)
                  + rng.uniform(-cfg.colour_jitter, cfg.colour_jitter, 3), 0, 255).astype(np.float32)
    lo, hi = cfg.background_range
    bg_a, bg_b = rng.uniform(lo, hi, 3), rng.uniform(lo, hi, 3)  # a gentle linear gradient
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    g = (np.cos(angle) * (xs / W - 0.5) + np.sin(angle) * (ys / H - 0.5) + 0.5)[..., None]
    background = (bg_a * (1 - g) + bg_b * g).astype(np.float32)

    # one patch around the shape and its trail, pasted with wrap-around
    k = np.arange(cfg.trail_frames + 1, dtype=np.float32)
    opacity = np.where(k == 0, 1.0, cfg.trail_alpha * (1 - k / (cfg.trail_frames + 1)))
    radii = (r * (1 - cfg.trail_taper * k / (cfg.trail_frames + 1)))[:, None, None]
    m = int(np.ceil(r)) + 2
    trail = min(v * cfg.trail_frames, max(0, (W if ux else H) - 2 * m - 2))  # fits the frame
    x_lo, x_hi = -m - (trail if ux > 0 else 0), m + (trail if ux < 0 else 0)
    y_lo, y_hi = -m - (trail if uy > 0 else 0), m + (trail if uy < 0 else 0)
    pw = min(W, int(np.ceil(x_hi - x_lo)) + 1)
    ph = min(H, int(np.ceil(y_hi - y_lo)) + 1)
    px = np.arange(pw, dtype=np.float32)[None, None, :]
    py = np.arange(ph, dtype=np.float32)[None, :, None]
    grey = np.full(3, float(rgb.mean()), np.float32)
    frames = np.empty((num_frames, H, W, 3), np.uint8)
    for t in range(num_frames):
        u = t - first  # time since the shape came on screen (or, with ``grey``, into its colour)
        alpha = np.zeros((H, W), np.float32)
        colour_now = rgb
        if cfg.hidden == "grey":  # the shape is always there, in its colour only within the window
            colour_now = rgb if 0 <= u < shown else grey
            u = t
        if 0 <= u < (num_frames if cfg.hidden == "grey" else shown):
            hx, hy = (x0 + v * ux * u) % W, (y0 + v * uy * u) % H  # the shape now
            ox, oy = int(np.floor(hx + x_lo)), int(np.floor(hy + y_lo))  # patch origin
            dx = px + (ox - hx) + (v * ux) * k[:, None, None]  # relative to each trail position
            dy = py + (oy - hy) + (v * uy) * k[:, None, None]
            seen = np.where(k <= u, opacity, 0.0)  # no trail from before it came on screen
            patch = (_shape_alpha(shape, dx, dy, radii) * seen[:, None, None]).max(axis=0)
            alpha[np.ix_((oy + np.arange(ph)) % H, (ox + np.arange(pw)) % W)] = patch
        img = background + alpha[..., None] * (colour_now - background)
        img += cfg.noise_std * rng.standard_normal(img.shape, dtype=np.float32)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames


def video_seed(cfg: DemoConfig, video: Video) -> int:
    return stable_int(cfg.seed, video.dataset, video.video_id, "render")


def write_video(frames: np.ndarray, path: Path, fps: int) -> None:
    """Encode frames atomically: .mp4 -> H.264, .avi -> MPEG-4 part 2 (as in the real data)."""
    import av

    from zar.data.decode import CRF, PRESET

    fmt, codec, options = {  # .mp4: the normalised form of `zar decode` (a keyframe every second)
        ".mp4": ("mp4", "libx264", {"crf": str(CRF), "preset": PRESET, "g": str(fps), "threads": "1"}),
        ".avi": ("avi", "mpeg4", {}),
    }[path.suffix]
    with atomic_path(path) as tmp:
        with av.open(str(tmp), "w", format=fmt) as container:
            stream = container.add_stream(codec, rate=fps, options=options)
            stream.width, stream.height = frames.shape[2], frames.shape[1]
            stream.pix_fmt = "yuv420p"
            stream.thread_count = 1
            if codec == "mpeg4":  # constant quantiser 3: near-lossless at this size
                stream.codec_context.qscale = True
                stream.codec_context.global_quality = 3 * 118  # FF_QP2LAMBDA = 118
            for i, arr in enumerate(frames):
                frame = av.VideoFrame.from_ndarray(arr, format="rgb24")
                frame.pts = i
                frame.time_base = Fraction(1, fps)
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


# ----------------------------------------------------------------------------- split files
def _class_list(ds: str, combos: list[Combo]) -> list[Combo]:
    return sorted(combos, key=lambda c: class_name(ds, c))


def _classes_csv(ds: str, classes: list[Combo]) -> str:
    """The real format; its text rule turns each role's raw name back into ``class_text``."""
    return formats.classes_csv(ds, [class_name(ds, c) for c in classes])


def _videos_csv(ds: str, classes: list[Combo], videos: list[Video]) -> str:
    index = {c: i for i, c in enumerate(classes)}
    return formats.videos_csv(formats.VideoRow(v.video_id, v.path, class_name(ds, v.combo), index[v.combo])
                              for v in videos if v.combo in index)


def _shots(cfg: DemoConfig, ds: str, classes: list[Combo], train: list[Video], s: int) -> list[Video]:
    """``cfg.shots`` training videos per class, a different seeded draw for each shot list s."""
    out = []
    for c in classes:
        pool = sorted((v for v in train if v.combo == c), key=lambda v: v.video_id)
        rng = np.random.default_rng(stable_int(cfg.seed, ds, "shots", s, class_name(ds, c)))
        out += [pool[i] for i in sorted(rng.choice(len(pool), cfg.shots, replace=False))]
    return out


def build_split_files(cfg: DemoConfig) -> dict[str, str]:
    """Every split file of every role: relative path -> text. Pure; deterministic."""
    design = design_classes(cfg)
    plan = plan_videos(cfg, design)
    files: dict[str, str] = {}
    for ds in DATASETS:
        train = [v for v in plan[ds] if v.part == "train"]
        test = [v for v in plan[ds] if v.part == "test"]
        if ds == "k400":
            full = _class_list(ds, design["finetune"])
        elif ds == "k600":  # like Kinetics-600: the fine-tuning classes plus the novel pool
            full = _class_list(ds, design["finetune"] + design["pools"][ds])
        else:
            full = _class_list(ds, design["pools"][ds])
        files[f"{ds}/classes.csv"] = _classes_csv(ds, full)
        if ds == "k400":
            files[f"{ds}/train.csv"] = _videos_csv(ds, full, train)
        if ds in B2N:
            base = _class_list(ds, design["base"][ds])
            novel = [c for c in full if c not in set(base)]
            files[f"{ds}/b2n/base/classes.csv"] = _classes_csv(ds, base)
            files[f"{ds}/b2n/base/test.csv"] = _videos_csv(ds, base, test)
            for s in (1, 2, 3):
                files[f"{ds}/b2n/base/train_s{s}.csv"] = _videos_csv(ds, base, _shots(cfg, ds, base, train, s))
            files[f"{ds}/b2n/novel/classes.csv"] = _classes_csv(ds, novel)
            files[f"{ds}/b2n/novel/test.csv"] = _videos_csv(ds, novel, test)
        if ds in ZEROSHOT:
            if ds == "k600":  # same file name as the real layout's 220-class pool
                files[f"{ds}/zeroshot/novel220.csv"] = _classes_csv(ds, _class_list(ds, design["pools"][ds]))
            for s in (1, 2, 3):
                classes = _class_list(ds, design["splits"][ds][s - 1])
                files[f"{ds}/zeroshot/split{s}/classes.csv"] = _classes_csv(ds, classes)
                files[f"{ds}/zeroshot/split{s}/test.csv"] = _videos_csv(ds, classes, test)
    files["README.md"] = _readme(cfg, files)
    return files


def _readme(cfg: DemoConfig, files: dict[str, str]) -> str:
    import yaml

    counts = "\n".join(f"| `{p}` | {t.count(chr(10)) - 1} |" for p, t in sorted(files.items()))
    settings = yaml.safe_dump(dataclasses.asdict(cfg), sort_keys=False, default_flow_style=None)
    return f"""# Synthetic demo splits (not real data)

Written by `zar demo-data splits`. Every video is SYNTHETIC: a coloured shape gliding over a
noisy background with a fading trail behind it. A class names its colour, shape, direction
and speed ("red circle moving left quickly"). The roles mirror the paper's datasets in the
same file layout as the real `splits/`:

- `k400`: the fine-tuning classes (`train.csv`) and a base-to-novel split of them;
- `hmdb51`, `ucf101`, `k600`: zero-shot test sets of classes that are not fine-tuning
  classes but new combinations of the same words; each `zeroshot/split{{1,2,3}}` is a
  different subset of the role's class pool (`k600/zeroshot/novel220.csv` holds the demo's
  pool under the real file's name); `hmdb51` and `ucf101` also have base-to-novel lists.

The videos themselves are rendered by `zar demo-data videos --dataset DS --data-root DIR`
with the same settings. Same settings, same files: rerunning reproduces these bytes.
`MANIFEST.sha256` checks every file here (`sha256sum -c MANIFEST.sha256`).

| file | rows |
|---|---|
{counts}

Settings:
```yaml
{settings}```
"""


def write_splits(cfg: DemoConfig, out: Path) -> dict[str, str]:
    files = build_split_files(cfg)
    for rel, text in files.items():
        atomic_write_text(out / rel, text)
    manifest = formats.manifest_text({rel: text.encode("utf-8") for rel, text in files.items()})
    atomic_write_text(out / formats.MANIFEST, manifest)
    return files


# ----------------------------------------------------------------------------- videos
def write_videos(cfg: DemoConfig, dataset: str, root: Path) -> Path:
    """Render the role's videos straight in the normalised form `zar decode` writes (h264 mp4
    at ``<root>/videos/<path>.mp4``), skipping those already written, with the download
    manifest a real download leaves and ``demo_videos.csv`` (what `zar decode` records for them).

    Returns the path of ``demo_videos.csv``.
    """
    from zar.data.decode import output_path

    videos = plan_videos(cfg)[dataset]
    made = 0
    for v in progress(videos, total=len(videos), desc=f"demo videos {dataset}"):
        path = output_path(root, v.path)
        if path.is_file() and path.stat().st_size > 0:  # written atomically: complete
            continue
        train = v.part == "train"
        write_video(render_clip(cfg, v.combo, v.num_frames, video_seed(cfg, v),
                                tuple(cfg.train_visible if train else cfg.test_visible),
                                cfg.train_edge if train else cfg.test_edge), path, cfg.fps)
        made += 1
    log.info("%s: %d videos written, %d already there, under %s", dataset, made, len(videos) - made,
             root / "videos")
    rows = [(v.video_id, v.path, output_path(root, v.path).relative_to(root).as_posix(), v.num_frames, cfg.width,
             cfg.height, cfg.fps, sha256_file(output_path(root, v.path))) for v in videos]
    manifest = root / SYNTHETIC_MANIFEST
    atomic_write_text(manifest, formats.csv_text(SYNTHETIC_COLUMNS, rows))
    # the same download manifest a real download writes, so the workflow's later rules run unchanged
    from zar.data.manifest import DOWNLOAD_COLUMNS, write_manifest

    write_manifest(root / "download_manifest.csv",
                   {v.video_id: {"video_id": v.video_id, "path": v.path, "status": "ok", "reason": "",
                                 "source": "synthetic", "bytes": output_path(root, v.path).stat().st_size}
                    for v in videos},
                   DOWNLOAD_COLUMNS)
    return manifest


SYNTHETIC_MANIFEST = "demo_videos.csv"
SYNTHETIC_COLUMNS = ("video_id", "path", "output", "num_frames", "width", "height", "fps", "sha256")
