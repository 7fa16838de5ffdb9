"""Encoding the views once, tuning from the cache, and `zar evaluate` giving the same answers."""
import json
from pathlib import Path

import av
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zar.method import views as V
from zar.cli import main as zar
from zar.method.cache import load_cache
from zar.method.encoder import VideoEncoder
from zar.method.frames import prepare_video
from zar.core.splitfiles import VideoRow

FAST = ["--set", "run.workers=0", "--set", "run.batch_size=100"]


def _preds(path):
    return {r["video_id"]: r for r in map(json.loads, Path(path).read_text().splitlines())}


def test_dedup_encoding_equals_naive_per_view(tiny_model, make_video):
    """Every view re-encoded on its own, one frame at a time, from a PyAV decode."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    model, pre = tiny_model
    path = make_video("v.mp4", n=30, h=72, w=96)
    cfg = V.ViewConfig(crops=5)
    row = VideoRow("v", str(path), "red", 0)
    prepared = prepare_video(row, cfg, pre)
    views, infer = VideoEncoder(model, pre, cfg, batch_size=37).encode(prepared)
    with av.open(str(path)) as c:
        frames = [f.to_ndarray(format="rgb24") for f in c.decode(video=0)]
    assert prepared.num_frames == len(frames) == 30
    mean = torch.tensor(pre.mean).view(3, 1, 1)
    std = torch.tensor(pre.std).view(3, 1, 1)

    def embed(frame, short, pos):
        t = torch.from_numpy(frame).permute(2, 0, 1)
        h, w = V.resized_shape(*t.shape[-2:], short)
        t = TF.resize(t, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
        top, left, s, _ = V.crop_box(h, w, pre.image_size, pos)
        x = (t[:, top:top + s, left:left + s].float() / 255 - mean) / std
        with torch.no_grad():
            return model.encode_image(x[None])[0]

    short = cfg.view_short_side(pre.image_size)
    memo = {}

    def frame_embedding(i, crop):  # one frame at a time (remembered: many views share frames)
        if (i, crop) not in memo:
            memo[i, crop] = embed(frames[i], short, crop)
        return memo[i, crop]

    for k, view in enumerate(V.view_plan(cfg)):
        idx = V.clip_indices(30, cfg, "v", view.rate, view.sample)
        ref = F.normalize(torch.stack([frame_embedding(i, view.crop) for i in idx]).mean(0), dim=0)
        assert torch.allclose(views[k], ref, atol=1e-5), view
    inf_idx = V.inference_indices(30, cfg.infer_frames)
    ref = F.normalize(torch.stack([embed(frames[i], pre.image_size, "center") for i in inf_idx]).mean(0), dim=0)
    assert torch.allclose(infer, ref, atol=1e-5)


def test_encode_tune_equals_evaluate_and_counts_skips(dataset):
    d = dataset
    common = ["--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny"]
    cache = d["tmp"] / "emb.pt"
    assert zar(["encode", *common, "--out", str(cache), *FAST]) == 0
    data = load_cache(cache)
    assert len(data.video_ids) == 6 and data.views.shape[:2] == (6, 48)
    assert sorted(s["video_id"] for s in data.skipped) == ["broken", "empty", "gone"]
    assert all(s["reason"] for s in data.skipped)
    out = d["tmp"] / "tune" / "split1.json"
    assert zar(["tune", "--embeddings", str(cache), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
                "--backbone", "tiny", "--method", "zar", "--out", str(out), *FAST]) == 0
    ev = d["tmp"] / "ev"
    assert zar(["evaluate", *common, "--classes", str(d["classes"]), "--method", "zar", "--out", str(ev), *FAST]) == 0
    a, b = _preds(out.with_suffix(".jsonl")), _preds(ev / "predictions.jsonl")
    assert list(a) == list(b) == data.video_ids
    for vid in a:
        assert a[vid]["kept_views"] == b[vid]["kept_views"]
        assert np.allclose(a[vid]["logits_after"], b[vid]["logits_after"], atol=1e-4)
        assert a[vid]["top5_after"] == b[vid]["top5_after"]
    for summary in (json.loads(out.read_text()), json.loads((ev / "summary.json").read_text())):
        assert summary["n_listed"] == 9 and summary["n_evaluated"] == 6 and summary["n_skipped"] == 3
        assert {s["video_id"] for s in summary["skipped"]} == {"broken", "empty", "gone"}
        assert summary["settings"]["tune"]["ratio"] == 0.8 and summary["provenance"]["versions"]["torch"]
        assert summary["settings"]["frames"] == {"views": 16, "inference": 16, "backbone_training": None}
        assert summary["predictions"].endswith(".jsonl") and Path(summary["predictions"]).is_file()
        assert "git_commit" in summary["provenance"] and summary["method"] == "zar"
        labels = np.array([r["label"] for r in a.values()])
        pred = np.array([r["top5_after"][0] for r in a.values()])
        assert summary["top1"] == pytest.approx(100 * (labels == pred).mean())
        per_class = [100 * (pred[labels == c] == c).mean() for c in range(3)]
        assert summary["mean_class_acc"] == pytest.approx(np.mean(per_class))


def test_ratio_keeping_no_view_is_refused_before_any_work(dataset, capsys):
    d = dataset
    out = d["tmp"] / "ev0"
    rc = zar(["evaluate", "--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny",
              "--classes", str(d["classes"]), "--out", str(out), *FAST, "--set", "tune.ratio=0.02"])
    assert rc != 0
    assert "keeps int(48 * 0.02) = 0 of 48 views" in capsys.readouterr().err
    assert not (out / "predictions.jsonl").exists()


def test_shards_merge_to_the_same_numbers(dataset):
    d = dataset
    common = ["--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny"]
    whole = d["tmp"] / "whole.pt"
    zar(["encode", *common, "--out", str(whole), *FAST])
    shards = [d["tmp"] / f"s{k}.pt" for k in (1, 2, 3)]
    for k, s in enumerate(shards, 1):
        zar(["encode", *common, "--out", str(s), "--shard", f"{k}/3", *FAST])
    outs = []
    for name, embs in (("one", [whole]), ("three", list(reversed(shards)))):
        out = d["tmp"] / name / "r.json"
        zar(["tune", "--embeddings", *map(str, embs), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
             "--backbone", "tiny", "--out", str(out), *FAST])
        outs.append(out)
    a, b = (json.loads(o.read_text()) for o in outs)
    for key in ("top1", "top5", "mean_class_acc", "n_listed", "n_evaluated", "skipped"):
        assert a[key] == b[key], key
    assert [json.loads(x) for x in outs[0].with_suffix(".jsonl").read_text().splitlines()] == \
           [{**json.loads(x), "seconds": json.loads(y)["seconds"]} for x, y in
            zip(outs[1].with_suffix(".jsonl").read_text().splitlines(), outs[0].with_suffix(".jsonl").read_text().splitlines())]


def test_variants_reuse_the_superset_cache(dataset):
    """Tuning with 3 crops / dropped rates from a 9-crop cache equals encoding those views directly."""
    d = dataset
    common = ["--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny"]
    big, small = d["tmp"] / "big.pt", d["tmp"] / "small.pt"
    zar(["encode", *common, "--out", str(big), "--set", "views.crops=9", *FAST])
    zar(["encode", *common, "--out", str(small), "--set", "views.crops=3", "--set", "views.rates=[1,2]", *FAST])
    res = []
    for emb in (big, small):
        out = d["tmp"] / emb.stem / "r.json"
        zar(["tune", "--embeddings", str(emb), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
             "--backbone", "tiny", "--out", str(out), "--set", "views.crops=3", "--set", "views.rates=[1,2]", *FAST])
        res.append(_preds(out.with_suffix(".jsonl")))
        assert json.loads(out.read_text())["n_views"] == 24
    for vid in res[0]:
        assert res[0][vid]["kept_views"] == res[1][vid]["kept_views"]
        assert np.allclose(res[0][vid]["logits_after"], res[1][vid]["logits_after"], atol=1e-4)
    # asking for views the cache does not hold is an error that says what to do
    assert zar(["tune", "--embeddings", str(small), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
                "--backbone", "tiny", "--out", str(d["tmp"] / "x.json"), "--set", "views.crops=9", *FAST]) == 2


def test_encode_resumes_after_a_crash(dataset, monkeypatch):
    import zar.method.encoder as E

    d = dataset
    args = ["encode", "--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny",
            "--set", "run.chunk=2", *FAST]
    ref = d["tmp"] / "ref.pt"
    zar([*args, "--out", str(ref)])
    calls = {"n": 0}
    real = E.VideoEncoder._finish  # called once per video, when all its images are encoded

    def crashing(self, item):
        calls["n"] += 1
        if calls["n"] == 4:
            raise RuntimeError("simulated crash")
        return real(self, item)

    out = d["tmp"] / "crash.pt"
    monkeypatch.setattr(E.VideoEncoder, "_finish", crashing)
    with pytest.raises(RuntimeError, match="simulated"):
        zar([*args, "--out", str(out)])
    assert not out.exists() and list(out.with_name(out.name + ".parts").glob("part_*.pt"))
    calls["n"] = -100
    zar([*args, "--out", str(out)])
    assert calls["n"] == -100 + 4  # the first chunk (2 videos) was kept; the other 4 were encoded again
    a, b = load_cache(ref), load_cache(out)
    assert a.video_ids == b.video_ids and torch.equal(a.views, b.views) and a.skipped == b.skipped
    assert not out.with_name(out.name + ".parts").exists()


def test_evaluate_resumes_and_vanilla_is_untuned(dataset):
    d = dataset
    common = ["evaluate", "--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny",
              "--classes", str(d["classes"]), *FAST]
    out = d["tmp"] / "van"
    assert zar([*common, "--method", "vanilla", "--out", str(out)]) == 0
    recs = _preds(out / "predictions.jsonl")
    assert all(r["logits_before"] == r["logits_after"] and r["kept_views"] == [] for r in recs.values())
    # a crashed run left a part file: the rerun keeps its lines and does only the rest
    part = out / "predictions.jsonl.part"
    lines = (out / "predictions.jsonl").read_text().splitlines()
    summary = json.loads((out / "summary.json").read_text())
    marked = dict(json.loads(lines[0]), seconds=-1.0)
    header = _fingerprint_of(out, d)
    part.write_text(json.dumps({"_fingerprint": header}) + "\n" + json.dumps(marked) + "\n" + '{"torn')
    (out / "summary.json").unlink()
    assert zar([*common, "--method", "vanilla", "--out", str(out)]) == 0
    again = _preds(out / "predictions.jsonl")
    assert again[marked["video_id"]]["seconds"] == -1.0  # kept, not recomputed
    assert list(again) == list(recs)
    assert json.loads((out / "summary.json").read_text())["top1"] == summary["top1"]


def _fingerprint_of(out, d):
    from zar.method.settings import load_settings
    from zar.method.results import fingerprint
    from zar.core.files import sha256_file
    from dataclasses import replace
    from zar.model.backbone import parse_spec

    s = load_settings(None, ["run.workers=0", "run.batch_size=100"])
    return fingerprint(sha256_file(d["videos"]), sha256_file(d["classes"]), str(d["root"]), None,
                       s.views.to_dict(), replace(s.tune, steps=0).to_dict(), parse_spec("tiny").to_dict(), "vanilla")


def test_reader_workers_give_the_same_embeddings(dataset):
    d = dataset
    outs = []
    for w in (0, 2):
        out = d["tmp"] / f"w{w}.pt"
        zar(["encode", "--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny",
             "--out", str(out), "--set", f"run.workers={w}"])
        outs.append(load_cache(out))
    assert outs[0].video_ids == outs[1].video_ids and torch.allclose(outs[0].views, outs[1].views, atol=1e-6)


def _list(path, rows):
    path.write_text("video_id,path,class_name,class_index\n" + "".join(f"{a},{b},{c},{i}\n" for a, b, c, i in rows))
    return path


def test_one_encoding_serves_every_list_that_shares_its_videos(dataset):
    """Two lists sharing videos (like a dataset's three splits) are encoded once; each list's
    tuning picks its videos, labels and classifier and gets what its own encoding would give."""
    d = dataset
    rows = [ln.split(",") for ln in d["videos"].read_text().splitlines()[1:]]
    a = _list(d["tmp"] / "a.csv", [r for r in rows if r[2] in ("red", "green")][:4])
    names = ["green", "blue"]
    b_rows = [(r[0], r[1], r[2], names.index(r[2])) for r in rows if r[2] in names and r[0] != "gone"]
    b = _list(d["tmp"] / "b.csv", b_rows)
    cb = d["tmp"] / "classes_b.csv"
    cb.write_text("class_index,class_name,text\n" + "".join(f"{i},{n},{n} square\n" for i, n in enumerate(names)))
    union, alone = d["tmp"] / "union.pt", d["tmp"] / "alone.pt"
    base = ["--backbone", "tiny", *FAST]
    assert zar(["encode", "--videos", str(a), str(b), "--out", str(union), "--root", str(d["root"]), *base]) == 0
    assert zar(["encode", "--videos", str(b), "--out", str(alone), "--root", str(d["root"]), *base]) == 0
    cache = load_cache(union)
    ids_a = [r[0] for r in map(lambda x: x.split(","), a.read_text().splitlines()[1:])]
    assert cache.n_union == len(set(ids_a) | {r[0] for r in b_rows})
    outs = []
    for emb in (union, alone):
        out = d["tmp"] / f"b_from_{emb.stem}.json"
        assert zar(["tune", "--embeddings", str(emb), "--videos", str(b), "--classes", str(cb), "--out", str(out),
                    *base]) == 0
        outs.append(out)
    pa, pb = _preds(outs[0].with_suffix(".jsonl")), _preds(outs[1].with_suffix(".jsonl"))
    assert list(pa) == list(pb) and len(pa[next(iter(pa))]["logits_after"]) == 2
    for vid in pa:
        assert pa[vid]["label"] == pb[vid]["label"] and pa[vid]["kept_views"] == pb[vid]["kept_views"]
        assert pa[vid]["logits_after"] == pb[vid]["logits_after"]
    sa, sb = (json.loads(o.read_text()) for o in outs)
    assert (sa["n_listed"], sa["n_evaluated"], sa["skipped"]) == (sb["n_listed"], sb["n_evaluated"], sb["skipped"])
    assert sa["n_listed"] == len(b_rows) and {s["video_id"] for s in sa["skipped"]} == {"empty"}
    # a list the encoding never saw is refused, naming what to do
    assert zar(["tune", "--embeddings", str(alone), "--videos", str(a), "--classes", str(d["classes"]),
                "--out", str(d["tmp"] / "bad.json"), *base]) == 2


def test_inference_clip_has_its_own_frame_count(dataset):
    """8-frame views (base-to-novel) still predict on a 16-frame inference clip; a vanilla run
    can encode the inference clip alone (no views), e.g. 32 frames."""
    d = dataset
    base = ["--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny", *FAST]
    t8, t16, only = d["tmp"] / "t8.pt", d["tmp"] / "t16.pt", d["tmp"] / "only.pt"
    zar(["encode", *base, "--out", str(t8), "--set", "views.frames=8"])
    zar(["encode", *base, "--out", str(t16)])
    zar(["encode", *base, "--out", str(only), "--set", "views.samples_per_rate=0", "--set", "views.infer_frames=32"])
    a, b, c = load_cache(t8), load_cache(t16), load_cache(only)
    assert a.views_config["infer_frames"] == 16 and torch.equal(a.infer, b.infer)
    assert not torch.allclose(a.views, b.views)
    assert c.views.shape[1] == 0 and not torch.allclose(c.infer, b.infer)
    out = d["tmp"] / "van32.json"
    assert zar(["tune", "--embeddings", str(only), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
                "--out", str(out), "--method", "vanilla", "--set", "views.samples_per_rate=0",
                "--set", "views.infer_frames=32", "--set", "tune.template={c}", "--backbone", "tiny", *FAST]) == 0
    s = json.loads(out.read_text())
    assert s["settings"]["frames"]["inference"] == 32 and s["settings"]["tune"]["template"] == "{c}"
    assert s["top1"] == s["top1_before_tuning"] == s["top1_ensemble"]
    out8 = d["tmp"] / "zar8.json"
    assert zar(["tune", "--embeddings", str(t8), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
                "--out", str(out8), "--set", "views.frames=8", "--backbone", "tiny", *FAST]) == 0
    assert json.loads(out8.read_text())["settings"]["frames"] == {"views": 8, "inference": 16,
                                                                  "backbone_training": None}
