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


COLOURS = {"red": (255, 0, 0), "green": (0, 255, 0), "blue": (0, 0, 255)}


@pytest.fixture
def dataset(tmp_path, ffmpeg):
    """Six small videos of three classes, plus a broken one, a missing one and an empty one."""
    root = tmp_path / "videos"
    rows = []
    for i, (name, rgb) in enumerate(COLOURS.items()):
        for j in range(2):
            rel = f"{name}/{name}_{j}.mp4" if j == 0 else f"{name}/{name}_{j}.avi"
            write_video(root / rel, moving_square(n=20 + 7 * j, colour=rgb, seed=i * 10 + j), fps=12,
                        codec="libx264" if rel.endswith(".mp4") else "mpeg4")
            rows.append((Path(rel).stem, rel, name, i))
    (root / "red").mkdir(exist_ok=True)
    (root / "red" / "broken.mp4").write_bytes(b"this is not a video")
    (root / "blue" / "empty.mp4").write_bytes(b"")
    rows += [("broken", "red/broken.mp4", "red", 0), ("gone", "green/gone.mp4", "green", 1),
             ("empty", "blue/empty.mp4", "blue", 2)]
    videos = tmp_path / "test.csv"
    videos.write_text("video_id,path,class_name,class_index\n" + "".join(f"{a},{b},{c},{d}\n" for a, b, c, d in rows))
    classes = tmp_path / "classes.csv"
    classes.write_text("class_index,class_name,text\n" + "".join(f"{i},{n},{n} square\n" for i, n in enumerate(COLOURS)))
    return {"root": root, "videos": videos, "classes": classes, "tmp": tmp_path}


def kill_when(argv: list[str], ready, what: str, limit: float = 300.0) -> None:
    """Run ``zar *argv`` in a process of its own and SIGKILL it as soon as ``ready()`` is true;
    the test fails if the run ends before that (``what`` says where the kill was aimed)."""
    import os
    import signal
    import sys
    import time

    env = {**os.environ, "PYTHONPATH": str(ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")}
    proc = subprocess.Popen([sys.executable, "-m", "zar", *argv], env=env, stdout=subprocess.DEVNULL,
                            stderr=subprocess.DEVNULL)
    try:
        deadline = time.monotonic() + limit
        while proc.poll() is None and time.monotonic() < deadline and not ready():
            time.sleep(0.002)
        assert proc.poll() is None, f"the run ended before it could be killed at {what}"
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
