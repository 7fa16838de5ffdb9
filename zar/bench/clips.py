"""The synthetic clip the benchmarks read."""
from __future__ import annotations

import subprocess
from pathlib import Path


def make_clip(path: Path, seconds: float, size: str, fps: int = 30) -> None:
    """A synthetic h264 clip (ffmpeg's test pattern, a keyframe every second)."""
    subprocess.run(["ffmpeg", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate={fps}:duration={seconds}", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-g", str(fps), str(path)], check=True)
