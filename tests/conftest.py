"""Shared fixtures: CPU only, the tiny model, and small videos made with ffmpeg."""
from __future__ import annotations

import shutil
import subprocess
from pathlib import Path

import numpy as np
import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA device")
    for item in items:
        if "gpu" in item.keywords:
            item.add_marker(skip)


@pytest.fixture(scope="session")
def ffmpeg() -> str:
    exe = shutil.which("ffmpeg")
    if exe is None:
        pytest.fail("ffmpeg is not installed (apt-get install -y ffmpeg): the video tests need it")
    return exe


def write_video(path: Path, frames: np.ndarray, fps: int = 15, codec: str = "libx264") -> Path:
    """Write uint8 frames (N,H,W,3) with ffmpeg (h264 mp4 by default; ``mpeg4`` for .avi)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    n, h, w, _ = frames.shape
    cmd = ["ffmpeg", "-loglevel", "error", "-y", "-f", "rawvideo", "-pix_fmt", "rgb24", "-s", f"{w}x{h}",
           "-r", str(fps), "-i", "-", "-c:v", codec]
    cmd += ["-pix_fmt", "yuv420p", "-crf", "0", "-g", "1"] if codec == "libx264" else ["-q:v", "2", "-g", "1"]
    subprocess.run(cmd + [str(path)], input=np.ascontiguousarray(frames).tobytes(), check=True)
    return path


def moving_square(n: int = 24, h: int = 72, w: int = 96, colour=(255, 0, 0), seed: int = 0) -> np.ndarray:
    """A coloured square moving right over a noisy grey background."""
    rng = np.random.default_rng(seed)
    frames = np.full((n, h, w, 3), 96, np.uint8)
    frames += rng.integers(0, 20, size=frames.shape, dtype=np.uint8)
    for i in range(n):
        x = int(i * (w - 16) / max(1, n - 1))
        frames[i, h // 2 - 8:h // 2 + 8, x:x + 16] = colour
    return frames


@pytest.fixture
def make_video(tmp_path, ffmpeg):
    def _make(name: str = "clip.mp4", **kw) -> Path:
        codec = kw.pop("codec", "libx264" if name.endswith(".mp4") else "mpeg4")
        fps = kw.pop("fps", 15)
        return write_video(tmp_path / name, moving_square(**kw), fps=fps, codec=codec)

    return _make


@pytest.fixture(scope="session")
def tiny_model():
    from zar.model.backbone import build_model

    torch.manual_seed(0)
    model, pre = build_model("tiny")
    return model, pre
