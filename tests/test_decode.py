"""``zar decode``: uniform outputs (h264, CFR, keyframe every second, short side), every listed
video accounted for, bad files corrupt with a reason within the time bound."""
from __future__ import annotations

import json
import os
import stat
import subprocess
import time

import pytest

from videos_fixtures import XVID, make_video
from zar.cli import main
from zar.data.decode import even_size, normalize_video
from zar.data.manifest import read_manifest




def probe(path) -> dict:
    out = subprocess.run(["ffprobe", "-v", "error", "-of", "json", "-select_streams", "v:0",
                          "-show_streams", "-show_packets", str(path)],
                         capture_output=True, text=True, check=True).stdout
    return json.loads(out)


def test_even_size_matches_reference():
    for w in range(2, 700, 37):
        for h in range(2, 700, 41):
            for s in (16, 256, 320):
                got = even_size(w, h, s)
                # reference: scale factor min(1, s/short); short side floored, long side rounded,
                # both to even numbers (at least 2)
                f = min(1.0, s / min(w, h))
                if w <= h:
                    want = (max(2, int(w * f) // 2 * 2), max(2, round(h * f / 2) * 2))
                else:
                    want = (max(2, round(w * f / 2) * 2), max(2, int(h * f) // 2 * 2))
                assert got == want, (w, h, s)
                assert got[0] % 2 == 0 and got[1] % 2 == 0
                assert min(got) <= s


@pytest.mark.parametrize("codec,ext,size,fps", [("libx264", "mp4", "96x64", 15), (XVID, "avi", "64x96", 12)])
def test_normalize_output_form(tmp_path, codec, ext, size, fps):
    src = make_video(tmp_path / f"src.{ext}", seconds=2.5, fps=fps, size=size, codec=codec)
    dst = tmp_path / "out" / "src.mp4"
    row = normalize_video(src, dst, short_side=32, timeout=60)
    assert row["status"] == "ok", row
    info = probe(dst)
    s = info["streams"][0]
    assert s["codec_name"] == "h264" and s["pix_fmt"] == "yuv420p"
    w, h = (int(x) for x in size.split("x"))
    assert (s["width"], s["height"]) == even_size(w, h, 32) == (row["width"], row["height"])
    assert min(s["width"], s["height"]) == 32
    pkts = sorted(info["packets"], key=lambda p: float(p["pts_time"]))
    src_frames = len(probe(src)["packets"])
    assert len(pkts) == row["frames"] == row["src_frames"] == src_frames
    steps = {round(float(b["pts_time"]) - float(a["pts_time"]), 4) for a, b in zip(pkts, pkts[1:])}
    assert steps == {round(1 / fps, 4)}  # constant frame rate
    keys = [i for i, p in enumerate(pkts) if "K" in p["flags"]]
    assert keys[0] == 0 and max(b - a for a, b in zip(keys, keys[1:] + [len(pkts)])) <= fps
    assert row["src_fps"] == pytest.approx(fps) and row["fps"] == pytest.approx(fps)
    assert row["src_duration"] == pytest.approx(2.5, abs=0.1)
    assert not [p for p in dst.parent.iterdir() if p.name != "src.mp4"]  # no temporary left


@pytest.fixture
def bad_files(tmp_path):
    """Each with the word its reason must contain."""
    d = tmp_path / "bad"
    d.mkdir()
    good_avi = make_video(tmp_path / "g.avi", seconds=3, fps=10, codec=XVID)
    good_mp4 = make_video(tmp_path / "g.mp4", seconds=1, fps=10)
    (d / "empty.mp4").write_bytes(b"")
    data = good_avi.read_bytes()
    (d / "truncated.avi").write_bytes(data[: len(data) // 2])
    (d / "text.mp4").write_text("hello, I am not a video\n" * 50)
    (d / "avi_named.mp4").write_bytes(data)  # wrong extension: AVI content, .mp4 name
    (d / "video.txt").write_bytes(good_mp4.read_bytes())  # a video with a non-video extension
    os.mkfifo(d / "fifo.mp4")
    return {"empty.mp4": "empty file", "truncated.avi": "incomplete", "text.mp4": "not a video container",
            "avi_named.mp4": "content is avi but the name says .mp4", "video.txt": "not a video file extension",
            "fifo.mp4": "not a regular file"}, d


def test_bad_files_are_corrupt_with_reason(bad_files, tmp_path):
    expect, d = bad_files
    for name, words in expect.items():
        t = time.monotonic()
        row = normalize_video(d / name, tmp_path / "o" / f"{name}.mp4", short_side=256, timeout=60)
        assert row["status"] == "corrupt" and words in row["reason"], (name, row)
        assert time.monotonic() - t < 60
    assert not (tmp_path / "o").exists() or not list((tmp_path / "o").iterdir())


def test_time_limit_kills_a_hanging_tool(tmp_path):
    """By construction: an ffprobe that never returns. The video must come back corrupt with
    'timed out', and the stuck process must be gone."""
    src = make_video(tmp_path / "v.mp4", seconds=1, fps=10)
    pidfile = tmp_path / "pid"
    fake = tmp_path / "ffprobe"
    fake.write_text(f"#!/bin/sh\necho $$ > {pidfile}\nexec sleep 300\n")
    fake.chmod(fake.stat().st_mode | stat.S_IEXEC)
    t = time.monotonic()
    row = normalize_video(src, tmp_path / "o.mp4", timeout=1.0, ffprobe=str(fake))
    assert row["status"] == "corrupt" and "timed out after" in row["reason"], row
    assert time.monotonic() - t < 30
    pid = int(pidfile.read_text())
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)


def write_list(path, rows):
    path.write_text("video_id,path,class_name,class_index\n"
                    + "".join(f"{v},{p},c,0\n" for v, p in rows), encoding="utf-8")
    return path


def test_decode_cli_accounts_for_every_listed_video(tmp_path):
    root = tmp_path / "ucf101"
    raw = root / "raw"
    make_video(raw / "A" / "v_A_1.avi", seconds=2, fps=10, codec=XVID)
    make_video(raw / "A" / "v_A_2.avi", seconds=2, fps=10, codec=XVID)
    (raw / "B").mkdir(parents=True)
    (raw / "B" / "v_B_1.avi").write_bytes(b"")
    rows = [("v_A_1", "A/v_A_1.avi"), ("v_A_2", "A/v_A_2.avi"), ("v_B_1", "B/v_B_1.avi"),
            ("v_B_2", "B/v_B_2.avi"), ("..", "../x/...avi")]
    lst = write_list(tmp_path / "test.csv", rows)
    assert main(["decode", "--dataset", "ucf101", "--root", str(root), "--list", str(lst),
                 "--workers", "2"]) == 0
    m = read_manifest(root / "decode_manifest.csv")
    assert set(m) == {r[0] for r in rows}
    status = {k: v["status"] for k, v in m.items()}
    assert status == {"v_A_1": "ok", "v_A_2": "ok", "v_B_1": "corrupt", "v_B_2": "missing", "..": "missing"}
    assert m["v_A_1"]["output"] == "videos/A/v_A_1.mp4" and (root / "videos/A/v_A_1.mp4").exists()
    assert int(m["v_A_1"]["frames"]) == 20 and float(m["v_A_1"]["src_fps"]) == 10
    assert not (tmp_path / "x").exists()
    # rerun: nothing done again
    mtime = (root / "videos/A/v_A_1.mp4").stat().st_mtime_ns
    assert main(["decode", "--dataset", "ucf101", "--root", str(root), "--list", str(lst)]) == 0
    assert (root / "videos/A/v_A_1.mp4").stat().st_mtime_ns == mtime
    # other settings on the same folder: refused, not mixed
    assert main(["decode", "--dataset", "ucf101", "--root", str(root), "--list", str(lst),
                 "--short-side", "320"]) == 2


def test_decode_cli_refuses_small_short_side(tmp_path):
    assert main(["decode", "--dataset", "ucf101", "--root", str(tmp_path), "--short-side", "8"]) == 2


def test_download_then_decode_then_read(tmp_path):
    """The whole chain on local fixtures: the decode manifest (made from the download
    manifest, no list given) accounts for every listed video, and the reader returns the
    normalised frames equal to PyAV's."""
    import av
    import numpy as np

    from videos_fixtures import LocalServer, ucf_archives
    from zar.video import read_video

    videos, splits = ucf_archives(tmp_path)
    root = tmp_path / "ucf101"
    with LocalServer() as srv:
        srv.files["/v.rar"], srv.files["/s.zip"] = videos, splits
        src = tmp_path / "sources.json"
        src.write_text(json.dumps({"ucf101_videos": srv.url("/v.rar"), "ucf101_splits": srv.url("/s.zip")}))
        assert main(["download", "--dataset", "ucf101", "--root", str(root), "--sources", str(src)]) == 0
    assert main(["decode", "--dataset", "ucf101", "--root", str(root), "--workers", "2"]) == 0
    down = read_manifest(root / "download_manifest.csv")
    dec = read_manifest(root / "decode_manifest.csv")
    assert set(dec) == set(down) and len(dec) == 5
    assert {k: v["status"] for k, v in dec.items()} == {k: v["status"] for k, v in down.items()}
    assert dec["v_ClassB_g02_c01"]["reason"] == "download: not in the archive"
    out = root / dec["v_ClassA_g01_c01"]["output"]
    with av.open(str(out)) as c:
        ref = [f.to_ndarray(format="rgb24") for f in c.decode(c.streams.video[0])]
    frames, info = read_video(out, lambda i: [i.num_frames - 1, 0])
    assert info.num_frames == len(ref) == int(dec["v_ClassA_g01_c01"]["frames"])
    assert np.array_equal(frames[0], ref[-1]) and np.array_equal(frames[1], ref[0])
