"""``zar download`` against a local HTTP server (127.0.0.1 only): every listed video ends up
in the manifest with a status and a reason; reruns fetch nothing that is complete;
interrupted transfers resume; sha256 pins are enforced; YouTube clips are cut correctly."""
from __future__ import annotations

import csv
import hashlib
import io
import json
from pathlib import Path

import av
import pytest

from videos_fixtures import LocalServer, make_rar, make_video, tar_bytes, ucf_archives
from zar.cli import main
from zar.data.download import Downloader
from zar.data.fetch import FetchError, http_download
from zar.data.manifest import read_manifest
from zar.core.splitfiles import VideoRow
from zar.data.urls import load_sources
from zar.core.errors import UserError

from videos_fixtures import XVID


@pytest.fixture
def server():
    with LocalServer() as srv:
        yield srv


def sources_file(tmp_path: Path, mapping: dict) -> str:
    p = tmp_path / "sources.yaml"
    p.write_text(json.dumps(mapping), encoding="utf-8")  # JSON is YAML
    return str(p)


def write_list(path: Path, rows) -> Path:
    path.write_text("video_id,path,class_name,class_index\n"
                    + "".join(f"{v},{p},c,0\n" for v, p in rows), encoding="utf-8")
    return path


def manifest(root: Path) -> dict[str, dict]:
    return read_manifest(root / "download_manifest.csv")


# ----------------------------------------------------------------------------- HTTP
def test_http_download_resumes_after_broken_transfer(server, tmp_path):
    body = bytes(range(256)) * 4000
    server.files["/big.bin"] = body
    server.cut_once["/big.bin"] = 300_000
    dest = tmp_path / "big.bin"
    with pytest.raises(FetchError, match="broke off"):
        http_download(server.url("/big.bin"), dest, retries=0)
    assert not dest.exists()  # a partial file never takes the final name
    part = tmp_path / "big.bin.part"
    assert part.stat().st_size == 300_000
    got = http_download(server.url("/big.bin"), dest, retries=0,
                        sha256=hashlib.sha256(body).hexdigest())
    assert dest.read_bytes() == body and not part.exists()
    assert got.resumed_from == 300_000
    assert server.gets("/big.bin")[-1][2] == "bytes=300000-"


def test_http_download_retries_transient_errors(server, tmp_path):
    server.files["/f"] = b"x" * 1000
    server.fail_next["/f"] = [503, 503]
    got = http_download(server.url("/f"), tmp_path / "f", retries=2, backoff=0.01)
    assert got.bytes == 1000 and len(server.gets("/f")) == 3


def test_http_download_rejects_sha256_mismatch(server, tmp_path):
    server.files["/f"] = b"real content"
    with pytest.raises(UserError, match="sha256 mismatch"):
        http_download(server.url("/f"), tmp_path / "f", sha256="0" * 64)
    assert not (tmp_path / "f").exists() and (tmp_path / "f.bad").exists()


def test_http_404_is_permanent(server, tmp_path):
    with pytest.raises(FetchError) as e:
        http_download(server.url("/none"), tmp_path / "none", retries=5, backoff=10)
    assert e.value.permanent and len(server.gets("/none")) == 1


# ----------------------------------------------------------------------------- UCF101 / HMDB51
def test_ucf101_official_end_to_end(server, tmp_path):
    videos, splits = ucf_archives(tmp_path)
    server.files["/UCF101.rar"], server.files["/splits.zip"] = videos, splits
    src = sources_file(tmp_path, {"ucf101_videos": server.url("/UCF101.rar"),
                                  "ucf101_splits": server.url("/splits.zip")})
    root = tmp_path / "data" / "ucf101"
    args = ["download", "--dataset", "ucf101", "--root", str(root), "--sources", src]
    assert main(args) == 0
    m = manifest(root)
    want = {"v_ClassA_g01_c01": "ok", "v_ClassA_g02_c01": "ok", "v_ClassA_g01_c02": "corrupt",
            "v_ClassB_g01_c01": "corrupt", "v_ClassB_g02_c01": "missing"}
    assert {k: v["status"] for k, v in m.items()} == want  # every listed video, nothing else
    assert "empty" in m["v_ClassA_g01_c02"]["reason"]
    assert "not a video container" in m["v_ClassB_g01_c01"]["reason"]
    assert m["v_ClassB_g02_c01"]["reason"] == "not in the archive"
    assert m["v_ClassA_g01_c01"]["path"] == "ClassA/v_ClassA_g01_c01.avi"
    assert (root / "raw/ClassA/v_ClassA_g01_c01.avi").read_bytes()[:4] == b"RIFF"
    assert (root / "annotations/ucfTrainTestlist/testlist01.txt").exists()
    record = json.loads((root / "download_manifest.json").read_text())
    seen = {a["file"]: a for a in record["archives"]}
    assert seen["UCF101.rar"]["sha256"] == hashlib.sha256(videos).hexdigest()
    assert seen["UCF101.rar"]["pinned"] is False
    assert not (root / "archives/UCF101.rar").exists()  # deleted after extraction by default
    # rerun: nothing fetched again, same manifest
    n = len(server.gets())
    assert main(args) == 0
    assert len(server.gets()) == n and manifest(root) == m


def test_ucf101_pin_mismatch_refuses(server, tmp_path, capsys):
    videos, splits = ucf_archives(tmp_path)
    server.files["/UCF101.rar"], server.files["/splits.zip"] = videos, splits
    src = sources_file(tmp_path, {"ucf101_videos": {"url": server.url("/UCF101.rar"), "sha256": "1" * 64},
                                  "ucf101_splits": server.url("/splits.zip")})
    root = tmp_path / "ucf"
    assert main(["download", "--dataset", "ucf101", "--root", str(root), "--sources", src]) == 2
    assert "sha256 mismatch" in capsys.readouterr().err
    assert not (root / "raw").exists()
    good = sources_file(tmp_path, {
        "ucf101_videos": {"url": server.url("/UCF101.rar"), "sha256": hashlib.sha256(videos).hexdigest()},
        "ucf101_splits": server.url("/splits.zip")})
    assert main(["download", "--dataset", "ucf101", "--root", str(root), "--sources", good]) == 0
    record = json.loads((root / "download_manifest.json").read_text())
    assert [a["pinned"] for a in record["archives"]] == [True, False]


def test_hmdb51_nested_rars_and_given_list(server, tmp_path):
    good = make_video(tmp_path / "g.avi", seconds=1, fps=10, codec=XVID).read_bytes()
    inner = make_rar(tmp_path / "brush_hair.rar", {"brush_hair": None, "brush_hair/v1.avi": good,
                                                   "brush_hair/v2.avi": good})
    inner2 = make_rar(tmp_path / "wave.rar", {"wave/w1.avi": good})
    outer = make_rar(tmp_path / "hmdb51_org.rar", {"brush_hair.rar": inner.read_bytes(),
                                                   "wave.rar": inner2.read_bytes()})
    splits = make_rar(tmp_path / "s.rar", {
        "testTrainMulti_7030_splits/brush_hair_test_split1.txt": b"v1.avi 1\nv2.avi 2\nv9.avi 0\n",
        "testTrainMulti_7030_splits/wave_test_split1.txt": b"w1.avi 2\n"})
    server.files["/hmdb51_org.rar"], server.files["/test_train_splits.rar"] = outer.read_bytes(), splits.read_bytes()
    src = sources_file(tmp_path, {"hmdb51_videos": server.url("/hmdb51_org.rar"),
                                  "hmdb51_splits": server.url("/test_train_splits.rar")})
    root = tmp_path / "hmdb51"
    assert main(["download", "--dataset", "hmdb51", "--root", str(root), "--sources", src]) == 0
    m = manifest(root)
    assert {k: (v["path"], v["status"]) for k, v in m.items()} == {
        "v1": ("brush_hair/v1.avi", "ok"), "v2": ("brush_hair/v2.avi", "ok"),
        "v9": ("brush_hair/v9.avi", "missing"), "w1": ("wave/w1.avi", "ok")}
    # a given list instead of the official split files: its videos are accounted for too
    lst = write_list(tmp_path / "test.csv", [("w1", "wave/w1.avi"), ("x", "wave/x.avi")])
    assert main(["download", "--dataset", "hmdb51", "--root", str(root), "--sources", src,
                 "--list", str(lst)]) == 0
    m = manifest(root)
    assert m["x"]["status"] == "missing" and m["w1"]["status"] == "ok" and "v1" in m


# ----------------------------------------------------------------------------- Kinetics, YouTube
def luma(frame: av.VideoFrame) -> float:
    return float(frame.to_ndarray(format="gray").mean())


def test_kinetics_youtube_cuts_segments(server, tmp_path):
    src_video = make_video(tmp_path / "src.mp4", seconds=5, fps=10, size="64x48", marker=True)
    with av.open(str(src_video)) as c:
        src_luma = [luma(f) for f in c.decode(c.streams.video[0])]
    server.files["/AAAAAAAAAAA.mp4"] = src_video.read_bytes()
    server.files["/BBBB-BBB_BB.mp4"] = src_video.read_bytes()
    lst = write_list(tmp_path / "list.csv", [
        ("AAAAAAAAAAA_000001_000003", "val/AAAAAAAAAAA_000001_000003.mp4"),
        ("BBBB-BBB_BB_000000_000002", "val/BBBB-BBB_BB_000000_000002.mp4"),
        ("GONEGONEGON_000000_000010", "val/GONEGONEGON_000000_000010.mp4"),
        ("..", "../../escape.mp4"),
        ("short_000001_000002", "val/short_000001_000002.mp4"),
    ])
    src = sources_file(tmp_path, {"youtube_url": server.url("/{youtube_id}.mp4")})
    root = tmp_path / "k400"
    args = ["download", "--dataset", "k400", "--source", "youtube", "--root", str(root),
            "--list", str(lst), "--sources", src, "--workers", "2", "--rate-limit", "0", "--retries", "0"]
    assert main(args) == 0
    m = manifest(root)
    assert len(m) == 5
    assert {k: v["status"] for k, v in m.items()} == {
        "AAAAAAAAAAA_000001_000003": "ok", "BBBB-BBB_BB_000000_000002": "ok",
        "GONEGONEGON_000000_000010": "missing", "..": "missing", "short_000001_000002": "missing"}
    assert m["GONEGONEGON_000000_000010"]["reason"].startswith("gone:")
    assert "invalid" in m[".."]["reason"] and "invalid" in m["short_000001_000002"]["reason"]
    assert not list(tmp_path.rglob("escape.mp4"))
    # the cut: 2 s from second 1 of a 10 fps clip = source frames 10..29
    with av.open(str(root / "raw/val/AAAAAAAAAAA_000001_000003.mp4")) as c:
        got = [luma(f) for f in c.decode(c.streams.video[0])]
    assert abs(len(got) - 20) <= 1
    assert abs(got[0] - src_luma[10]) < 2.5 and abs(got[-1] - src_luma[29]) < 2.5
    assert not [p for p in (root / "raw/val").iterdir() if p.name.startswith(".")]  # no temporaries
    # rerun: complete clips are not fetched, gone ones not asked for again
    n = len(server.gets())
    assert main(args) == 0
    assert len(server.gets()) == n
    assert main(args + ["--retry-gone"]) == 0
    assert [r[1] for r in server.gets()[n:]] == ["/GONEGONEGON.mp4"]


def test_youtube_transient_failure_retried(server, tmp_path):
    src_video = make_video(tmp_path / "src.mp4", seconds=3, fps=10, size="64x48")
    server.files["/CCCCCCCCCCC.mp4"] = src_video.read_bytes()
    server.fail_next["/CCCCCCCCCCC.mp4"] = [503]
    d = Downloader("k600", tmp_path / "k600", "youtube",
                   load_sources({"youtube_url": server.url("/{youtube_id}.mp4")}),
                   workers=1, rate_limit=0, retries=2, backoff=0.01)
    rows = d.run([VideoRow("CCCCCCCCCCC_000000_000001", "test/CCCCCCCCCCC_000000_000001.mp4")])
    assert rows["CCCCCCCCCCC_000000_000001"]["status"] == "ok"
    assert len(server.gets("/CCCCCCCCCCC.mp4")) >= 2


# ----------------------------------------------------------------------------- Kinetics, CVDF
def test_kinetics_cvdf_parts_resume_and_account(server, tmp_path):
    clip = make_video(tmp_path / "c.mp4", seconds=1, fps=10).read_bytes()
    a, b, other = "AAAAAAAAAAA_000001_000011", "BBBBBBBBBBB_000002_000012", "OOOOOOOOOOO_000000_000010"
    server.files["/p/val_0.tar.gz"] = tar_bytes({f"val/{a}.mp4": clip, f"val/{other}.mp4": clip})
    part1 = tar_bytes({f"somewhere/{b}.mp4": clip, "../../evil.mp4": b"x"})
    server.files["/p/val_1.tar.gz"] = part1
    server.files["/400/val/k400_val_path.txt"] = (
        f"{server.url('/p/val_0.tar.gz')}\n{server.url('/p/val_1.tar.gz')}\n").encode()
    server.cut_once["/p/val_1.tar.gz"] = len(part1) // 2
    src = sources_file(tmp_path, {"k400_cvdf_val": server.url("/400/val/k400_val_path.txt")})
    lst = write_list(tmp_path / "val.csv", [(v, f"val/{v}.mp4") for v in (a, b, "CCCCCCCCCCC_000000_000010")])
    root = tmp_path / "k400"
    args = ["download", "--dataset", "k400", "--root", str(root), "--list", str(lst),
            "--sources", src, "--retries", "0", "--workers", "2"]
    assert main(args) == 0  # part 1 breaks off: its clip is missing, with the reason
    m = manifest(root)
    assert {k: v["status"] for k, v in m.items()} == {a: "ok", b: "missing", "CCCCCCCCCCC_000000_000010": "missing"}
    assert "archive part(s) of val failed" in m[b]["reason"]
    assert not (root / f"raw/val/{other}.mp4").exists()  # only listed clips are kept
    partial = root / "archives/cvdf/val/val_1.tar.gz.part"
    assert partial.stat().st_size == len(part1) // 2
    assert main(args) == 0  # resumes the broken part where it stopped
    assert server.gets("/p/val_1.tar.gz")[-1][2] == f"bytes={len(part1) // 2}-"
    assert len(server.gets("/p/val_0.tar.gz")) == 1  # the finished part is not fetched again
    m = manifest(root)
    assert m[b]["status"] == "ok" and (root / f"raw/val/{b}.mp4").read_bytes() == clip
    assert m["CCCCCCCCCCC_000000_000010"]["reason"] == "not in the CVDF archives of val"
    assert not list(tmp_path.rglob("evil.mp4"))
    n = len(server.gets())
    assert main(args) == 0
    assert len(server.gets()) == n  # everything settled: no request at all


# ----------------------------------------------------------------------------- annotations
def test_annotations_write_lists(server, tmp_path):
    train = ("label,youtube_id,time_start,time_end,split\n"
             "b class,AAAAAAAAAAA,10,20,train\n"
             "a class,BBBBBBBBBBB,0,10,train\n"
             "a class,ZZZZZZZZZZZ,3,13,train\n"
             "a class,bad id!,0,10,train\n")
    val = 'label,youtube_id,time_start,time_end,split\n"c, with comma",CCCCCCCCCCC,5,15.0,val\n'
    server.files["/a/train.csv"], server.files["/a/val.csv"] = train.encode(), val.encode()
    src = sources_file(tmp_path, {"k400_annotations_train": server.url("/a/train.csv"),
                                  "k400_annotations_val": server.url("/a/val.csv")})
    root = tmp_path / "k400"
    assert main(["download", "--dataset", "k400", "--annotations", "--root", str(root), "--sources", src]) == 0
    # reference: class index = sorted names; rows sorted by (class index, video id)
    rows = [r for text in (train, val) for r in csv.DictReader(io.StringIO(text)) if r["youtube_id"] != "bad id!"]
    names = sorted({r["label"] for r in rows})
    assert list(csv.DictReader(open(root / "lists/classes.csv")))[1]["class_name"] == names[1]
    classes = [(int(r["class_index"]), r["class_name"], r["text"]) for r in csv.DictReader(open(root / "lists/classes.csv"))]
    assert classes == [(i, n, n) for i, n in enumerate(names)]
    for split in ("train", "val"):
        want = sorted(((names.index(r["label"]),
                        f"{r['youtube_id']}_{int(float(r['time_start'])):06d}_{int(float(r['time_end'])):06d}",
                        r["label"]) for r in rows if r["split"] == split))
        got = [(int(r["class_index"]), r["video_id"], r["class_name"], r["path"])
               for r in csv.DictReader(open(root / f"lists/{split}.csv"))]
        assert [g[:3] for g in got] == want
        assert all(g[3] == f"{split}/{g[1]}.mp4" for g in got)
    assert "bad id!" in (root / "lists/rejected.txt").read_text() or "bad id" in (root / "lists/rejected.txt").read_text()
    assert open(root / "lists/train.csv").readline().strip() == "video_id,path,class_name,class_index"
