"""The normalised form of a dataset's videos, which `zar decode` writes and the readers expect:
where each video's copy lives, how it is encoded, and the manifest of videos a source wrote
in that form already (the synthetic source does), so that decoding leaves them as they are."""
from __future__ import annotations

from pathlib import Path, PurePosixPath

CRF, PRESET = 20, "veryfast"  # libx264, a keyframe every second
# x264's rate-control lookahead (and the macroblock tree it feeds) gave the demo's videos other
# bytes from run to run within one process (pixels up to 7/255 apart; its SIMD code reads memory
# the previous encodes left); without the lookahead the same frames give the same bytes.
X264_DETERMINISTIC = "rc-lookahead=0"
# videos written in the normalised form by their source (no decoding needed): one row each
NORMALISED_MANIFEST = "demo_videos.csv"
NORMALISED_COLUMNS = ("video_id", "path", "output", "num_frames", "width", "height", "fps", "sha256")


def output_path(root: Path, path: str) -> Path:
    """The normalised copy of the video listed at ``path`` under a dataset's ``root``."""
    return root / "videos" / Path(*PurePosixPath(path).with_suffix(".mp4").parts)
