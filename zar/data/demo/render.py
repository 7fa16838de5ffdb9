"""Rendering a demo clip (a coloured shape gliding with a trail) and encoding it."""
from __future__ import annotations

from fractions import Fraction
from pathlib import Path

import numpy as np

from zar.data.demo.settings import DIRECTIONS, DemoConfig
from zar.data.demo.design import Combo, Video
from zar.core.files import atomic_path, stable_int

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


def _motion(cfg: DemoConfig, rng, direction: str, speed: str, num_frames: int, visible, edge: float) -> dict:
    """Size, speed, on-screen stretch and start of the shape (the draws, in this order: size,
    speed, stretch, its start, place along and across the motion, the edge placement)."""
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
    return {"r": r, "v": v, "ux": ux, "uy": uy, "shown": shown, "first": first, "x0": x0, "y0": y0}


def _appearance(cfg: DemoConfig, rng, colour: str) -> tuple[np.ndarray, np.ndarray]:
    """The shape's colour (jittered) and the background (a gentle linear gradient)."""
    W, H = cfg.width, cfg.height
    rgb = np.clip(np.asarray(cfg.colours[colour], np.float32)
                  + rng.uniform(-cfg.colour_jitter, cfg.colour_jitter, 3), 0, 255).astype(np.float32)
    lo, hi = cfg.background_range
    bg_a, bg_b = rng.uniform(lo, hi, 3), rng.uniform(lo, hi, 3)
    angle = rng.uniform(0, 2 * np.pi)
    ys, xs = np.mgrid[0:H, 0:W].astype(np.float32)
    g = (np.cos(angle) * (xs / W - 0.5) + np.sin(angle) * (ys / H - 0.5) + 0.5)[..., None]
    return rgb, (bg_a * (1 - g) + bg_b * g).astype(np.float32)


def _patch(cfg: DemoConfig, m: dict) -> dict:
    """One patch around the shape and its trail (pasted with wrap-around): the trail's steps,
    opacities and radii, the patch's extent and pixel grid."""
    W, H = cfg.width, cfg.height
    r, v, ux, uy = m["r"], m["v"], m["ux"], m["uy"]
    k = np.arange(cfg.trail_frames + 1, dtype=np.float32)
    opacity = np.where(k == 0, 1.0, cfg.trail_alpha * (1 - k / (cfg.trail_frames + 1)))
    radii = (r * (1 - cfg.trail_taper * k / (cfg.trail_frames + 1)))[:, None, None]
    e = int(np.ceil(r)) + 2
    trail = min(v * cfg.trail_frames, max(0, (W if ux else H) - 2 * e - 2))  # fits the frame
    x_lo, x_hi = -e - (trail if ux > 0 else 0), e + (trail if ux < 0 else 0)
    y_lo, y_hi = -e - (trail if uy > 0 else 0), e + (trail if uy < 0 else 0)
    pw = min(W, int(np.ceil(x_hi - x_lo)) + 1)
    ph = min(H, int(np.ceil(y_hi - y_lo)) + 1)
    return {"k": k, "opacity": opacity, "radii": radii, "x_lo": x_lo, "y_lo": y_lo, "pw": pw, "ph": ph,
            "px": np.arange(pw, dtype=np.float32)[None, None, :], "py": np.arange(ph, dtype=np.float32)[None, :, None]}


def _alpha(cfg: DemoConfig, shape: str, m: dict, pt: dict, u: int) -> np.ndarray:
    """The shape's and its trail's opacity over the frame, ``u`` frames into its motion."""
    W, H, k = cfg.width, cfg.height, pt["k"]
    alpha = np.zeros((H, W), np.float32)
    hx, hy = (m["x0"] + m["v"] * m["ux"] * u) % W, (m["y0"] + m["v"] * m["uy"] * u) % H  # the shape now
    ox, oy = int(np.floor(hx + pt["x_lo"])), int(np.floor(hy + pt["y_lo"]))  # patch origin
    dx = pt["px"] + (ox - hx) + (m["v"] * m["ux"]) * k[:, None, None]  # relative to each trail position
    dy = pt["py"] + (oy - hy) + (m["v"] * m["uy"]) * k[:, None, None]
    seen = np.where(k <= u, pt["opacity"], 0.0)  # no trail from before it came on screen
    patch = (_shape_alpha(shape, dx, dy, pt["radii"]) * seen[:, None, None]).max(axis=0)
    alpha[np.ix_((oy + np.arange(pt["ph"])) % H, (ox + np.arange(pt["pw"])) % W)] = patch
    return alpha


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
    m = _motion(cfg, rng, direction, speed, num_frames, visible, edge)
    rgb, background = _appearance(cfg, rng, colour)
    pt = _patch(cfg, m)
    grey = np.full(3, float(rgb.mean()), np.float32)
    frames = np.empty((num_frames, cfg.height, cfg.width, 3), np.uint8)
    for t in range(num_frames):
        u = t - m["first"]  # time since the shape came on screen (or, with ``grey``, into its colour)
        colour_now = rgb
        if cfg.hidden == "grey":  # the shape is always there, in its colour only within the window
            colour_now = rgb if 0 <= u < m["shown"] else grey
            u = t
        on = 0 <= u < (num_frames if cfg.hidden == "grey" else m["shown"])
        alpha = _alpha(cfg, shape, m, pt, u) if on else np.zeros((cfg.height, cfg.width), np.float32)
        img = background + alpha[..., None] * (colour_now - background)
        img += cfg.noise_std * rng.standard_normal(img.shape, dtype=np.float32)
        frames[t] = np.clip(np.rint(img), 0, 255).astype(np.uint8)
    return frames


def video_seed(cfg: DemoConfig, video: Video) -> int:
    return stable_int(cfg.seed, video.dataset, video.video_id, "render")


def write_video(frames: np.ndarray, path: Path, fps: int) -> None:
    """Encode frames atomically: .mp4 -> H.264, .avi -> MPEG-4 part 2 (as in the real data)."""
    import av

    from zar.data.layout import CRF, PRESET, X264_DETERMINISTIC

    fmt, codec, options = {  # .mp4: the normalised form of `zar decode` (a keyframe every second)
        ".mp4": ("mp4", "libx264", {"crf": str(CRF), "preset": PRESET, "g": str(fps), "threads": "1",
                                    "x264-params": X264_DETERMINISTIC}),
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


