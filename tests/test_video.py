"""The time-bounded video reader: frames equal PyAV's, lying/damaged files clamp or fail
with a reason, a hang is cut off by killing the decoder process."""
from __future__ import annotations

import os
import time

import av
import numpy as np
import pytest

from videos_fixtures import XVID, make_video
from zar.video import VideoDecodeError, VideoInfo, VideoReader, read_video, short_side_size




def pyav_frames(path) -> list[np.ndarray]:
    """Reference decode: every frame, in order, as RGB (written here, independent of zar)."""
    out = []
    with av.open(str(path)) as c:
        try:
            for f in c.decode(c.streams.video[0]):
                out.append(f.to_ndarray(format="rgb24"))
        except av.error.FFmpegError:
            pass
    return out


def pick(info: VideoInfo) -> list[int]:
    n = info.num_frames
    return [n - 1, 0, n // 2, 3, 3, n - 1, 1]  # unordered, repeated, both ends


@pytest.fixture(scope="module")
def clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("clips")
    return {
        "h264": make_video(d / "a.mp4", seconds=2, fps=15, size="96x72"),
        "xvid": make_video(d / "b.avi", seconds=2, fps=12, size="80x64", codec=XVID),
        # packed B-frames: decord returns misplaced frames on these (the reader must notice)
        "xvid_b": make_video(d / "c.avi", seconds=3, fps=10, size="80x64", codec=XVID, bframes=2),
    }


@pytest.mark.parametrize("kind", ["h264", "xvid", "xvid_b"])
@pytest.mark.parametrize("backend", ["decord", "pyav"])
def test_frames_equal_pyav(clips, kind, backend):
    ref = pyav_frames(clips[kind])
    frames, info = read_video(clips[kind], pick, backend=backend, timeout=60)
    assert info.num_frames == len(ref)
    want = pick(info)
    assert frames.dtype == np.uint8 and frames.shape == (len(want), info.height, info.width, 3)
    for k, i in enumerate(want):
        assert np.array_equal(frames[k], ref[i]), f"frame {i} (position {k}) differs"


def test_torchcodec_backend_when_installed(clips):
    pytest.importorskip("torchcodec")
    ref = pyav_frames(clips["h264"])
    frames, info = read_video(clips["h264"], pick, backend="torchcodec", timeout=120)
    for k, i in enumerate(pick(info)):
        assert np.array_equal(frames[k], ref[i])


def test_inline_reader_matches_isolated(clips):
    with VideoReader("decord", isolate=False) as inline, VideoReader("decord") as iso:
        a, ia = inline.read(clips["h264"], pick)
        b, ib = iso.read(clips["h264"], pick)
    assert ia == ib and np.array_equal(a, b)


def test_indices_fn_called_with_info_and_bad_index_is_callers_error(clips):
    seen = []

    def fn(info):
        seen.append(info)
        return [info.num_frames]  # one past the end

    with pytest.raises(IndexError, match="outside"):
        read_video(clips["h264"], fn)
    assert seen and seen[0].num_frames == len(pyav_frames(clips["h264"]))
    assert seen[0].fps == pytest.approx(15.0)


def test_short_side_resize(clips):
    with VideoReader("pyav", short_side=36) as r:
        frames, info = r.read(clips["h264"], lambda i: [0, 1])
    assert (info.height, info.width) == (36, 48) == frames.shape[1:3]
    assert short_side_size(96, 72, 36) == (48, 36) and short_side_size(72, 96, 36) == (36, 48)


def test_truncated_avi_is_clamped_to_what_decodes(clips, tmp_path):
    data = clips["xvid"].read_bytes()
    bad = tmp_path / "trunc.avi"
    bad.write_bytes(data[: len(data) * 6 // 10])
    ref = pyav_frames(bad)
    assert 0 < len(ref) < len(pyav_frames(clips["xvid"]))
    frames, info = read_video(bad, lambda i: [0, i.num_frames - 1], timeout=60)
    assert info.num_frames <= len(ref) + 1
    assert np.array_equal(frames[0], ref[0])


@pytest.mark.parametrize("content,reason", [
    (b"", "empty file"),
    (b"this is not a video, just text\n" * 20, "cannot open"),
])
def test_bad_files_fail_with_reason(tmp_path, content, reason):
    p = tmp_path / "bad.mp4"
    p.write_bytes(content)
    t = time.monotonic()
    with pytest.raises(VideoDecodeError) as e:
        read_video(p, pick, timeout=30)
    assert reason in e.value.reason and e.value.path == str(p)
    assert time.monotonic() - t < 60


def test_missing_file(tmp_path):
    with pytest.raises(VideoDecodeError, match="file not found"):
        read_video(tmp_path / "nope.mp4", pick)


def test_hang_is_killed_and_reader_recovers(clips, tmp_path):
    """A FIFO with no writer blocks the decoder forever in open(): a real hang, in C code.
    The reader must kill the worker after the timeout, report it, and work again after."""
    fifo = tmp_path / "hang.mp4"
    os.mkfifo(fifo)
    with VideoReader("decord", timeout=1.5) as r:
        r.read(clips["h264"], lambda i: [0])
        first = r.worker_pid()
        assert first is not None
        t = time.monotonic()
        with pytest.raises(VideoDecodeError) as e:
            r.read(fifo, pick)
        elapsed = time.monotonic() - t
        assert "timed out after 1.5 s" in e.value.reason
        assert e.value.reason.count("timed out") == 2  # decord, then the PyAV fallback
        assert r.stats["timeouts"] == 2
        assert elapsed < 30  # two 1.5 s limits plus process restarts; generous on busy cores
        with pytest.raises(ProcessLookupError):
            os.kill(first, 0)  # the hung worker is gone, not left spinning
        frames, _ = r.read(clips["h264"], lambda i: [0, 1])
        assert frames.shape[0] == 2 and r.worker_pid() not in (None, first)


def test_packed_b_frames_go_to_pyav(clips):
    with av.open(str(clips["xvid_b"])) as c:
        assert c.streams.video[0].codec_context.has_b_frames  # the fixture is what it claims
    with VideoReader("decord") as r:
        r.read(clips["xvid_b"], pick)
        assert r.stats["fallbacks"] == 1
        r.read(clips["h264"], pick)
        assert r.stats["fallbacks"] == 1  # h264 stays with decord
