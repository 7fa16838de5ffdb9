"""Reading frames from video files, time-bounded, exact and in display orientation.

The parts: ``common`` (VideoInfo, errors, sizes), ``sources`` (the container probe and the
decord and PyAV sources), ``worker`` (the decoder process), ``reader`` (VideoReader,
read_video).

Public interface (used by encode, evaluate and train; keep it stable):

- ``VideoInfo(num_frames, fps, width, height, declared_frames=None, partial=False)``:
  ``num_frames`` frames can actually be read; ``width``/``height`` are the size of the frames
  returned (display orientation, after any decoder-side scaling); ``declared_frames`` is the
  count the container announces (MP4/AVI index or header; for a truncated Matroska/WebM file
  an estimate from its declared duration; None when the container gives no count);
  ``partial`` is True when the file is damaged or truncated, so that fewer frames decode than
  it declares: the frames returned are then those of the readable part.
- ``VideoDecodeError(path, reason)``: the file cannot be decoded (missing, empty, corrupt,
  too slow, or partial when partial files are refused); callers skip and record the video.
- ``read_video(path, indices_fn, backend="decord", timeout=60.0, max_short_side=None,
  partial="flag") -> (frames, info)``: opens the video, calls ``indices_fn(info)`` to get the
  frame indices it needs, and returns those frames as one uint8 array (N, H, W, 3) in the
  order given (repeats allowed), read in ONE batched call.
- ``VideoReader``: the same with settings (backend, fallback, time limit, ``short_side`` /
  ``max_short_side`` resize in the decoder, partial policy, in-process or isolated);
  ``read_video`` keeps one per setting.

Frame i is the i-th frame of a sequential decode (PyAV, the reference). A seeking decoder
(decord) is used only where it was measured to return exactly that frame
(``EXACT_SEEK``, checked against PyAV's sequential decode): h264, VP9, MJPEG and MPEG-4
part 2 without B-frames in MP4/MOV and Matroska/WebM, and MPEG-4 part 2 without B-frames or
MJPEG in AVI. Outside it decord returns other frames than asked for, e.g. h264 in AVI (with
or without B-frames, once there is more than one keyframe: asking for the last frame of a
100-frame clip returns frame 24), MPEG-4 part 2 with (packed) B-frames in any container,
h264 in MPEG-TS. The file must also pass a timestamp check on its packets (every packet has
a unique pts, and the pts are consistent with the codec's reordering: a stream remuxed from
AVI keeps decode-order timestamps on reordered frames, and decord then sorts the frames
wrongly), and the decoder's frame count must equal the demuxer's packet count. Otherwise
PyAV reads the file: slower (sequential decoding), exact. ``zar decode``'s normalised copies
(h264 in MP4) stay with decord.

Rotation metadata (a display matrix) is applied by every backend (decord by itself, PyAV by
turning the array), so frames and ``VideoInfo`` are in display orientation whichever backend
read the file. ``max_short_side`` scales frames down in the decoder (decord's
``width``/``height``; in PyAV the same bilinear libswscale pass on each wanted frame, which
gives decord's pixels exactly for 4:2:0 video) when the source's short side is larger, so
memory follows the size the caller needs, not the source resolution; a source at or below it
is returned untouched.

How it stays bounded. Decoders run in a persistent worker process (``python -c`` with a
socket to this one); the frames come back through a shared-memory block that the reader
owns. Every request waits at most ``timeout`` seconds; past that the worker is killed
(decord's ``get_batch`` can loop forever holding the GIL, so a thread could not stop it) and
a fresh one starts on the next request. The worker also arms ``SIGALRM`` with its default
action, so a hung worker dies by itself even if this process is gone.

How frame counts are checked. Before opening any decoder the container is demuxed (no
decoding, a few ms for a 10 s clip) and the non-empty, non-discarded video packets are
counted; the first frame is decoded for its rotation. A seeking decoder whose own count
differs (headers that lie, edit lists, truncation) is not used; PyAV decodes sequentially
and clamps ``num_frames`` to what really decodes (``indices_fn`` is then called again with
the corrected count, and ``partial`` is set). decord's memory leak is avoided with
``seek(0)`` after every ``get_batch``, and the worker is replaced every ``recycle_after``
videos.
"""
from __future__ import annotations

from zar.video.common import VideoDecodeError, VideoInfo, output_size, short_side_size
from zar.video.reader import VideoReader, partial_summary, read_video

__all__ = ["VideoDecodeError", "VideoInfo", "VideoReader", "output_size", "partial_summary", "read_video",
           "short_side_size"]
