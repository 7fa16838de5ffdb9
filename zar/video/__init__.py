"""Reading frames from video files, time-bounded, exact and in display orientation: one
batched read of the frames a video's views need (:func:`read_video`, :class:`VideoReader`).

The parts: ``common`` (VideoInfo, errors, sizes), ``backends`` (the container probe and the
decord and PyAV decoders), ``worker`` (the decoder process), ``reader`` (VideoReader,
read_video). How frames are kept exact, rotation applied, memory and time bounded, and frame
counts checked: docs/video.md.
"""
from __future__ import annotations

from zar.video.common import VideoDecodeError, VideoInfo, output_size, short_side_size
from zar.video.reader import VideoReader, partial_summary, read_video

__all__ = ["VideoDecodeError", "VideoInfo", "VideoReader", "output_size", "partial_summary", "read_video",
           "short_side_size"]
