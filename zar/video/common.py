"""Frame counts, sizes and errors shared by the video reader's parts (zar.video)."""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path



BACKENDS = ("decord", "pyav")
PARTIAL_POLICIES = ("flag", "refuse")
IMPORT_TIMEOUT = 300.0  # seconds a worker may take to import a decoder (torch is slow on cold disks)
# MPEG-4 part 2 decoders whose streams may carry packed B-frames (DivX/Xvid in AVI)
PACKED_B_CODECS = {"mpeg4", "msmpeg4v1", "msmpeg4v2", "msmpeg4v3", "msmpeg4"}
# Where a seeking decoder returns exactly frame i: container (FFmpeg's demuxer name) -> codecs.
# Measured with decord 0.6.0 against PyAV's sequential decode (every frame, 25 index sets per
# file); mpeg4 counts only without B-frames. Everything else is read by PyAV.
EXACT_SEEK = {
    "mov,mp4,m4a,3gp,3g2,mj2": {"h264", "mpeg4"},
    "matroska,webm": {"h264", "vp9", "mpeg4", "mjpeg"},
    "avi": {"mpeg4", "mjpeg"},
}
_ROTATION_PACKETS = 64  # packets decoded at most to find the first frame (and its rotation)
# a file is partial when fewer frames are readable than it declares, beyond this slack (AVI
# headers count a few placeholder frames of packed B-frame streams; durations are approximate)
PARTIAL_SLACK_FRAMES = 2
PARTIAL_SLACK_FRACTION = 0.02


@dataclass(frozen=True)
class VideoInfo:
    num_frames: int
    fps: float
    width: int
    height: int
    declared_frames: int | None = None  # what the container announces (None: unknown)
    partial: bool = False  # damaged or truncated: fewer frames readable than declared


class VideoDecodeError(RuntimeError):
    def __init__(self, path: str | Path, reason: str):
        super().__init__(f"{path}: {reason}")
        self.path = str(path)
        self.reason = reason


class Untrusted(Exception):
    """This backend's frame indexing cannot be trusted on this file (PyAV takes over)."""


class ShortRead(Exception):
    """Fewer frames decoded than the demuxer promised; ``args[0]`` is the real count."""


def short_side_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the shorter side is ``short_side`` (None: unchanged)."""
    if not short_side or min(width, height) == short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


# With ``max_short_side``, a decoded frame's long side is also at most this many times it: a
# frame of extreme aspect ratio (4096x16) is scaled down whole, so its memory stays bounded.
MAX_LONG_FACTOR = 16


def output_size(width: int, height: int, short_side: int | None = None,
                max_short_side: int | None = None) -> tuple[int, int]:
    """The (width, height) a reader returns for a source of this display size: ``short_side``
    if given, else scaled down to ``max_short_side`` when the short side is larger, else as is;
    with ``max_short_side``, a long side over ``MAX_LONG_FACTOR`` times it is scaled down to
    that (keeping the aspect ratio), so a frame never exceeds ``MAX_LONG_FACTOR * max_short_side**2``
    pixels."""
    if short_side:
        return short_side_size(width, height, short_side)
    if not max_short_side:
        return width, height
    if min(width, height) > max_short_side:
        width, height = short_side_size(width, height, max_short_side)
    cap = MAX_LONG_FACTOR * max_short_side
    if max(width, height) > cap:
        f = cap / max(width, height)
        width, height = max(1, round(width * f)), max(1, round(height * f))
    return width, height


