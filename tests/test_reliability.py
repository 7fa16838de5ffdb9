"""No number from NaN, no classifier that cannot be right, no silent partial prediction:
non-finite logits or losses stop the run naming the video (or, with run.non_finite: skip, the
video is recorded as skipped, never scored); class lists with an empty name, two classes of
the same prompt text, or a label that is both a class name and another class's index are
refused naming the file and the line; a byte-order mark does not hide a column; `zar predict`
says when the file was damaged."""
from __future__ import annotations

import json
import math
import subprocess

import numpy as np
import pytest
import torch

from zar.cli import main as zar
from zar.core.errors import UserError
from zar.core.splitfiles import read_classes, read_videos
from zar.method.results import NonFinite, record
from zar.method.tpt import TuneResult
from conftest import kill_when, write_video

FAST = ["--set", "run.workers=0", "--set", "run.batch_size=100"]


def result(before=(1.0, 2.0), after=(2.0, 1.0), ensemble=(0.0, 0.0), loss=0.5) -> TuneResult:
    t = lambda x: torch.tensor(x, dtype=torch.float32)  # noqa: E731
    return TuneResult(t(before), t(after), t(ensemble), [0, 1], loss, 0.01)


@pytest.mark.parametrize("field, value", [("before", (math.nan, 1.0)), ("after", (1.0, math.inf)),
                                          ("ensemble", (-math.inf, 0.0)), ("loss", math.nan)])
def test_a_non_finite_result_is_never_recorded(field, value):
    assert record("v1", 0, result(), "zar")["top5_after"] == [0, 1]
    with pytest.raises(NonFinite, match=r"video 'v1': non-finite logits_|video 'v1': non-finite loss"):
        record("v1", 0, result(**{field: value}), "zar")


@pytest.fixture
def encoded(dataset):
    d = dataset
    cache = d["tmp"] / "emb.pt"
    assert zar(["encode", "--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny",
                "--out", str(cache), *FAST]) == 0
    return {**d, "cache": cache}


def test_nan_logits_stop_tune_naming_the_video(encoded, capsys):
    """A learning rate of 1e20 turns the tuned prompt into NaN: an argmax would score every
    video as class 0. The run stops in one line naming a video and writes no result; skipping
    them all leaves nothing to evaluate, which is refused too."""
    d = encoded
    out = d["tmp"] / "r.json"
    argv = ["tune", "--embeddings", str(d["cache"]), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
            "--backbone", "tiny", "--out", str(out), "--set", "tune.lr=1.0e+20", *FAST]
    assert zar(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "non-finite logits_after" in err and "video '" in err, err
    assert not out.exists() and not out.with_suffix(".jsonl").exists()
    assert zar([*argv, "--set", "run.non_finite=skip"]) == 2
    assert "none of the 9 listed videos could be evaluated" in capsys.readouterr().err and not out.exists()


def test_a_skipped_non_finite_video_is_recorded_and_counted(encoded, monkeypatch):
    """run.non_finite=skip: the video whose numbers are NaN (one, by a fault put into the method)
    is among the skipped with its reason, the others are scored; evaluated + skipped = listed."""
    import zar.method.tpt as tpt

    real = tpt.TestTimeMethod.tune

    def one_nan(self, views, infer):
        results = real(self, views, infer)
        results[0].logits_after[0] = math.nan
        return results

    monkeypatch.setattr(tpt.TestTimeMethod, "tune", one_nan)
    d, out = encoded, encoded["tmp"] / "r.json"
    assert zar(["tune", "--embeddings", str(d["cache"]), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
                "--backbone", "tiny", "--out", str(out), "--set", "run.non_finite=skip", *FAST]) == 0
    s = json.loads(out.read_text())
    nan = [x for x in s["skipped"] if "non-finite logits_after" in x["reason"]]
    assert len(nan) == 1 and s["n_evaluated"] == 5 and s["n_evaluated"] + s["n_skipped"] == s["n_listed"] == 9
    assert nan[0]["video_id"] not in {json.loads(x)["video_id"] for x in out.with_suffix(".jsonl").read_text().splitlines()}
    assert [x["list_position"] for x in s["skipped"]] == sorted(x["list_position"] for x in s["skipped"])


# ----------------------------------------------------------------------------- class lists
def write(tmp_path, name, text, bom=False):
    p = tmp_path / name
    p.write_bytes((b"\xef\xbb\xbf" if bom else b"") + text.encode())
    return p


@pytest.mark.parametrize("rows, words", [
    ("0,run_fast,\n1,run fast,\n", "have the same text 'run fast'"),
    ("0,Run Fast,run fast\n1,jump,run  FAST\n", "have the same text"),
    ("0,jump,\n1, ,\n", "row 3: empty class name"),
    ("0,jump,\n1,jump,\n", "duplicate class names"),
])
def test_a_class_list_no_classifier_can_be_right_on_is_refused(tmp_path, rows, words):
    p = write(tmp_path, "classes.csv", "class_index,class_name,text\n" + rows)
    with pytest.raises(UserError, match=words) as e:
        read_classes(p)
    assert str(p) in str(e.value)
    assert read_classes(write(tmp_path, "ok.csv", "class_index,class_name,text\n0,run_fast,\n1,jump,\n")).texts \
        == ("run fast", "jump")


def test_a_label_that_is_a_class_name_and_another_index_is_ambiguous(tmp_path):
    classes = read_classes(write(tmp_path, "classes.csv", "class_index,class_name\n0,2\n1,1\n2,0\n"))
    ambiguous = write(tmp_path, "a.csv", "path,label\na.mp4,2\n")
    with pytest.raises(UserError, match=r"a.csv: line 2: label '2' is both the name of class 0 and the index of class"):
        read_videos(ambiguous, classes)
    agree = read_videos(write(tmp_path, "b.csv", "path,label\nb.mp4,1\n"), classes)  # name '1' is class 1
    assert (agree[0].class_index, agree[0].class_name) == (1, "1")
    words = read_classes(write(tmp_path, "w.csv", "class_index,class_name\n0,jump\n1,run\n"))
    assert read_videos(write(tmp_path, "c.csv", "path,label\nc.mp4,1\n"), words)[0].class_name == "run"


def test_a_byte_order_mark_does_not_hide_the_first_column(tmp_path):
    classes = read_classes(write(tmp_path, "classes.csv", "class_index,class_name\n0,jump\n1,run\n", bom=True))
    assert classes.names == ("jump", "run")
    rows = read_videos(write(tmp_path, "v.csv", "video_id,path,class_index\nclip7,x.mp4,1\n", bom=True), classes)
    assert (rows[0].video_id, rows[0].class_index) == ("clip7", 1)  # not the file stem 'x'


# ----------------------------------------------------------------------------- predict
def test_predict_says_when_the_file_was_damaged(tmp_path, ffmpeg, capsys):
    full, cut = tmp_path / "full.mp4", tmp_path / "cut.mp4"
    subprocess.run(["ffmpeg", "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    "testsrc2=size=96x72:rate=25:duration=4", "-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", "25",
                    "-movflags", "+faststart", str(full)], check=True)
    cut.write_bytes(full.read_bytes()[: full.stat().st_size // 2])
    args = ["predict", "--labels", "red,green", "--backbone", "tiny", *FAST]
    assert zar([*args, str(full), "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["partial"] is None
    assert zar([*args, str(cut), "--json"]) == 0
    partial = json.loads(capsys.readouterr().out)["partial"]
    assert 0 < partial["frames_read"] < partial["frames_declared"] == 100
    assert zar([*args, str(cut)]) == 0
    assert "is damaged or truncated" in capsys.readouterr().out


# ----------------------------------------------------------------------------- downloads
def test_plain_http_to_another_machine_is_named_in_a_warning(caplog):
    """Part lists and downloads over plain http (nothing protects them in transit) are named;
    a mirror on this machine is not warned about."""
    import logging

    from zar.data.fetch import warn_plain_http
    from zar.data.kinetics_download import part_urls

    text = "https://s3.example.org/k400/part_0.tar.gz\nhttp://mirror.example.org/k400/part_1.tar.gz\n" \
           "http://127.0.0.1:8000/part_2.tar.gz\n"
    with caplog.at_level(logging.WARNING):
        assert len(part_urls(text, "k400_train_path.txt")) == 3
    warned = [r.getMessage() for r in caplog.records]
    assert any("http://mirror.example.org/k400/part_1.tar.gz: plain http" in m and "no sha256 pin" in m
               for m in warned)
    assert any("k400_train_path.txt lists it" in m for m in warned)
    assert not any("127.0.0.1" in m or "s3.example.org" in m for m in warned)
    assert warn_plain_http("http://localhost/x", pinned=True) is False
    assert warn_plain_http("http://example.org/x", pinned=True) is True


# ----------------------------------------------------------------------------- settings files and specs
@pytest.fixture
def bad_files(tmp_path):
    (tmp_path / "latin1.yaml").write_bytes("tune:\n  ctx_init: caf\xe9\n".encode("latin-1"))
    (tmp_path / "folder.yaml").mkdir()
    (tmp_path / "broken.yaml").write_text("tune: [unclosed\n")
    (tmp_path / "empty.json").write_text("")
    (tmp_path / "list.json").write_text("[1, 2]")
    return tmp_path


SETTINGS_FILES = {"latin1.yaml": "is not UTF-8 text", "folder.yaml": "is a folder, not a file",
                  "broken.yaml": "not valid YAML", "absent.yaml": "not found"}


@pytest.mark.parametrize("name", sorted(SETTINGS_FILES))
@pytest.mark.parametrize("verb", ["tune", "evaluate", "train", "demo"])
def test_a_bad_settings_file_is_one_line_naming_it(bad_files, name, verb, capsys):
    path = str(bad_files / name)
    argv = {
        "tune": ["tune", "--embeddings", path, "--videos", path, "--classes", path, "--backbone", "tiny",
                 "--out", str(bad_files / "r.json"), "--config", path],
        "evaluate": ["evaluate", "--videos", path, "--classes", path, "--backbone", "tiny",
                     "--out", str(bad_files / "e"), "--config", path],
        "train": ["train", "--videos", path, "--classes", path, "--root", str(bad_files), "--backbone", "tiny",
                  "--recipe", path, "--out", str(bad_files / "m")],
        "demo": ["splits", "build", "--builder", "demo", "--splits", str(bad_files / "s"), "--demo-config", path],
    }[verb]
    assert zar(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and path in err and SETTINGS_FILES[name] in err, err


@pytest.mark.parametrize("spec, words", [("missing.json", "table spec not found"), ("empty.json", "not valid JSON"),
                                         ("list.json", "not a table spec"), ("{not json", "neither a .json file"),
                                         ("folder.yaml", "is a folder")])
def test_a_bad_table_spec_is_one_line(bad_files, spec, words, capsys):
    arg = str(bad_files / spec) if not spec.startswith("{") else spec
    assert zar(["tables", "--spec", arg, "--out", str(bad_files / "t")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


@pytest.mark.parametrize("argv, words", [
    (["--set", "views.short_side=1000000000"], "views.short_side = 1000000000: must be an integer >= 16 and <= 4096"),
    (["--set", "views.frames=100000000000"], "views.frames = 100000000000: must be an integer >= 1 and <= 1024"),
    (["--set", "views.samples_per_rate=1000000000"], "views.samples_per_rate = 1000000000: must be"),
    (["--set", "views.rates=[1, 100000]"], "views.rates = [1, 100000]: must be a list of integers"),
])
def test_views_beyond_what_can_run_are_refused_in_one_line(tmp_path, argv, words, capsys):
    assert zar(["evaluate", "--videos", str(tmp_path / "v.csv"), "--classes", str(tmp_path / "c.csv"),
                "--backbone", "tiny", "--out", str(tmp_path / "e"), *argv]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err


@pytest.mark.parametrize("flag, value", [("--perplexity", "0"), ("--perplexity", "nan"), ("--max-points", "1")])
def test_tsne_settings_that_cannot_run_are_refused(tmp_path, flag, value, capsys):
    assert zar(["figures", "tsne", "--embeddings", str(tmp_path / "e.pt"), "--videos", str(tmp_path / "v.csv"),
                flag, value, "--out", str(tmp_path / "t.png")]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and flag in err, err


@pytest.mark.parametrize("labels", ["juggling", " , juggling ,", ""])
def test_predict_needs_two_classes(tmp_path, labels, capsys):
    assert zar(["predict", str(tmp_path / "clip.mp4"), "--labels", labels, "--backbone", "tiny"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "at least two class names" in err, err


def test_evaluate_stops_on_nan_or_records_the_video_as_skipped(dataset, monkeypatch, capsys):
    """`zar evaluate` (encode and tune in one pass): the same rule as `zar tune`."""
    import zar.method.tpt as tpt

    d = dataset
    argv = ["evaluate", "--videos", str(d["videos"]), "--classes", str(d["classes"]), "--root", str(d["root"]),
            "--backbone", "tiny", *FAST]
    assert zar([*argv, "--out", str(d["tmp"] / "stop"), "--set", "tune.lr=1.0e+20"]) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "non-finite" in err and "video '" in err, err
    assert not (d["tmp"] / "stop" / "summary.json").exists()
    real, calls = tpt.TestTimeMethod.tune, []

    def second_nan(self, views, infer):
        results = real(self, views, infer)
        calls.append(1)
        if len(calls) == 2:  # the second video read
            results[0].logits_after[0] = math.nan
        return results

    monkeypatch.setattr(tpt.TestTimeMethod, "tune", second_nan)
    assert zar([*argv, "--out", str(d["tmp"] / "skip"), "--set", "run.non_finite=skip"]) == 0
    s = json.loads((d["tmp"] / "skip" / "summary.json").read_text())
    nan = [x for x in s["skipped"] if "non-finite" in x["reason"]]
    assert len(nan) == 1 and s["n_evaluated"] == 5 and s["n_evaluated"] + s["n_skipped"] == s["n_listed"] == 9


def _tune(d, videos, *more) -> list[str]:
    return ["tune", "--embeddings", str(d["cache"]), "--videos", str(videos), "--classes", str(d["classes"]),
            "--backbone", "tiny", "--out", str(d["tmp"] / "r.json"), *FAST, *more]


def test_a_list_pointing_other_files_under_the_same_ids_is_refused(encoded, capsys):
    """The cache knows each video by id AND by the file it was read from: a list that gives the
    encoded ids other paths (here: every red video swapped with a blue one) is refused in one
    line naming a video, before anything is tuned."""
    d = encoded
    text = d["videos"].read_text()
    swapped = d["tmp"] / "swapped.csv"
    swapped.write_text(text.replace("red/red_0.mp4", "TMP").replace("blue/blue_0.mp4", "red/red_0.mp4")
                       .replace("TMP", "blue/blue_0.mp4"))
    assert zar(_tune(d, swapped)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "2 listed video(s) are not the files encoded" in err[0]
    assert "'red_0' is listed as 'blue/blue_0.mp4' but 'red/red_0.mp4' was encoded" in err[0]
    assert not (d["tmp"] / "r.json").exists()
    assert zar(_tune(d, d["videos"])) == 0  # the list it was encoded from passes


def test_a_video_replaced_after_encoding_is_refused_with_root(encoded, capsys):
    """With --root (the workflow passes it), each video's size and time must be those encoded:
    a file overwritten by another video under the same name is refused; one that is gone is
    tuned from the cache and counted in the summary."""
    import json
    import os

    d = encoded
    victim = d["root"] / "green" / "green_0.mp4"
    other = (d["root"] / "blue" / "blue_0.mp4").read_bytes()
    assert zar(_tune(d, d["videos"], "--root", str(d["root"]))) == 0
    summary = json.loads((d["tmp"] / "r.json").read_text())
    assert summary["video_files"] == {"files_checked": "size and mtime", "files_missing": 0}
    (d["root"] / "red" / "red_1.avi").unlink()
    assert zar(_tune(d, d["videos"], "--root", str(d["root"]))) == 0
    assert json.loads((d["tmp"] / "r.json").read_text())["video_files"]["files_missing"] == 1
    st = victim.stat()
    victim.write_bytes(other)
    os.utime(victim, ns=(st.st_atime_ns, st.st_mtime_ns))  # same time, other size
    capsys.readouterr()
    assert zar(_tune(d, d["videos"], "--root", str(d["root"]))) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{victim} changed since it was encoded (size {st.st_size} -> {len(other)}" in err[0]
    victim.write_bytes(b"x" * st.st_size)  # same size, written now
    assert zar(_tune(d, d["videos"], "--root", str(d["root"]))) == 2
    assert "changed since it was encoded" in capsys.readouterr().err


def test_file_records_survive_chunks_shards_and_merging(dataset):
    """Each encoded video's file record sits beside its embeddings whatever the chunking and
    sharding: merged shards hold, for every id, the file of that id."""
    from zar.method.cache import load_cache, open_caches

    d = dataset
    caches = []
    for k in (1, 2):
        out = d["tmp"] / f"s{k}.pt"
        assert zar(["encode", "--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny",
                    "--out", str(out), "--shard", f"{k}/2", *FAST, "--set", "run.chunk=2"]) == 0
        caches.append(str(out))
    merged = open_caches(caches)
    listed = {ln.split(",")[0]: ln.split(",")[1] for ln in d["videos"].read_text().splitlines()[1:]}
    assert len(merged.files) == len(merged.video_ids) == 6
    for vid, rec in zip(merged.video_ids, merged.files):
        assert rec["listed"] == listed[vid] and rec["path"] == str(d["root"] / listed[vid])
        assert rec["size"] == (d["root"] / listed[vid]).stat().st_size
    assert all(load_cache(c).files for c in caches)


@pytest.mark.parametrize("size,expected", [
    ((340, 256), (340, 256)), ((1920, 1080), (455, 256)), ((4096, 16), (4096, 16)), ((16, 4096), (16, 4096)),
    ((65536, 256), (4096, 16)), ((8192, 512), (4096, 256)), ((100000, 16), (4096, 1)),
])
def test_the_decoder_bounds_a_frame_whatever_the_aspect_ratio(size, expected):
    """With the views' short side S, a decoded frame is at most S on its short side (sources
    larger than that) and 16 S on its long side: at most 16 S^2 pixels."""
    from zar.video.common import MAX_LONG_FACTOR, output_size

    w, h = output_size(*size, max_short_side=256)
    assert (w, h) == expected and max(w, h) <= MAX_LONG_FACTOR * 256
    assert w * h <= MAX_LONG_FACTOR * 256 ** 2


def test_a_4096x16_clip_needs_no_more_than_normal_frames(tiny_model, tmp_path, ffmpeg):
    """A 4096x16 clip at the paper's view size (short side 256): before, every view frame was
    resized to 65536x256 (50 MB each, 6 GiB for one video). The views see its centre 4:1 region,
    so each view frame is at most 256x1024 (768 KiB) like a wide normal video's, and the
    inference clip is its size as always."""
    from zar.core.splitfiles import VideoRow
    from zar.method import views as V
    from zar.method.frames import MAX_ASPECT, prepare_video

    _, pre = tiny_model
    rng = np.random.default_rng(0)
    frames = rng.integers(0, 256, size=(24, 16, 4096, 3), dtype=np.uint8)
    path = write_video(tmp_path / "thin.mp4", frames, fps=12)
    cfg = V.ViewConfig(short_side=256)
    p = prepare_video(VideoRow("thin", str(path)), cfg, pre)
    assert not hasattr(p, "error"), p
    s = cfg.view_short_side(pre.image_size)
    assert s == 256 and p.view_frames.shape[1:] == (3, s, MAX_ASPECT * s)
    per_video = p.view_frames.numel() + p.infer_frames.numel()  # uint8 bytes handed to the encoder
    bound = len(p.plan.view_frames) * 3 * MAX_ASPECT * s * s + len(p.plan.infer) * 3 * pre.image_size ** 2
    assert per_video <= bound
    # and a normal wide video keeps every pixel of its frames (the crop only acts beyond 4:1)
    wide = write_video(tmp_path / "wide.mp4", frames[:, :, :64, :].repeat(2, axis=1), fps=12)  # 64x32: 2:1
    q = prepare_video(VideoRow("wide", str(wide)), cfg, pre)
    assert q.view_frames.shape[1:] == (3, s, 2 * s)


# ----------------------------------------------------------------------------- kill -9 and rerun
TIMING = ("seconds",)


def _records(path) -> list[dict]:
    """Prediction records without their timing (the only field that differs between two runs)."""
    return [{k: v for k, v in json.loads(ln).items() if k not in TIMING} for ln in path.read_text().splitlines()]


def _kill_at(argv: list[str], part, n_records: int) -> None:
    """Run ``zar *argv`` in a process and SIGKILL it once ``part`` holds ``n_records`` records
    (0: as soon as the file is there, before any record)."""
    kill_when(argv, lambda: part.exists() and len(part.read_text(errors="replace").splitlines()) >= 1 + n_records,
               f"{n_records} records")  # line 1: the inputs' fingerprint


SLOW_TUNE = ["--set", "tune.steps=40", "--set", "run.tune_batch=1"]  # one record at a time, each ~0.1 s


class Run:
    """A `zar tune` (from ``d``'s cache) or `zar evaluate` run over ``d``'s list: its arguments
    but ``--out``, and where an ``--out`` named ``name`` in ``folder`` puts what it writes."""

    def __init__(self, d, verb: str, *more: str):
        self.verb = verb
        common = ["--videos", str(d["videos"]), "--classes", str(d["classes"]), "--backbone", "tiny", *FAST, *more]
        self.argv = (["tune", "--embeddings", str(d["cache"]), *common] if verb == "tune"
                     else ["evaluate", "--root", str(d["root"]), *common])

    def out(self, folder, name: str):
        return folder / (f"{name}.json" if self.verb == "tune" else name)

    def predictions(self, out):
        return out.with_suffix(".jsonl") if self.verb == "tune" else out / "predictions.jsonl"

    def finals(self, out) -> list:
        """The files a finished run leaves under their final names."""
        return [out if self.verb == "tune" else out / "summary.json", self.predictions(out)]

    def __call__(self, out) -> list[str]:
        return [*self.argv, "--out", str(out)]


@pytest.mark.parametrize("verb,n_records", [("tune", 0), ("tune", 2), ("tune", 4), ("evaluate", 0),
                                             ("evaluate", 3)])
def test_tune_and_evaluate_killed_at_any_point_rerun_to_the_same_results(encoded, verb, n_records):
    d = encoded
    run = Run(d, verb, *SLOW_TUNE)
    ref, out = run.out(d["tmp"], "ref"), run.out(d["tmp"], "killed")
    assert zar(run(ref)) == 0
    _kill_at(run(out), run.predictions(out).with_name(run.predictions(out).name + ".part"), n_records)
    assert not any(p.exists() for p in run.finals(out))  # nothing under a final name
    assert zar(run(out)) == 0
    assert _records(run.predictions(out)) == _records(run.predictions(ref))
    summary = (lambda o: o) if verb == "tune" else (lambda o: o / "summary.json")
    a, b = json.loads(summary(ref).read_text()), json.loads(summary(out).read_text())
    keys = ("top1", "top5", "top1_before_tuning", "top1_ensemble", "ece") if verb == "tune" else ("top1", "top5")
    for key in (*keys, "n_evaluated", "n_listed", "skipped"):
        assert a[key] == b[key], key
    if verb == "tune":
        assert not out.with_suffix(".jsonl.part").exists()


def test_a_resumed_record_that_does_not_fit_the_run_is_done_again(encoded, caplog):
    """A record of the part file with logits of another length (a hand-edited or foreign file
    under the right fingerprint) is dropped with a warning and its video tuned again."""
    import logging

    d = encoded
    ref, out = d["tmp"] / "ref.json", d["tmp"] / "r.json"
    base = ["tune", "--embeddings", str(d["cache"]), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
            "--backbone", "tiny", *FAST, *SLOW_TUNE]
    assert zar([*base, "--out", str(ref)]) == 0
    part = out.with_suffix(".jsonl.part")
    _kill_at([*base, "--out", str(out)], part, 2)
    lines = part.read_text().splitlines()
    bad = json.loads(lines[2])
    bad["logits_after"] = bad["logits_after"][:2]
    part.write_text("\n".join([*lines[:2], json.dumps(bad)]) + "\n")
    with caplog.at_level(logging.INFO, logger="zar"):
        assert zar([*base, "--out", str(out)]) == 0
    assert "1 of 2 records do not fit this run" in caplog.text and "resuming: 1 predictions" in caplog.text
    assert _records(out.with_suffix(".jsonl")) == _records(ref.with_suffix(".jsonl"))


# ----------------------------------------------------------------------------- a full disk
@pytest.fixture
def small_disk(tmp_path):
    """A folder on a real 64 KiB tmpfs where this machine lets us mount one (root), filled to
    its last pages; else a plain folder, and the test simulates ENOSPC (yields the mode)."""
    import os
    import shutil

    d = tmp_path / "small"
    d.mkdir()
    mounted = False
    if hasattr(os, "geteuid") and os.geteuid() == 0 and shutil.which("mount"):
        mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=64k", "tmpfs", str(d)],
                                 capture_output=True).returncode == 0
    try:
        if mounted:
            st = os.statvfs(d)
            (d / "filler").write_bytes(b"\0" * (st.f_bavail * st.f_frsize - 2 * 4096))  # two pages left
        yield d, mounted
    finally:
        if mounted:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)


def _fill_up(monkeypatch, mounted: bool) -> None:
    """Where no tmpfs could be mounted: every write of predictions past the first fails as a full disk does."""
    if mounted:
        return
    import errno

    from zar.method import results

    real, calls = results.to_json, {"n": 0}

    def to_json(rec, indent=None):
        calls["n"] += 1
        if calls["n"] > 1:
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(rec, indent=indent)

    monkeypatch.setattr(results, "to_json", to_json)


@pytest.mark.parametrize("verb", ["tune", "evaluate"])
def test_a_full_disk_stops_tune_and_evaluate_in_one_line_and_the_rerun_resumes(encoded, small_disk, verb,
                                                                              monkeypatch, capsys):
    """The disk fills while predictions are written: one line naming the file, nothing under a
    final name; with space again, the rerun resumes and gives the predictions of a run that
    had space all along."""
    d = encoded
    small, mounted = small_disk
    run = Run(d, verb)
    out, ref = run.out(small, "r"), run.out(d["tmp"], "ref")
    assert zar(run(ref)) == 0
    with monkeypatch.context() as m:
        _fill_up(m, mounted)
        capsys.readouterr()
        assert zar(run(out)) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "no space left on device" in err[0].lower() and str(small) in err[0], err
    assert not any(p.exists() for p in run.finals(out))
    if mounted:
        (small / "filler").unlink()
    assert zar(run(out)) == 0
    assert _records(run.predictions(out)) == _records(run.predictions(ref))


def test_a_batch_cut_by_a_crash_is_tuned_whole_on_the_rerun(encoded, monkeypatch):
    """Six videos tuned as one batch; the run stops after the first record (a full disk,
    simulated). The rerun tunes the same batch of six and writes the five missing records: the
    same bits as an uninterrupted run (a batch of five would move the last digits)."""
    d = encoded
    ref, out = d["tmp"] / "ref.json", d["tmp"] / "cut.json"
    argv = ["tune", "--embeddings", str(d["cache"]), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
            "--backbone", "tiny", *FAST, "--set", "run.tune_batch=16"]
    assert zar([*argv, "--out", str(ref)]) == 0
    with monkeypatch.context() as m:
        _fill_up(m, mounted=False)
        assert zar([*argv, "--out", str(out)]) == 2
    assert len(out.with_suffix(".jsonl.part").read_text().splitlines()) == 2  # fingerprint + one record
    assert zar([*argv, "--out", str(out)]) == 0
    assert _records(out.with_suffix(".jsonl")) == _records(ref.with_suffix(".jsonl"))


# ----------------------------------------------------------------------------- more bad arguments
@pytest.mark.parametrize("ext", [".", "../x", ".a/b", "", "mp4/"])
@pytest.mark.parametrize("verb", ["encode", "evaluate", "tune"])
def test_an_ext_that_is_not_a_suffix_is_one_line(dataset, verb, ext, capsys):
    d = dataset
    common = ["--videos", str(d["videos"]), "--root", str(d["root"]), "--ext", ext, "--backbone", "tiny", *FAST]
    argv = {"encode": ["encode", *common, "--out", str(d["tmp"] / "e.pt")],
            "evaluate": ["evaluate", *common, "--classes", str(d["classes"]), "--out", str(d["tmp"] / "ev")],
            "tune": ["tune", *common, "--classes", str(d["classes"]), "--embeddings", str(d["tmp"] / "none.pt"),
                     "--out", str(d["tmp"] / "r.json")]}[verb]
    assert zar(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"--ext {ext!r}: not a file suffix" in err[0], err


def test_download_and_decode_refuse_a_root_that_is_a_file_and_a_lock_that_is_a_folder(tmp_path, capsys):
    (tmp_path / "file").write_text("x")
    (tmp_path / "folder").mkdir()
    lst = tmp_path / "l.csv"
    lst.write_text("video_id,path\na,a.mp4\n")
    cases = [
        (["download", "--dataset", "hmdb51", "--source", "synthetic", "--root", str(tmp_path / "file"),
          "--list", str(lst)], f"{tmp_path / 'file'}: is a file, where a folder of outputs is to be written"),
        (["download", "--dataset", "hmdb51", "--root", str(tmp_path / "d"), "--list", str(lst), "--lock",
          str(tmp_path / "folder")], f"{tmp_path / 'folder'}: is a folder, where a file is to be written"),
        (["decode", "--dataset", "hmdb51", "--root", str(tmp_path / "file")],
         f"{tmp_path / 'file'}: is a file, where a folder of outputs is to be written"),
    ]
    for argv, words in cases:
        assert zar(argv) == 2, argv
        err = capsys.readouterr().err.strip().splitlines()
        assert len(err) == 1 and words in err[0], err
    assert not (tmp_path / "d").exists()


def test_predict_on_a_file_name_that_is_not_utf8(tmp_path, ffmpeg, capsys):
    """Linux file names are bytes: one that is not UTF-8 reaches Python with lone surrogates,
    which hashed the video's views into a traceback. It is hashed as its bytes."""
    import os

    from zar.core.files import stable_int

    name = os.fsdecode(b"\xff\xfe.mp4")
    path = write_video(tmp_path / "v.mp4", np.zeros((12, 32, 32, 3), np.uint8), fps=6)
    os.rename(path, tmp_path / name)
    assert zar(["predict", str(tmp_path / name), "--labels", "a,b", "--backbone", "tiny", *FAST[:2], "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["video"] == str(tmp_path / name) and len(out["top_after"]) == 2
    assert stable_int("x", name) == stable_int("x", name) != stable_int("x", "\ufffd\ufffd.mp4")


@pytest.mark.parametrize("n_chunks", [0, 2, 5])
def test_encode_killed_at_any_point_reruns_to_the_same_cache(dataset, n_chunks):
    """SIGKILL once ``n_chunks`` one-video chunks are written (0: before any), rerun: the cache
    holds the same bits as an uninterrupted run's, and nothing of the killed run is left."""
    from zar.method.cache import load_cache

    d = dataset
    base = ["encode", "--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny", *FAST,
            "--set", "run.chunk=1", "--set", "views.samples_per_rate=8"]  # 96 views a video: time to cut
    ref, out = d["tmp"] / "ref.pt", d["tmp"] / "killed.pt"
    assert zar([*base, "--out", str(ref)]) == 0
    parts = out.with_name(out.name + ".parts")
    kill_when([*base, "--out", str(out)],
               lambda: (parts.exists() and len(list(parts.glob("part_*.pt"))) >= n_chunks) if n_chunks
               else parts.exists() or any(d["tmp"].glob(".killed*")), f"{n_chunks} chunks")
    assert not out.exists()
    assert zar([*base, "--out", str(out)]) == 0
    a, b = load_cache(ref), load_cache(out)
    assert a.video_ids == b.video_ids and a.skipped == b.skipped and a.files == b.files
    for key in ("views", "infer", "num_frames", "position"):
        assert torch.equal(getattr(a, key), getattr(b, key)), key
    assert not parts.exists() and not list(d["tmp"].glob(".killed*"))


@pytest.mark.parametrize("text,words", [("{not json", "not valid JSON"), ("[1]", "a backbone spec is a JSON object"),
                                        ('{"pretrained": "x"}', "a backbone spec is a JSON object")])
@pytest.mark.parametrize("verb", ["encode", "evaluate"])
def test_a_backbone_spec_that_is_not_one_is_one_line(dataset, verb, text, words, capsys):
    d = dataset
    spec = d["tmp"] / "spec.json"
    spec.write_text(text)
    argv = ["--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", str(spec), *FAST]
    argv = ["encode", *argv, "--out", str(d["tmp"] / "e.pt")] if verb == "encode" else \
        ["evaluate", *argv, "--classes", str(d["classes"]), "--out", str(d["tmp"] / "ev")]
    assert zar(argv) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and str(spec) in err[0] and words in err[0], err


def test_the_same_weights_are_the_same_bytes_in_every_process(tmp_path):
    """safetensors writes its metadata mapping in hash order, which changes from process to
    process: with two keys, the same fine-tuned weights came out as other bytes (and another
    weights_sha256) from run to run. Six processes write the same weights: one file content.
    (With two keys, six processes agree by chance once in 32.)"""
    import hashlib
    import sys

    code = ("import sys, torch; from zar.train.checkpoint import write_backbone; "
            "write_backbone(__import__('pathlib').Path(sys.argv[1]), {'a.w': torch.arange(6.0), 'b': torch.ones(2, 3)}, "
            "{'arch': 'ZAR-Tiny', 'quick_gelu': False})")
    procs = [subprocess.Popen([sys.executable, "-c", code, str(tmp_path / f"m{i}")]) for i in range(6)]
    assert all(p.wait(timeout=300) == 0 for p in procs)
    digests = {hashlib.sha256((tmp_path / f"m{i}" / "model.safetensors").read_bytes()).hexdigest() for i in range(6)}
    assert len(digests) == 1
