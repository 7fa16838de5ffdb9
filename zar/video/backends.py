"""The decoders behind the reader: the container probe (packet count, rotation, whether a
seeking decoder is exact for the file) and the decord and PyAV sources (zar.video)."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from zar.video.common import (EXACT_SEEK, PACKED_B_CODECS, PARTIAL_SLACK_FRACTION, PARTIAL_SLACK_FRAMES,
                              _ROTATION_PACKETS, VideoDecodeError, VideoInfo, ShortRead, Untrusted, output_size)


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


def probe_container(path: str) -> _Probe:
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
        raise VideoDecodeError(path, f"cannot open: {type(e).__name__}: {last_line(e)}") from e


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
    slack = lambda d: max(PARTIAL_SLACK_FRAMES, int(d * PARTIAL_SLACK_FRACTION))  # noqa: E731
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
    codecs = EXACT_SEEK.get(container)
    if codecs is None:
        return f"{container} container (seeking not exact there)"
    if codec not in codecs:
        return f"{codec} in {container} (seeking not exact there)"
    if codec in PACKED_B_CODECS and reorder:
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
    """``probe_container`` of a file that has frames; a seeking backend (decord) is used
    only where it returns exact frames (see ``EXACT_SEEK``)."""
    probe = probe_container(path)
    if probe.packets == 0:
        raise VideoDecodeError(path, "no frames")
    if seeking_backend and probe.seek_problem:
        raise Untrusted(f"{probe.seek_problem}; {seeking_backend} would misplace frames")
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
            raise Untrusted(f"decord counts {n} frames, the demuxer {probe.packets}")
        self.info = _info(probe, n, float(self.vr.get_avg_fps()), (w, h))

    def read(self, idx: list[int]) -> np.ndarray:
        try:
            out = self.vr.get_batch(idx).asnumpy()
        finally:
            self.vr.seek(0)  # without it decord keeps the decoded frames alive (memory leak)
        if out.shape[1:3] != (self.info.height, self.info.width):
            raise Untrusted(f"decord returned {out.shape[2]}x{out.shape[1]} frames, the display size is "
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
            raise ShortRead(i + 1 if i >= 0 else 0)
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


BACKEND_READERS = {"decord": _DecordSource, "pyav": _PyAVSource}
BACKEND_MODULES = {"decord": "decord", "pyav": "av"}


def last_line(e: BaseException, limit: int = 300) -> str:
    """The last line of an exception's message (a decoder's own message comes last)."""
    s = str(e).strip().splitlines()
    return (s[-1] if s else "")[:limit]


