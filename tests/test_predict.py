"""`zar predict`: one video, your own class names, top-k before and after tuning; the same
predictions as `zar evaluate` on a list holding that video."""
import json

import numpy as np
import pytest

from zar.cli import main

LABELS = "red square, blue circle, green triangle, yellow star, purple cube, grey cloud"
FAST = ["--backbone", "tiny", "--set", "views.frames=4", "--set", "views.samples_per_rate=2", "--set", "run.workers=0"]


def _softmax(z):
    z = np.asarray(z, dtype=np.float64)
    e = np.exp(z - z.max())
    return e / e.sum()


def test_predict_json_matches_evaluate(make_video, tmp_path, capsys):
    clip = make_video("clip.mp4", colour=(255, 0, 0))
    assert main(["predict", str(clip), "--labels", LABELS, "--json", *FAST]) == 0
    out = json.loads(capsys.readouterr().out)
    names = [n.strip() for n in LABELS.split(",")]
    assert out["classes"] == names and out["n_views"] == 4 * 2 * 3 and out["kept_views"] == int(24 * 0.8)
    for key in ("top_before", "top_after"):
        top = out[key]
        assert [t["rank"] for t in top] == [1, 2, 3, 4, 5]
        probs = [t["probability"] for t in top]
        assert probs == sorted(probs, reverse=True) and 0 < sum(probs) <= 1 + 1e-9
        assert all(t["class_name"] == names[t["class_index"]] for t in top)
    # `zar evaluate` on the same clip and classes: the same logits, hence the same top-5
    (tmp_path / "classes.txt").write_text("\n".join(names) + "\n")
    (tmp_path / "list.csv").write_text(f"path,label\n{clip},0\n")
    assert main(["evaluate", "--videos", str(tmp_path / "list.csv"), "--classes", str(tmp_path / "classes.txt"),
                 "--out", str(tmp_path / "ev"), *FAST]) == 0
    rec = json.loads((tmp_path / "ev" / "predictions.jsonl").read_text().splitlines()[0])
    for key, logits in (("top_before", rec["logits_before"]), ("top_after", rec["logits_after"])):
        p = _softmax(logits)
        assert [t["class_index"] for t in out[key]] == rec[f"top5_{key[4:]}"]
        assert [t["probability"] for t in out[key]] == pytest.approx([p[t["class_index"]] for t in out[key]], abs=1e-4)


def test_predict_table_classes_file_and_no_tuning(make_video, tmp_path, capsys):
    clip = make_video("clip.mp4", colour=(0, 0, 255))
    (tmp_path / "classes.txt").write_text("red square\nblue square\n")
    assert main(["predict", str(clip), "--classes", str(tmp_path / "classes.txt"), *FAST]) == 0
    text = capsys.readouterr().out
    assert "before tuning (vanilla CLIP)" in text and "after tuning (ZAR)" in text
    lines = [ln for ln in text.splitlines() if ln.lstrip()[:2] in ("1.", "2.")]
    assert len(lines) == 2 and all("square" in ln and "%" in ln for ln in lines)  # top-5 of 2 classes: 2 rows
    # no tuning step: after = before
    assert main(["predict", str(clip), "--classes", str(tmp_path / "classes.txt"), "--json", *FAST,
                 "--set", "tune.steps=0"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["top_before"] == out["top_after"] and out["kept_views"] == 0


def test_predict_explains_bad_input(make_video, tmp_path, capsys):
    clip = make_video("clip.mp4")
    assert main(["predict", str(clip), "--labels", " , ", *FAST]) == 2
    assert "at least two class names" in capsys.readouterr().err
    assert main(["predict", str(clip), "--labels", "a, b, a", *FAST]) == 2
    assert "duplicate class names" in capsys.readouterr().err
    assert main(["predict", str(tmp_path / "nope.mp4"), "--labels", "a, b", *FAST]) == 2
    assert "not found" in capsys.readouterr().err
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    assert main(["predict", str(bad), "--labels", "a, b", *FAST]) == 2
    assert "cannot read" in capsys.readouterr().err
    assert main(["predict", str(clip), "--labels", "a, b", *FAST, "--set", "tune.ratio=0.01"]) == 2
    assert "ratio" in capsys.readouterr().err
