"""The time-bounded video reader: frames equal PyAV's, lying/damaged files clamp or fail
with a reason, a hang is cut off by killing the decoder process."""
from __future__ import annotations

import os
import subprocess
import time
from pathlib import Path

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


def test_inline_reader_matches_isolated(clips):
    with VideoReader("decord", isolate=False) as inline, VideoReader("decord") as iso:
        a, ia = inline.read(clips["h264"], pick)
        b, ib = iso.read(clips["h264"], pick)
    assert ia == ib and np.array_equal(a, b)


def test_relative_paths_follow_this_process_s_directory(clips, tmp_path, monkeypatch):
    """The decoder process outlives one call: a relative path read after a chdir is found
    where this process looks, not where the decoder process was started."""
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "clip.mp4").write_bytes(clips["h264"].read_bytes())
    with VideoReader("decord") as reader:
        monkeypatch.chdir(clips["h264"].parent)
        a, _ = reader.read("a.mp4", pick)
        monkeypatch.chdir(other)
        b, _ = reader.read("clip.mp4", pick)  # the same decoder process
    assert np.array_equal(a, b)


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


# ----------------------------------------------------------------------------- exact frames
FF = ["ffmpeg", "-v", "error", "-nostdin", "-y"]
SRC = ["-f", "lavfi", "-i", "testsrc2=size=96x72:rate=25:duration=4"]  # moving content: x264 uses B-frames
X264_B = ["-c:v", "libx264", "-bf", "3", "-g", "25", "-pix_fmt", "yuv420p"]  # 4 keyframes
VFR = ["-f", "lavfi", "-i", "testsrc2=size=96x72:rate=25:duration=4,"
       "setpts='N/25/TB+if(gt(N,40),0.5/TB,0)+if(gt(N,70),0.3/TB,0)'", "-vsync", "vfr"]


def ffmpeg(*args) -> None:
    subprocess.run([*FF, *map(str, args)], check=True)


@pytest.fixture(scope="module")
def hard_clips(tmp_path_factory):
    d = tmp_path_factory.mktemp("hard")
    for ext in ("avi", "mkv", "mp4"):
        ffmpeg(*SRC, *X264_B, d / f"h264_b.{ext}")
    packed = ["-c:v", XVID, "-bf", "2", "-q:v", "3"] + (["-vtag", "XVID"] if XVID == "mpeg4" else [])
    ffmpeg(*SRC, *packed, d / "mpeg4_packed_b.avi")
    ffmpeg(*SRC[:3], "testsrc2=size=96x72:rate=25:duration=4", "-c:v", "mpeg4", "-bf", "2", "-q:v", "3",
           d / "mpeg4_b.mp4")
    for ext in ("mp4", "mkv"):
        ffmpeg(*VFR, *X264_B, d / f"vfr.{ext}")
    # an AVI remuxed (Matroska needs the timestamps MP4 gives it): its decode-order timestamps
    # travel with reordered (B-)frames
    ffmpeg("-i", d / "h264_b.avi", "-c", "copy", d / "pts_out_of_order.mp4")
    ffmpeg("-i", d / "pts_out_of_order.mp4", "-c", "copy", d / "pts_out_of_order.mkv")
    return d


# where decord returns exact frames it must be used (speed); elsewhere PyAV reads the file
EXACT_WITH_DECORD = {"h264_b.mkv", "h264_b.mp4", "vfr.mp4", "vfr.mkv"}


B_FRAME = 3


def _sequential(path) -> tuple[list[np.ndarray], list, list[int]]:
    frames, pts, kinds = [], [], []
    with av.open(str(path)) as c:
        c.streams.video[0].codec_context.thread_count = 1  # damaged data decodes the same way as in zar
        try:
            for f in c.decode(c.streams.video[0]):
                frames.append(f.to_ndarray(format="rgb24"))
                pts.append(f.pts)
                kinds.append(int(f.pict_type))  # FFmpeg's AVPictureType: 1 I, 2 P, 3 B
        except av.error.FFmpegError:
            pass  # a truncated file: what decoded before the damage
    return frames, pts, kinds


@pytest.mark.parametrize("name", ["h264_b.avi", "h264_b.mkv", "h264_b.mp4", "mpeg4_packed_b.avi", "mpeg4_b.mp4",
                                  "vfr.mp4", "vfr.mkv", "pts_out_of_order.mp4", "pts_out_of_order.mkv"])
def test_every_frame_is_the_frame_asked_for(hard_clips, name):
    """Each returned frame equals frame i of PyAV's sequential decode, whatever container and
    codec; asking for [0, last] (decord returned frame 0 twice on h264 in AVI) included."""
    path = hard_clips / name
    ref, pts, kinds = _sequential(path)
    n = len(ref)
    # the fixture is what its name says
    if name.startswith(("h264_b", "mpeg4", "pts_out")):
        assert B_FRAME in kinds, kinds[:20]
    if name.startswith("vfr"):
        assert len({b - a for a, b in zip(pts, pts[1:])}) > 1
    if name.startswith("pts_out"):
        assert pts != sorted(pts)
    order = list(np.random.default_rng(0).permutation(n)) + [0, n - 1, n // 2, n // 2]
    reads = ([0, n - 1], [n - 1], [n // 2, n - 1], order)
    for backend in ("decord", "pyav"):
        with VideoReader(backend) as r:
            for want in reads:
                frames, info = r.read(path, lambda i, w=want: w)
                assert info.num_frames == n and not info.partial
                for k, i in enumerate(want):
                    assert np.array_equal(frames[k], ref[i]), f"{backend}: frame {i} (position {k}) differs"
            if backend == "decord":
                assert r.stats["fallbacks"] == (0 if name in EXACT_WITH_DECORD else len(reads)), r.stats


def test_normalised_copies_stay_with_decord(tmp_path):
    """``zar decode``'s output (h264 mp4, CFR, keyframe every second) is read by decord, exactly."""
    from zar.data.decode import normalize_video

    src = tmp_path / "src.avi"
    ffmpeg(*SRC, "-c:v", XVID, "-q:v", "3", src)
    dst = tmp_path / "norm.mp4"
    assert normalize_video(src, dst, short_side=48, timeout=60)["status"] == "ok"
    ref, _, _ = _sequential(dst)
    with VideoReader("decord") as r:
        frames, info = r.read(dst, lambda i: [0, i.num_frames - 1, 37])
        assert r.stats["fallbacks"] == 0
    assert [np.array_equal(f, ref[i]) for f, i in zip(frames, [0, len(ref) - 1, 37])] == [True] * 3


# ----------------------------------------------------------------------------- rotation
@pytest.fixture(scope="module")
def rotated(tmp_path_factory):
    d = tmp_path_factory.mktemp("rot")
    base = d / "base.mp4"
    ffmpeg("-f", "lavfi", "-i", "gradients=size=160x96:rate=10:duration=2", *X264_B, base)
    out = {}
    for deg in (90, 180, 270):
        out[deg] = d / f"rot{deg}.mp4"
        ffmpeg("-i", base, "-c", "copy", "-metadata:s:v:0", f"rotate={deg}", out[deg])
    return out


def _ffmpeg_display_frames(path, w, h) -> np.ndarray:
    """Reference in display orientation: the ffmpeg command line's own autorotation."""
    raw = subprocess.run([*FF, "-i", str(path), "-f", "rawvideo", "-pix_fmt", "rgb24", "-"],
                         capture_output=True, check=True).stdout
    return np.frombuffer(raw, np.uint8).reshape(-1, h, w, 3)


@pytest.mark.parametrize("deg", [90, 180, 270])
def test_rotation_is_applied_the_same_way_by_every_backend(rotated, deg):
    path = rotated[deg]
    w, h = (96, 160) if deg != 180 else (160, 96)
    ref = _ffmpeg_display_frames(path, w, h)
    want = [0, 7, len(ref) - 1]
    got = {}
    for backend in ("decord", "pyav"):
        with VideoReader(backend) as r:
            frames, info = r.read(path, lambda i: want)
            assert r.stats["fallbacks"] == 0  # decord itself, not the fallback
        assert (info.width, info.height) == (w, h)
        assert frames.shape == (3, h, w, 3)
        for k, i in enumerate(want):
            assert np.array_equal(frames[k], ref[i]), f"{backend}: frame {i} not in display orientation"
        got[backend] = frames
    # scaled in the decoder: the same display size and the same pixels
    scaled = {}
    for backend in ("decord", "pyav"):
        with VideoReader(backend, max_short_side=40) as r:
            scaled[backend], info = r.read(path, lambda i: want)
            assert r.stats["fallbacks"] == 0
        assert min(info.width, info.height) == 40 and scaled[backend].shape[1:3] == (info.height, info.width)
        assert (info.width > info.height) == (w > h)
    assert np.array_equal(scaled["decord"], scaled["pyav"])


# ----------------------------------------------------------------------------- partial files
def test_truncated_mp4_with_index_first_is_flagged_partial(tmp_path):
    full = tmp_path / "full.mp4"
    ffmpeg(*SRC, *X264_B, "-movflags", "+faststart", full)
    data = full.read_bytes()
    cut = tmp_path / "cut.mp4"
    cut.write_bytes(data[: len(data) // 2])
    _, info = read_video(full, lambda i: [0])
    assert (info.num_frames, info.declared_frames, info.partial) == (100, 100, False)
    ref, _, _ = _sequential(cut)
    for backend in ("decord", "pyav"):
        frames, info = read_video(cut, lambda i: [0, i.num_frames - 1], backend=backend)
        assert info.partial and info.declared_frames == 100
        assert 0 < info.num_frames < 60 and info.num_frames <= len(ref)
        assert np.array_equal(frames[0], ref[0])
    with VideoReader("decord", partial="refuse") as r:
        with pytest.raises(VideoDecodeError, match=r"partial file .*of 100 declared frames"):
            r.read(cut, lambda i: [0])
        r.read(full, lambda i: [0])  # a complete file is not refused


def test_truncated_matroska_is_flagged_partial(tmp_path):
    """No frame count in the container: the frames must cover the declared duration."""
    full = tmp_path / "full.mkv"
    ffmpeg(*SRC, *X264_B, full)
    cut = tmp_path / "cut.mkv"
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    _, info = read_video(full, lambda i: [0])
    assert not info.partial and info.declared_frames is None and info.num_frames == 100
    _, info = read_video(cut, lambda i: [0])
    assert info.partial and 0 < info.num_frames < 60 and 90 <= info.declared_frames <= 110


# ----------------------------------------------------------------------------- memory
# VmHWM: this process's own peak (ru_maxrss would carry pytest's peak over the exec);
# RUSAGE_CHILDREN: the peak of the decoder process, counted once it has exited
_MEM_SCRIPT = """
import re, resource, sys
from zar.video import VideoReader
cap = int(sys.argv[2]) or None
with VideoReader(sys.argv[3], max_short_side=cap, fallback=False) as r:
    frames, info = r.read(sys.argv[1], lambda i: list(range(10)))
own = int(re.search(r"VmHWM:\\s+(\\d+) kB", open("/proc/self/status").read()).group(1))
print(frames.shape[1], frames.shape[2], own, resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss)
"""
MEMORY_BOUND_MIB = 300  # peak RSS of the reader and of its decoder process, each


def test_decoder_scaling_bounds_memory_on_a_4000x3000_clip(tmp_path):
    """Ten frames of a 4000x3000 clip asked for at short side 256: scaled in the decoder, the
    reader and its decoder process each stay under MEMORY_BOUND_MIB (full-resolution frames
    alone would be 10 x 34 MiB, and ~0.9 GiB of peak were measured without the scaling)."""
    import sys

    clip = tmp_path / "big.mp4"
    ffmpeg("-f", "lavfi", "-i", "testsrc2=size=4000x3000:rate=10:duration=1", "-c:v", "libx264",
           "-preset", "ultrafast", "-pix_fmt", "yuv420p", clip)
    import zar

    root = str(Path(zar.__file__).resolve().parents[1])  # the zar this test runs against
    env = {**os.environ, "PYTHONPATH": root + os.pathsep + os.environ.get("PYTHONPATH", "")}
    peaks = {}
    for cap, backend in ((256, "decord"), (256, "pyav"), (0, "decord")):
        out = subprocess.run([sys.executable, "-c", _MEM_SCRIPT, str(clip), str(cap), backend], env=env,
                             capture_output=True, text=True, check=True, timeout=300).stdout.split()
        h, w, own, worker = map(int, out)
        peaks[cap, backend] = (h, w, own / 1024, worker / 1024)
    for backend in ("decord", "pyav"):
        h, w, own, worker = peaks[256, backend]
        assert (h, w) == (256, 341)
        assert own < MEMORY_BOUND_MIB and worker < MEMORY_BOUND_MIB, peaks
    full = peaks[0, "decord"]
    assert full[:2] == (3000, 4000) and max(full[2:]) > MEMORY_BOUND_MIB, peaks  # the bound means something


def _read_in_child(path, queue):
    from zar.video import reader as reader_module

    frames, _ = read_video(path, pick, backend="pyav", timeout=60)
    mine = [r for r in reader_module._ALL if r._shm is not None and r._shm_owner == os.getpid()]
    queue.put((frames.shape[0], [r._shm.name for r in mine], [r.worker_pid() for r in mine]))


def test_a_forked_child_frees_its_readers_at_exit(clips):
    """A DataLoader worker (a forked child, which skips atexit) stops its decoder processes and
    removes its shared memory when it ends, and leaves its parent's readers alone."""
    import multiprocessing

    read_video(clips["h264"], pick, backend="pyav", timeout=60)  # the parent's own reader
    from zar.video import reader as reader_module

    parents = [(r._shm.name, r.worker_pid()) for r in reader_module._ALL
               if r._shm is not None and r._shm_owner == os.getpid()]
    ctx = multiprocessing.get_context("fork")
    queue = ctx.Queue()
    child = ctx.Process(target=_read_in_child, args=(str(clips["h264"]), queue))
    child.start()
    n, shm_names, worker_pids = queue.get(timeout=60)
    child.join(60)
    assert child.exitcode == 0 and n == 7 and shm_names and all(worker_pids)
    deadline = time.time() + 10
    while time.time() < deadline and any(Path(f"/proc/{p}").exists() for p in worker_pids):
        time.sleep(0.1)
    for name in shm_names:
        assert not Path(f"/dev/shm/{name.lstrip('/')}").exists(), f"shared memory {name} left behind"
    assert not any(Path(f"/proc/{p}").exists() for p in worker_pids), "the child's decoder processes outlived it"
    for name, pid in parents:  # the parent's reader still works
        assert Path(f"/dev/shm/{name.lstrip('/')}").exists() and pid and Path(f"/proc/{pid}").exists()
