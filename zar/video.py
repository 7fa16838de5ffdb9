"""Reading frames from video files, time-bounded, exact and in display orientation.

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
(``_EXACT_SEEK``, checked against PyAV's sequential decode): h264, VP9, MJPEG and MPEG-4
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

import atexit
import dataclasses
import logging
import os
import signal
import socket
import stat
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

log = logging.getLogger(__name__)

BACKENDS = ("decord", "pyav")
PARTIAL_POLICIES = ("flag", "refuse")
IMPORT_TIMEOUT = 300.0  # seconds a worker may take to import a decoder (torch is slow on cold disks)
# MPEG-4 part 2 decoders whose streams may carry packed B-frames (DivX/Xvid in AVI)
_PACKED_B_CODECS = {"mpeg4", "msmpeg4v1", "msmpeg4v2", "msmpeg4v3", "msmpeg4"}
# Where a seeking decoder returns exactly frame i: container (FFmpeg's demuxer name) -> codecs.
# Measured with decord 0.6.0 against PyAV's sequential decode (every frame, 25 index sets per
# file); mpeg4 counts only without B-frames. Everything else is read by PyAV.
_EXACT_SEEK = {
    "mov,mp4,m4a,3gp,3g2,mj2": {"h264", "mpeg4"},
    "matroska,webm": {"h264", "vp9", "mpeg4", "mjpeg"},
    "avi": {"mpeg4", "mjpeg"},
}
_ROTATION_PACKETS = 64  # packets decoded at most to find the first frame (and its rotation)
# a file is partial when fewer frames are readable than it declares, beyond this slack (AVI
# headers count a few placeholder frames of packed B-frame streams; durations are approximate)
_PARTIAL_SLACK_FRAMES = 2
_PARTIAL_SLACK_FRACTION = 0.02


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


class _Untrusted(Exception):
    """This backend's frame indexing cannot be trusted on this file (PyAV takes over)."""


class _ShortRead(Exception):
    """Fewer frames decoded than the demuxer promised; ``args[0]`` is the real count."""


def short_side_size(width: int, height: int, short_side: int | None) -> tuple[int, int]:
    """(width, height) scaled so the shorter side is ``short_side`` (None: unchanged)."""
    if not short_side or min(width, height) == short_side:
        return width, height
    if width <= height:
        return short_side, max(1, round(height * short_side / width))
    return max(1, round(width * short_side / height)), short_side


def output_size(width: int, height: int, short_side: int | None = None,
                max_short_side: int | None = None) -> tuple[int, int]:
    """The (width, height) a reader returns for a source of this display size: ``short_side``
    if given, else scaled down to ``max_short_side`` when the short side is larger, else as is."""
    if short_side:
        return short_side_size(width, height, short_side)
    if max_short_side and min(width, height) > max_short_side:
        return short_side_size(width, height, max_short_side)
    return width, height


# ----------------------------------------------------------------------------- sources
# A source opens one file, knows its VideoInfo and reads sorted unique indices.
@dataclass(frozen=True)
class _Probe:
    packets: int  # non-empty, non-discarded video packets: the frames a correct decoder shows
    fps: float
    width: int  # display size (rotation applied)
    height: int
    codec: str
    has_b_frames: bool
    container: str = ""  # FFmpeg's demuxer name
    rotation: int = 0  # quarter turns counter-clockwise (np.rot90's k) to reach display orientation
    declared: int | None = None
    partial: str | None = None  # why the file reads short (None: complete)
    seek_problem: str | None = None  # why a seeking decoder would not return exact frames


def _probe(path: str) -> _Probe:
    import av

    try:
        with av.open(path) as container:
            if not container.streams.video:
                raise VideoDecodeError(path, "no video stream")
            stream = container.streams.video[0]
            cc = stream.codec_context
            cc.thread_count = 1
            n, pts, damaged, turn = 0, [], False, None
            try:
                for pkt in container.demux(stream):
                    if pkt.size and not pkt.is_discard:
                        n += 1
                        pts.append(pkt.pts)
                    if turn is None and pkt.size:
                        turn = _first_frame_turn(cc, pkt, n)
            except av.error.FFmpegError:
                if n == 0:
                    raise  # damaged from the start; otherwise count up to the damage
                damaged = True
            fps = float(stream.average_rate or stream.guessed_rate or 0.0)
            tb = float(stream.time_base) if stream.time_base else 0.0
            reorder = int(getattr(cc, "reorder_depth", 0) or (1 if cc.has_b_frames else 0))
            w, h = int(cc.width), int(cc.height)
            turn = turn or 0
            if turn % 2:
                w, h = h, w
            declared, partial = _declared(stream, container, n, pts, fps, tb, damaged)
            fmt, codec, b_frames = str(container.format.name), str(cc.name), bool(cc.has_b_frames)
        problem = _seek_problem(fmt, codec, reorder, pts)
        if problem == _DECODE_ORDER_PTS and _output_order_matches(path, pts):
            problem = None  # the encoder used no B-frames (x264 on still or simple content)
        return _Probe(n, fps, w, h, codec, b_frames, fmt, turn, declared, partial, problem)
    except VideoDecodeError:
        raise
    except Exception as e:  # av raises many types for non-videos and damaged files
        raise VideoDecodeError(path, f"cannot open: {type(e).__name__}: {_first_line(e)}") from e


def _first_frame_turn(cc, pkt, n: int) -> int | None:
    """Decode ``pkt``; the quarter turns of the first frame that comes out (None: none yet).
    Gives up (0) on a decoding error or after ``_ROTATION_PACKETS`` packets."""
    import av

    try:
        frames = cc.decode(pkt)
    except (av.error.FFmpegError, ValueError):
        return 0
    for f in frames:
        return int(round(float(getattr(f, "rotation", 0) or 0) / 90.0)) % 4
    return 0 if n >= _ROTATION_PACKETS else None


def _declared(stream, container, n: int, pts: list, fps: float, tb: float,
              damaged: bool) -> tuple[int | None, str | None]:
    """(frames the container declares, why the file is partial or None)."""
    slack = lambda d: max(_PARTIAL_SLACK_FRAMES, int(d * _PARTIAL_SLACK_FRACTION))  # noqa: E731
    if stream.frames and stream.frames > 0:  # an index or header count (MP4, AVI)
        declared = int(stream.frames)
        if declared - n > slack(declared):
            return declared, f"{n} of {declared} declared frames are in the file"
        return declared, "demuxing stopped at damaged data" if damaged else None
    # no count (Matroska, WebM, TS): compare the time the packets cover with the duration;
    # a truncated file's declared count is then estimated at its own frame rate
    seconds = None
    if stream.duration and tb:
        seconds = float(stream.duration) * tb
    elif container.duration:
        seconds = float(container.duration) / 1e6
    known = [p for p in pts if p is not None]
    if seconds and known and tb and fps:
        covered = (max(known) - min(known)) * tb + 1.0 / fps
        if covered < seconds - slack(seconds * fps) / fps:
            return (int(round(n * seconds / covered)),
                    f"the frames cover {covered:.2f} of {seconds:.2f} declared seconds")
    return None, "demuxing stopped at damaged data" if damaged else None


def _seek_problem(container: str, codec: str, reorder: int, pts: list) -> str | None:
    """Why a seeking decoder would not return exactly frame i of this file (None: it would)."""
    codecs = _EXACT_SEEK.get(container)
    if codecs is None:
        return f"{container} container (seeking not exact there)"
    if codec not in codecs:
        return f"{codec} in {container} (seeking not exact there)"
    if codec in _PACKED_B_CODECS and reorder:
        return f"{codec} with B-frames (misplaced frames)"
    if any(p is None for p in pts):
        return "packets without timestamps"
    if len(set(pts)) != len(pts):
        return "repeated timestamps"
    if reorder and len(pts) > reorder + 1 and all(a < b for a, b in zip(pts, pts[1:])):
        return _DECODE_ORDER_PTS
    # frames leave a decoder with ``reorder`` frames of delay in increasing pts order
    import heapq

    heap, last = [], None
    for p in pts:
        heapq.heappush(heap, p)
        if len(heap) > reorder:
            out = heapq.heappop(heap)
            if last is not None and out <= last:
                return "timestamps out of order beyond the codec's reordering"
            last = out
    return None


_DECODE_ORDER_PTS = "decode-order timestamps on a stream that may reorder frames (remuxed from AVI?)"
_ORDER_CHECK_FRAMES = 48


def _output_order_matches(path: str, pts: list) -> bool:
    """Whether the first frames leave the decoder in the order of their timestamps (a stream
    that may reorder frames but has decode-order timestamps: either it has no B-frames, or
    its timestamps are wrong, as when an AVI is remuxed). Decodes ``_ORDER_CHECK_FRAMES``."""
    import av

    want = sorted(pts)[:_ORDER_CHECK_FRAMES]
    got = []
    try:
        with av.open(path) as container:
            stream = container.streams.video[0]
            stream.codec_context.thread_count = 1
            for frame in container.decode(stream):
                got.append(frame.pts)
                if len(got) >= len(want):
                    break
    except Exception:  # damaged: let PyAV read it
        return False
    return got == want


def _probe_frames(path: str, seeking_backend: str | None = None) -> _Probe:
    """``_probe`` of a file that has frames; a seeking backend (decord) is used
    only where it returns exact frames (see ``_EXACT_SEEK``)."""
    probe = _probe(path)
    if probe.packets == 0:
        raise VideoDecodeError(path, "no frames")
    if seeking_backend and probe.seek_problem:
        raise _Untrusted(f"{probe.seek_problem}; {seeking_backend} would misplace frames")
    return probe


def _info(probe: _Probe, n: int, fps: float, size: tuple[int, int]) -> VideoInfo:
    return VideoInfo(n, fps, size[0], size[1], probe.declared, probe.partial is not None)


class _DecordSource:
    def __init__(self, path: str, threads: int, short_side: int | None, max_short_side: int | None = None):
        probe = _probe_frames(path, "decord")
        import decord

        w, h = output_size(probe.width, probe.height, short_side, max_short_side)
        # decord applies the rotation itself; width/height are those of its (rotated) output
        size = {} if (w, h) == (probe.width, probe.height) else {"width": w, "height": h}
        self.vr = decord.VideoReader(path, num_threads=threads, **size)
        n = len(self.vr)
        if n != probe.packets:
            raise _Untrusted(f"decord counts {n} frames, the demuxer {probe.packets}")
        self.info = _info(probe, n, float(self.vr.get_avg_fps()), (w, h))

    def read(self, idx: list[int]) -> np.ndarray:
        try:
            out = self.vr.get_batch(idx).asnumpy()
        finally:
            self.vr.seek(0)  # without it decord keeps the decoded frames alive (memory leak)
        if out.shape[1:3] != (self.info.height, self.info.width):
            raise _Untrusted(f"decord returned {out.shape[2]}x{out.shape[1]} frames, the display size is "
                             f"{self.info.width}x{self.info.height} (rotation not applied?)")
        return out

    def close(self) -> None:
        self.vr = None


class _PyAVSource:
    """Sequential decoding: slow to seek but exact; the reference every other backend must match.
    Frames are scaled in the decoder's pixel-format conversion (bilinear, like decord) and then
    turned to display orientation."""

    def __init__(self, path: str, threads: int, short_side: int | None, max_short_side: int | None = None):
        probe = _probe_frames(path)
        self.path, self.threads, self.turn = path, threads, probe.rotation
        w, h = output_size(probe.width, probe.height, short_side, max_short_side)
        self.coded = (h, w) if probe.rotation % 2 else (w, h)  # size before turning
        self.scale = (w, h) != (probe.width, probe.height)
        self.info = _info(probe, probe.packets, probe.fps, (w, h))

    def _array(self, frame) -> np.ndarray:
        if not self.scale:
            a = frame.to_ndarray(format="rgb24")
            return np.rot90(a, self.turn) if self.turn else a
        if frame.format.name in _PLANAR_420 and frame.width % 2 == 0 and frame.height % 2 == 0:
            return _turn_and_scale_420(frame, self.turn, self.info.width, self.info.height)
        a = frame.to_ndarray(format="rgb24", width=self.coded[0], height=self.coded[1],
                             interpolation="BILINEAR")
        return np.rot90(a, self.turn) if self.turn else a

    def read(self, idx: list[int]) -> np.ndarray:
        import av

        want, last, got = set(idx), idx[-1], {}
        i = -1
        try:
            with av.open(self.path) as container:
                stream = container.streams.video[0]
                stream.codec_context.thread_count = self.threads
                for i, frame in enumerate(container.decode(stream)):
                    if i in want:
                        got[i] = self._array(frame)
                    if i >= last:
                        break
        except av.error.FFmpegError:
            pass  # damaged part: keep what decoded before it
        if len(got) < len(want):
            if i < 0 and not got:
                raise VideoDecodeError(self.path, "no frame decodes")
            raise _ShortRead(i + 1 if i >= 0 else 0)
        return np.stack([got[j] for j in idx])

    def close(self) -> None:
        pass


_PLANAR_420 = ("yuv420p", "yuvj420p")


def _turn_and_scale_420(frame, turn: int, width: int, height: int) -> np.ndarray:
    """A 4:2:0 frame turned (planes rotated) then scaled and converted to RGB in one bilinear
    libswscale pass, as decord does: scaled frames come out bit-identical to decord's (measured
    on untagged, BT.709 and full-range clips). The planes go through a fresh frame carrying only
    the colour tags (the decoder's other frame properties make libswscale round differently)."""
    import av

    h, w = frame.height, frame.width
    a = frame.to_ndarray(format=frame.format.name)  # (h * 3/2, w): Y, then U and V packed
    planes = (a[:h], a[h:h + h // 4].reshape(h // 2, w // 2), a[h + h // 4:].reshape(h // 2, w // 2))
    if turn:
        planes = tuple(np.rot90(p, turn) for p in planes)
    cols = planes[0].shape[1]
    packed = np.concatenate([np.ascontiguousarray(planes[0])]
                            + [np.ascontiguousarray(p).reshape(-1, cols) for p in planes[1:]])
    g = av.VideoFrame.from_ndarray(packed, format=frame.format.name)
    g.colorspace, g.color_range = frame.colorspace, frame.color_range
    return g.to_ndarray(format="rgb24", width=width, height=height, interpolation="BILINEAR")


_SOURCES = {"decord": _DecordSource, "pyav": _PyAVSource}
_MODULES = {"decord": "decord", "pyav": "av"}


def _first_line(e: BaseException, limit: int = 300) -> str:
    s = str(e).strip().splitlines()
    return (s[-1] if s else "")[:limit]


# ----------------------------------------------------------------------------- worker process
def _attach_shm(name: str):
    from multiprocessing import resource_tracker, shared_memory

    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    # the reader process owns (and unlinks) the block; keep this process's tracker out of it
    register = resource_tracker.register
    resource_tracker.register = lambda *a, **k: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


def _worker_main(fd: int) -> None:
    """Serve open/read requests on the socket ``fd`` until it closes."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the reader process decides when to stop
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # kernel-level kill, works while C code spins
    conn = Connection(fd)
    source, held, shms = None, None, {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        op = msg[0]
        limit = msg[-1] if op in ("open", "read", "load") else 0
        signal.alarm(int(min(float(limit), 86400)) + 30 if limit else 0)
        try:
            if op == "open":
                _, path, backend, threads, short_side, max_short_side, _limit = msg
                if source is not None:
                    source.close()
                source, held = None, None
                source = _SOURCES[backend](path, threads, short_side, max_short_side)
                reply = ("info", source.info)
            elif op in ("read", "put"):
                if op == "read":
                    held = np.ascontiguousarray(source.read(msg[1]), dtype=np.uint8)
                name, capacity = msg[2], msg[3]
                if held.nbytes > capacity:
                    reply = ("need", held.nbytes)
                else:
                    if name not in shms:
                        for old in shms.values():
                            old.close()
                        shms = {name: _attach_shm(name)}
                    view = np.ndarray(held.shape, np.uint8, buffer=shms[name].buf)
                    view[...] = held
                    del view
                    reply = ("frames", held.shape)
                    held = None
                    source.close()
                    source = None
            elif op == "load":  # import a backend (seconds on a cold disk)
                __import__(_MODULES[msg[1]])
                reply = ("loaded", msg[1])
            else:  # "ping"
                reply = ("pong", os.getpid())
        except _Untrusted as e:
            reply = ("error", f"not used: {e}")
        except _ShortRead as e:
            reply = ("short", int(e.args[0]))
        except VideoDecodeError as e:
            reply = ("error", e.reason)
        except Exception as e:  # decoders raise many types; all mean "cannot decode"
            reply = ("error", f"{type(e).__name__}: {_first_line(e)}")
        signal.alarm(0)
        try:
            conn.send(reply)
        except (OSError, EOFError):
            break


class _Timeout(Exception):
    pass


class _Worker:
    """One decoder process and the socket to it."""

    def __init__(self):
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parent.parent)
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        code = "import sys; from zar.video import _worker_main; _worker_main(int(sys.argv[1]))"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.owner = os.getpid()
        self.reads = 0
        self.loaded: set[str] = set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, msg: tuple, deadline: float):
        self.conn.send(msg)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.conn.poll(remaining):
            raise _Timeout()
        return self.conn.recv()

    def kill(self) -> None:
        if self.owner != os.getpid():
            return  # inherited through fork: the parent process owns it
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()
        self.conn.close()


# ----------------------------------------------------------------------------- the reader
class VideoReader:
    """Reads the frames a video's views need, in one batched call, within a time limit.

    backend: "decord" (default) or "pyav".
    fallback: on failure, distrust or timeout of the backend, try PyAV once more.
    timeout: seconds each backend attempt may take (so at most two timeouts per video).
    isolate: decode in a worker process (time-bounded); False decodes in this process
        (no time bound; for benchmarks and debugging).
    short_side: resize in the decoder so the shorter side has this many pixels (default:
        original size); bilinear in both decord and PyAV.
    max_short_side: scale down in the decoder, to this short side, only sources whose short
        side is larger (memory then stays bounded whatever the source resolution); smaller
        sources are returned as they are. ``short_side`` wins when both are given.
    partial: "flag" (default) reads a damaged or truncated file's readable frames and sets
        ``info.partial``; "refuse" raises VideoDecodeError for it instead.
    recycle_after: replace the worker process after this many videos.
    """

    def __init__(self, backend: str = "decord", *, fallback: bool = True, timeout: float = 60.0,
                 isolate: bool = True, short_side: int | None = None, max_short_side: int | None = None,
                 partial: str = "flag", threads: int = 1, recycle_after: int = 1000):
        if backend not in BACKENDS:
            raise ValueError(f"unknown video backend {backend!r}; choose from {BACKENDS}")
        if partial not in PARTIAL_POLICIES:
            raise ValueError(f"unknown partial policy {partial!r}; choose from {PARTIAL_POLICIES}")
        for name, v in (("short_side", short_side), ("max_short_side", max_short_side)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {v!r}")
        self.max_short_side, self.partial = max_short_side, partial
        self.backend, self.fallback, self.timeout = backend, fallback, float(timeout)
        self.isolate, self.short_side, self.threads = isolate, short_side, threads
        self.recycle_after = recycle_after
        self.stats = {"videos": 0, "fallbacks": 0, "timeouts": 0, "restarts": 0}
        self._worker: _Worker | None = None
        self._shm = None
        self._shm_owner: int | None = None
        self._lock = threading.Lock()

    # -- public
    def read(self, path: str | os.PathLike, indices_fn: Callable[[VideoInfo], Sequence[int]],
             timeout: float | None = None) -> tuple[np.ndarray, VideoInfo]:
        path = os.fspath(path)
        _precheck(path)
        timeout = self.timeout if timeout is None else float(timeout)
        order = [self.backend] + (["pyav"] if self.fallback and self.backend != "pyav" else [])
        errors = []
        with self._lock:
            self.stats["videos"] += 1
            for i, backend in enumerate(order):
                try:
                    if self.isolate:
                        out = self._attempt_isolated(path, backend, indices_fn, timeout)
                    else:
                        out = self._attempt_inline(path, backend, indices_fn)
                    self.stats["fallbacks"] += i > 0
                    break
                except _Failure as e:
                    errors.append(f"{backend}: {e}")
                    log.debug("%s: %s failed: %s", path, backend, e)
            else:
                raise VideoDecodeError(path, "; ".join(errors))
        info = out[1]
        if info.partial and self.partial == "refuse":
            raise VideoDecodeError(path, "partial file (damaged or truncated): " + partial_summary(info))
        return out

    def worker_pid(self) -> int | None:
        """The decoder process's id (None before the first read or after a kill)."""
        return self._worker.pid if self._worker is not None and self._worker.alive() else None

    def close(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
        if self._shm is not None and self._shm_owner == os.getpid():
            self._shm.close()
            self._shm.unlink()
        self._shm = None

    def __enter__(self):
        return self

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __exit__(self, *exc):
        self.close()

    # -- one attempt
    def _attempt_inline(self, path, backend, indices_fn):
        try:
            source = _SOURCES[backend](path, self.threads, self.short_side, self.max_short_side)
        except (VideoDecodeError, _Untrusted) as e:
            raise _Failure(e.reason if isinstance(e, VideoDecodeError) else f"not used: {e}") from None
        except Exception as e:
            raise _Failure(f"{type(e).__name__}: {_first_line(e)}") from None

        def read_unique(uniq: list[int], info: VideoInfo) -> np.ndarray:
            try:
                return np.asarray(source.read(uniq), dtype=np.uint8)
            except _ShortRead:
                raise
            except _Untrusted as e:
                raise _Failure(f"not used: {e}") from None
            except VideoDecodeError as e:
                raise _Failure(e.reason) from None
            except Exception as e:
                raise _Failure(f"{type(e).__name__}: {_first_line(e)}") from None

        try:
            return _read_in_order(source.info, indices_fn, read_unique)
        finally:
            source.close()

    def _attempt_isolated(self, path, backend, indices_fn, timeout):
        worker = self._get_worker()
        try:
            if backend not in worker.loaded:  # imports do not count against a video's time
                limit = IMPORT_TIMEOUT
                kind, payload = worker.call(("load", backend, limit), time.monotonic() + limit)
                if kind == "error":
                    raise _Failure(f"cannot load: {payload}")
                worker.loaded.add(backend)
            limit = timeout
            deadline = time.monotonic() + timeout
            kind, payload = worker.call(
                ("open", path, backend, self.threads, self.short_side, self.max_short_side, timeout), deadline)
            if kind == "error":
                raise _Failure(payload)
            info = payload

            def read_unique(uniq: list[int], info: VideoInfo) -> np.ndarray:
                shm = self._get_shm(len(uniq) * info.height * info.width * 3)
                kind, payload = worker.call(("read", uniq, shm.name, shm.size, timeout), deadline)
                if kind == "need":
                    shm = self._get_shm(int(payload))
                    kind, payload = worker.call(("put", None, shm.name, shm.size, timeout), deadline)
                if kind == "short":
                    raise _ShortRead(int(payload))
                if kind == "error":
                    raise _Failure(payload)
                # a view of the shared block: _read_in_order copies out of it, in request order
                return np.ndarray(tuple(payload), np.uint8, buffer=shm.buf)

            out = _read_in_order(info, indices_fn, read_unique)
            worker.reads += 1
            return out
        except _Timeout:
            self._drop_worker()
            self.stats["timeouts"] += 1
            raise _Failure(f"timed out after {limit:g} s (decoder process killed)") from None
        except (EOFError, OSError, BrokenPipeError):
            code = worker.proc.poll()
            self._drop_worker()
            raise _Failure(f"decoder process died (exit status {code})") from None
        except BaseException:
            # a failing indices_fn, an interrupt: the worker may still be busy; do not reuse it
            if not isinstance(sys.exc_info()[1], _Failure):
                self._drop_worker()
            raise

    # -- resources
    def _get_worker(self) -> _Worker:
        w = self._worker
        if w is not None and (w.owner != os.getpid() or not w.alive() or w.reads >= self.recycle_after):
            self._drop_worker()
            w = None
        if w is None:
            w = self._worker = _Worker()
            self.stats["restarts"] += 1
        return w

    def _drop_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def _get_shm(self, nbytes: int):
        from multiprocessing import shared_memory

        if self._shm is not None and (self._shm_owner != os.getpid() or self._shm.size < nbytes):
            if self._shm_owner == os.getpid():
                self._shm.close()
                self._shm.unlink()
            self._shm = None
        if self._shm is None:
            self._shm = shared_memory.SharedMemory(create=True, size=max(int(nbytes * 1.25), 1 << 20))
            self._shm_owner = os.getpid()
        return self._shm


class _Failure(Exception):
    """One backend attempt failed; the message is the reason."""


def _read_in_order(info: VideoInfo, indices_fn, read_unique) -> tuple[np.ndarray, VideoInfo]:
    """The frames ``indices_fn(info)`` asks for, in its order (repeats allowed), from ONE
    ``read_unique(sorted unique indices, info)`` call. A short read (fewer frames decode than
    the demuxer promised) corrects ``info.num_frames`` and asks ``indices_fn`` again, once."""
    for _ in range(2):
        idx = _indices(indices_fn, info)
        uniq, inverse = np.unique(idx, return_inverse=True)
        if uniq.size == 0:
            return np.zeros((0, info.height, info.width, 3), np.uint8), info
        try:
            unique_frames = read_unique(uniq.tolist(), info)
        except _ShortRead as e:
            info = dataclasses.replace(info, num_frames=int(e.args[0]), partial=True)
            continue
        try:
            return unique_frames[inverse], info  # a copy: nothing refers to a shared block after this
        finally:
            del unique_frames
    raise _Failure("frame count changed twice while reading")


def _indices(indices_fn, info: VideoInfo) -> np.ndarray:
    idx = np.asarray(list(indices_fn(info)), dtype=np.int64).reshape(-1)
    bad = idx[(idx < 0) | (idx >= info.num_frames)]
    if bad.size:
        raise IndexError(f"frame index {int(bad[0])} outside 0..{info.num_frames - 1}")
    return idx


def _precheck(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VideoDecodeError(path, "file not found") from None
    except OSError as e:
        raise VideoDecodeError(path, f"cannot stat: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoDecodeError(path, "is a directory")
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


# ----------------------------------------------------------------------------- convenience
_IDLE: dict[tuple, list[VideoReader]] = {}  # per setting: readers not in use (one per concurrent caller)
_ALL: list[VideoReader] = []
_POOL_LOCK = threading.Lock()


def read_video(
    path: str | Path,
    indices_fn: Callable[[VideoInfo], Sequence[int]],
    backend: str = "decord",
    timeout: float = 60.0,
    max_short_side: int | None = None,
    partial: str = "flag",
) -> tuple[np.ndarray, VideoInfo]:
    """Read the frames ``indices_fn(info)`` asks for (see ``VideoReader``), with a shared
    isolated reader: concurrent callers (threads) each get their own worker process."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose from {BACKENDS}")
    key = (backend, max_short_side, partial)
    with _POOL_LOCK:
        idle = _IDLE.setdefault(key, [])
        if idle:
            reader = idle.pop()
        else:
            reader = VideoReader(backend, timeout=timeout, max_short_side=max_short_side, partial=partial)
            _ALL.append(reader)
    try:
        return reader.read(path, indices_fn, timeout=timeout)
    finally:
        with _POOL_LOCK:
            _IDLE[key].append(reader)


def partial_summary(info: VideoInfo) -> str:
    """'N of M declared frames decode' (or what is known) for a partial file's record."""
    if info.declared_frames:
        return f"{info.num_frames} of {info.declared_frames} declared frames decode"
    return f"only the first {info.num_frames} frames decode"


@atexit.register
def _close_readers() -> None:
    for reader in list(_ALL):
        try:
            reader.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass
