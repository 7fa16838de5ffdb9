"""Small synthetic video datasets for the training tests (made on the fly, numpy + PyAV)."""
from __future__ import annotations

import csv
from pathlib import Path

import numpy as np

SHAPES = ("square", "wide_bar", "tall_bar", "cross")


def write_video(path: Path, frames: np.ndarray, fps: int = 8) -> None:
    import av

    path.parent.mkdir(parents=True, exist_ok=True)
    with av.open(str(path), "w") as c:
        s = c.add_stream("mpeg4", rate=fps)
        s.width, s.height, s.pix_fmt = frames.shape[2], frames.shape[1], "yuv420p"
        for f in frames:
            for pkt in s.encode(av.VideoFrame.from_ndarray(f, format="rgb24")):
                c.mux(pkt)
        for pkt in s.encode():
            c.mux(pkt)


def _stamp(img: np.ndarray, shape: str, y: int, x: int, colour) -> None:
    if shape == "square":
        img[y:y + 16, x:x + 16] = colour
    elif shape == "wide_bar":
        img[y + 5:y + 11, x - 8:x + 24] = colour
    elif shape == "tall_bar":
        img[y - 8:y + 24, x + 5:x + 11] = colour
    else:  # cross
        img[y + 6:y + 10, x:x + 16] = colour
        img[y:y + 16, x + 6:x + 10] = colour


def clip_frames(shape: str, n: int = 8, w: int = 64, h: int = 48, seed: int = 0) -> np.ndarray:
    """A shape of a random colour drifting over a grey noisy background.

    Classes differ in every frame (the video embedding is a mean over frames, blind to order),
    and not by colour (the training augmentation jitters colour and greys frames out).
    """
    rng = np.random.default_rng(seed)
    colour = rng.integers(0, 256, 3)
    x0, y0 = int(rng.integers(10, w - 26)), int(rng.integers(10, h - 26))
    dx, dy = int(rng.integers(-1, 2)), int(rng.integers(-1, 2))
    out = np.empty((n, h, w, 3), np.uint8)
    for t in range(n):
        img = np.full((h, w, 3), 110, np.int16) + rng.integers(-10, 10, (h, w, 3))
        x = int(np.clip(x0 + dx * t, 8, w - 24))
        y = int(np.clip(y0 + dy * t, 8, h - 24))
        _stamp(img, shape, y, x, colour)
        out[t] = np.clip(img, 0, 255)
    return out


def make_dataset(root: Path, per_class: int = 4, n_frames: int = 8, broken: tuple[str, ...] = ()) -> dict:
    """4 classes (shapes) x ``per_class`` videos; returns the paths of the CSVs.

    Video ids listed in ``broken`` are written as files that cannot be decoded.
    """
    root = Path(root)
    vids = root / "videos"
    rows = []
    for ci, name in enumerate(SHAPES):
        for k in range(per_class):
            vid = f"v_{name}_{k:02d}"
            rel = f"{name}/{vid}.avi"  # listed with the official suffix; files are .mp4 (see --ext)
            target = (vids / rel).with_suffix(".mp4")
            if vid in broken:
                target.parent.mkdir(parents=True, exist_ok=True)
                target.write_bytes(b"this is not a video" * 10)
            else:
                write_video(target, clip_frames(name, n_frames, seed=ci * 100 + k))
            rows.append((vid, rel, name, ci))
    classes_csv = root / "classes.csv"
    with open(classes_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["class_index", "class_name", "text"])
        for ci, name in enumerate(SHAPES):
            w.writerow([ci, name, name.replace("_", " ")])
    train_csv = root / "train.csv"
    with open(train_csv, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f, lineterminator="\n")
        w.writerow(["video_id", "path", "class_name", "class_index"])
        for r in sorted(rows, key=lambda r: (r[3], r[0])):
            w.writerow(r)
    return {"root": vids, "classes": classes_csv, "videos": train_csv, "n": len(rows)}


def write_recipe(path: Path, **overrides) -> Path:
    """A YAML recipe over the ``tiny`` preset (mixup and cutmix on), small enough for two shared CPU cores."""
    import yaml

    values = {"base": "tiny", "frames": 4, "batch_size": 8, "micro_batch": 4, "epochs": 2,
              "num_workers": 2, "log_every": 1, "mixup_alpha": 0.8, "cutmix_alpha": 1.0}
    values.update(overrides)
    path.write_text(yaml.safe_dump(values), encoding="utf-8")
    return path
