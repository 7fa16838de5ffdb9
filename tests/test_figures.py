"""Figures: the numbers behind them (checked against plain re-implementations), the attention
maps (checked against attention computed by hand), the PNG + CSV files, the verb, the paths."""
import copy
import csv
import json
import re
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from PIL import Image

from zar.report import analysis as A
from zar.cli import main
from zar.report import plots

ROOT = Path(__file__).resolve().parents[1]


def _png_ok(path: Path, kind: str) -> None:
    with Image.open(path) as im:
        assert im.format == "PNG"
        assert im.size == plots.pixel_size(kind)
        px = np.asarray(im.convert("RGB"), dtype=np.float64)
    assert px.std() > 5, f"{path} looks blank"


def _read_csv(path: Path) -> list[dict]:
    with open(path, newline="") as f:
        return list(csv.DictReader(f))


# ----------------------------------------------------------------------------- the numbers
def test_per_class_and_confusion_match_a_plain_count():
    rng = np.random.default_rng(0)
    n, c = 200, 7
    labels = rng.integers(0, c - 1, size=n)  # class 6 has no videos
    before = rng.normal(size=(n, c))
    after = before + rng.normal(scale=0.7, size=(n, c))
    after[:5] = 0.0  # all ties: the lowest class index wins, as in zar.core.metrics
    names = [f"class {i}" for i in range(c)]
    rows = A.per_class(labels, before, after, names)
    for r in rows:
        idx = [i for i in range(n) if labels[i] == r["class_index"]]
        ok_b = sum(int(max(range(c), key=lambda j: (before[i, j], -j)) == labels[i]) for i in idx)
        ok_a = sum(int(max(range(c), key=lambda j: (after[i, j], -j)) == labels[i]) for i in idx)
        assert (r["n"], r["correct_before"], r["correct_after"]) == (len(idx), ok_b, ok_a)
        if idx:
            assert r["top1_after"] - r["top1_before"] == pytest.approx(r["delta"])
            assert r["top1_after"] == pytest.approx(100 * ok_a / len(idx))
        else:
            assert r["top1_before"] is None and r["delta"] is None
    assert A.predict(after[:5]).tolist() == [0] * 5
    cm = A.confusion(labels, after, c)
    plain = np.zeros((c, c), dtype=int)
    for i in range(n):
        plain[labels[i], max(range(c), key=lambda j: (after[i, j], -j))] += 1
    assert (cm == plain).all() and cm.sum() == n
    # the accuracy the per-class rows add up to is the summary's top-1
    from zar.core.metrics import accuracy_summary

    assert sum(r["correct_after"] for r in rows) / n * 100 == pytest.approx(accuracy_summary(after, labels, c)["top1"])


def test_helps_hurts_orders_by_change_then_videos():
    rows = [{"class_index": i, "class_name": f"c{i}", "n": n, "delta": d}
            for i, (n, d) in enumerate([(10, 20.0), (5, 20.0), (10, -10.0), (10, 0.0), (0, None), (10, -30.0),
                                        (10, 5.0)])]
    helped, hurt = A.helps_hurts(rows, k=2)
    assert [r["class_index"] for r in helped] == [0, 1]
    assert [r["class_index"] for r in hurt] == [5, 2]
    helped, hurt = A.helps_hurts(rows, k=10)
    assert [r["class_index"] for r in helped] == [0, 1, 6] and len(hurt) == 2


def test_ablation_series_from_a_table_csv_with_and_without_paper_values(tmp_path):
    from zar.report.tables import render_csv

    def rec(row, key, col, mean, std, paper):
        return {"row": row, "row_key": key, "column": col, "ours_mean": mean, "ours_std": std, "n_runs": 3,
                "paper_mean": paper, "paper_std": None, "diff": None, "n_evaluated": 10, "n_listed": 10,
                "n_classes": 5, "files": "a.json"}

    t3 = tmp_path / "table3.csv"
    t3.write_text(render_csv([rec("HMDB-51", "hmdb51", "10", 50.0, 1.0, 53.94), rec("HMDB-51", "hmdb51", "80", 52.0, 0.5, None)]))
    pts = A.ablation_series(A.read_table_csv(t3), 3)
    assert [(p["series"], p["x"], p["mean"], p["std"]) for p in pts] == [
        ("ours", 10.0, 50.0, 1.0), ("paper", 10.0, 53.94, None), ("ours", 80.0, 52.0, 0.5)]
    t5 = tmp_path / "table5.csv"
    t5.write_text(render_csv([rec("1 crop", "1", "hmdb51", 40.0, None, None), rec("3 crops", "3", "hmdb51", 41.0, None, None)]))
    pts = A.ablation_series(A.read_table_csv(t5), 5)
    assert [(p["series"], p["group"], p["x"]) for p in pts] == [("ours", "hmdb51", "1 crop"), ("ours", "hmdb51", "3 crops")]
    plots.ablation(tmp_path / "ab5.png", pts, 5, "Table 5")
    _png_ok(tmp_path / "ab5.png", "ablation")
    assert {r["series"] for r in _read_csv(tmp_path / "ab5.csv")} == {"ours"}  # an empty paper column: no second series
    with pytest.raises(ValueError):
        A.ablation_series([], 1)


def test_tsne_keeps_separated_clusters_apart():
    rng = np.random.default_rng(1)
    centres = rng.normal(size=(3, 16)) * 10
    x = np.concatenate([c + rng.normal(size=(20, 16)) for c in centres])
    y = np.repeat(np.arange(3), 20)
    xy = A.tsne_2d(x, perplexity=10, seed=0)
    assert xy.shape == (60, 2)
    d = ((xy[:, None] - xy[None]) ** 2).sum(-1) + np.eye(60) * 1e9
    assert (y[d.argmin(1)] == y).all()  # every point's nearest neighbour is of its own cluster
    assert np.allclose(A.tsne_2d(x, perplexity=10, seed=0), xy)  # seeded
    assert A.tsne_2d(x[:2]).shape == (2, 2)
    assert A.tsne_2d(x[:5], perplexity=30).shape == (5, 2)  # perplexity lowered to fit
    sub = A.subsample(100, 10, seed=3)
    assert len(sub) == 10 and len(set(sub.tolist())) == 10 and (np.diff(sub) > 0).all()
    assert (A.subsample(5, 10) == np.arange(5)).all()


# ----------------------------------------------------------------------------- attention
def _attention_by_hand(block, x):
    """Multi-head self-attention weights from the block's input projection, averaged over heads."""
    attn = block.attn
    y = block.ln_1(x)
    d = attn.embed_dim
    h = attn.num_heads
    w, b = attn.in_proj_weight, attn.in_proj_bias
    q = y @ w[:d].T + b[:d]
    k = y @ w[d:2 * d].T + b[d:2 * d]
    bsz, length, _ = q.shape
    q = q.reshape(bsz, length, h, d // h).transpose(1, 2)
    k = k.reshape(bsz, length, h, d // h).transpose(1, 2)
    return torch.softmax(q @ k.transpose(-1, -2) / (d // h) ** 0.5, dim=-1).mean(dim=1)


def _rollout_by_hand(mats):
    r = np.eye(mats[0].shape[-1])
    for m in mats:
        a = 0.5 * m + 0.5 * np.eye(m.shape[-1])
        a = a / a.sum(-1, keepdims=True)
        r = a @ r
    return r


@pytest.mark.parametrize("arch", ["tiny", "ViT-B-16"])
def test_attention_maps_match_attention_computed_by_hand(arch, tiny_model):
    from zar.report import attention as AT

    if arch == "tiny":
        model, pre = tiny_model
    else:
        from zar.model.backbone import build_model

        model, pre = build_model("ViT-B-16:none")  # random weights: the shapes and the maths, offline
    visual = model.visual
    s = pre.image_size
    frames = torch.randint(0, 256, (2, 3, s, s), dtype=torch.uint8)
    images = AT.normalise_frames(frames, pre.mean, pre.std)
    with torch.no_grad():
        plain = model.encode_image(images)
        mats = AT.block_attentions(model, images)
        assert torch.equal(model.encode_image(images), plain)  # the hooks are gone and changed nothing
        # the blocks' inputs, by running the tower by hand
        x = visual._embeds(images)
        expected = []
        for blk in visual.transformer.resblocks:
            expected.append(_attention_by_hand(blk, x))
            x = blk(x)
    gh, gw = visual.grid_size
    assert len(mats) == len(visual.transformer.resblocks)
    assert mats[-1].shape == (2, 1 + gh * gw, 1 + gh * gw)
    for got, want in zip(mats, expected):
        assert torch.allclose(got, want, atol=1e-5)
    last = AT.attention_maps(model, frames, pre.mean, pre.std, "last")
    assert last.shape == (2, gh, gw)
    assert np.allclose(last, expected[-1][:, 0, 1:].reshape(2, gh, gw).numpy(), atol=1e-5)
    roll = AT.attention_maps(model, frames, pre.mean, pre.std, "rollout")
    by_hand = np.stack([_rollout_by_hand([m[i].double().numpy() for m in expected])[0, 1:] for i in range(2)])
    assert np.allclose(roll, by_hand.reshape(2, gh, gw), atol=1e-5)


def test_pick_videos_spreads_over_classes():
    from zar.report.attention import pick_videos
    from zar.core.splitfiles import VideoRow

    rows = [VideoRow(f"v{c}_{i}", f"v{c}_{i}.mp4", f"c{c}", c) for c in range(9) for i in range(2)]
    picked = pick_videos(rows, 3)
    assert [r.video_id for r in picked[:3]] == ["v0_0", "v4_0", "v8_0"]
    assert len(picked) == len(rows) and len(set(picked)) == len(rows)  # the rest follow, as replacements


# ----------------------------------------------------------------------------- files and the verb
def _fake_result(tmp_path: Path, method: str = "zar", n_classes: int = 4, n: int = 24) -> Path:
    rng = np.random.default_rng(2)
    classes = [f"class_{i}" for i in range(n_classes)]
    out = tmp_path / "results" / "zeroshot" / "x" / f"{method}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    with open(out.with_suffix(".jsonl"), "w") as f:
        for i in range(n):
            label = i % n_classes
            before = rng.normal(size=n_classes)
            after = before.copy() if method == "vanilla" else before + rng.normal(size=n_classes)
            f.write(json.dumps({"video_id": f"v{i}", "label": label, "top5_before": [], "top5_after": [],
                                "logits_before": before.round(5).tolist(), "logits_after": after.round(5).tolist(),
                                "kept_views": []}) + "\n")
    out.write_text(json.dumps({"method": method, "classes": classes, "top1": 0.0}))
    return out


def test_perclass_verb_writes_the_figure_and_its_data(tmp_path):
    result = _fake_result(tmp_path)
    png = tmp_path / "fig" / "zeroshot-x-zar.png"  # the result's path, with '-' for '/', names its figure
    assert main(["figures", "perclass", "--results", str(result), "--strip", f"{tmp_path}/results/", "--out",
                 str(tmp_path / "fig"), "--top", "2"]) == 0
    _png_ok(png, "perclass")
    data = A.load_predictions(result)
    rows = _read_csv(png.with_suffix(".csv"))
    assert [int(r["n"]) for r in rows] == [6, 6, 6, 6]
    expected = A.per_class(data["labels"], data["logits_before"], data["logits_after"], data["classes"])
    assert [int(r["correct_after"]) for r in rows] == [r["correct_after"] for r in expected]
    cm = _read_csv(png.with_name("zeroshot-x-zar_confusion.csv"))
    assert sum(int(v) for r in cm for k, v in r.items() if k != "true_class") == 24
    hh = _read_csv(png.with_name("zeroshot-x-zar_helps_hurts.csv"))
    assert len([r for r in hh if r["effect"] == "helps"]) <= 2 and all(float(r["delta"]) != 0 for r in hh)
    # a vanilla result: no tuning, nothing helped or hurt
    vanilla = _fake_result(tmp_path / "van", "vanilla")
    assert main(["figures", "perclass", "--results", str(vanilla), "--strip", f"{tmp_path}/van/results/", "--out",
                 str(tmp_path / "v")]) == 0
    _png_ok(tmp_path / "v" / "zeroshot-x-vanilla.png", "perclass")
    assert _read_csv(tmp_path / "v" / "zeroshot-x-vanilla_helps_hurts.csv") == []


def test_perclass_with_many_classes_and_bad_inputs(tmp_path, capsys):
    result = _fake_result(tmp_path, n_classes=60, n=120)
    assert main(["figures", "perclass", "--results", str(result), "--out", str(tmp_path / "many")]) == 0
    (png,) = (tmp_path / "many").rglob("*.png")
    _png_ok(png, "perclass")
    assert main(["figures", "ablation", "--table", str(result), "--number", "3", "--out", str(tmp_path / "x.pdf")]) == 2
    assert "PNG" in capsys.readouterr().err
    result.with_suffix(".jsonl").unlink()
    assert main(["figures", "perclass", "--results", str(result), "--out", str(tmp_path / "y")]) == 2
    assert "predictions" in capsys.readouterr().err


def _split_list(path, rows):
    path.write_text("video_id,path,class_name,class_index\n" + "".join(f"{v},{c}/{v}.avi,{c},{i}\n" for v, c, i in rows))
    return str(path)


def test_tsne_verb_reads_one_encoding_and_the_lists_naming_the_classes(tmp_path):
    from zar.method.cache import FORMAT, HEADER_KEYS, EmbeddingCache
    from zar.report.figures import tsne_points

    rng = np.random.default_rng(3)
    a = _split_list(tmp_path / "a.csv", [("v0", "jump", 0), ("v1", "run", 1), ("v2", "run", 1)])
    b = _split_list(tmp_path / "b.csv", [("v2", "run", 0), ("v3", "swim", 1), ("v4", "run", 0)])
    emb = torch.nn.functional.normalize(torch.tensor(rng.normal(size=(5, 8)), dtype=torch.float32), dim=-1)
    header = {**{k: None for k in HEADER_KEYS}, "format": FORMAT}
    EmbeddingCache(**header, video_ids=["v4", "v3", "v2", "v1", "v0"], infer=emb.flip(0), views=torch.zeros(5, 0, 8),
                   num_frames=torch.zeros(5), position=torch.arange(5), skipped=[], partial=[], n_in_shards=5,
                   seconds=0.0).save(tmp_path / "e.pt")
    x, names, ids = tsne_points([str(tmp_path / "e.pt")], [a, b])
    assert ids == ["v0", "v1", "v2", "v3", "v4"]  # v2 is in both splits: once
    assert names == ["jump", "run", "run", "swim", "run"]
    assert np.allclose(x, emb.numpy())
    png = tmp_path / "t.png"
    assert main(["figures", "tsne", "--embeddings", str(tmp_path / "e.pt"), "--videos", a, b, "--out", str(png)]) == 0
    _png_ok(png, "tsne")
    pts = _read_csv(png.with_suffix(".csv"))
    assert [p["video_id"] for p in pts] == ids and [p["class_name"] for p in pts] == names
    # several datasets in one call: NAME=file, one figure each in the --out folder
    assert main(["figures", "tsne", "--embeddings", f"one={tmp_path / 'e.pt'}", f"two={tmp_path / 'e.pt'}",
                 "--videos", f"one={a}", f"two={b}", "--names", "one", "two", "--out", str(tmp_path / "many")]) == 0
    assert [p["video_id"] for p in _read_csv(tmp_path / "many" / "two.csv")] == ["v2", "v3", "v4"]
    # a list none of whose videos were encoded: an explained error
    c = _split_list(tmp_path / "c.csv", [("v9", "run", 0)])
    assert main(["figures", "tsne", "--embeddings", str(tmp_path / "e.pt"), "--videos", c, "--out", str(png)]) == 2


def test_attention_verb_on_videos_made_here(tmp_path, make_video):
    for i, colour in enumerate([(255, 0, 0), (0, 0, 255), (0, 255, 0)]):
        make_video(f"v{i}.mp4", colour=colour, seed=i)
    (tmp_path / "classes.txt").write_text("red square\nblue square\ngreen square\n")
    # the first video of class 0 is missing: another video takes its place
    (tmp_path / "list.csv").write_text("path,label\nmissing.mp4,0\n" + "".join(f"v{i}.mp4,{i}\n" for i in range(3)))
    png = tmp_path / "att.png"
    assert main(["figures", "attention", "--videos", str(tmp_path / "list.csv"), "--classes", str(tmp_path / "classes.txt"),
                 "--root", str(tmp_path), "--backbone", "tiny", "--n-videos", "2", "--set", "views.frames=4",
                 "--set", "run.backend=pyav", "--mode", "rollout", "--out", str(png)]) == 0
    _png_ok(png, "attention")
    rows = _read_csv(png.with_suffix(".csv"))
    assert sorted({r["video_id"] for r in rows}) == ["v0", "v2"]
    assert len(rows) == 2 * 4 * 4  # 2 frames x a 4x4 patch grid (64 px, patch 16)
    for vid in ("v0", "v2"):  # rollout rows are probabilities over all tokens: the patch part sums to < 1
        assert 0 < sum(float(r["attention"]) for r in rows if r["video_id"] == vid) < 1


# ----------------------------------------------------------------------------- workflow paths
def _config(path: str):
    from snakemake.utils import validate

    cfg = copy.deepcopy(yaml.safe_load((ROOT / path).read_text()))
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return cfg


def test_figure_paths_of_the_paper_and_the_demo():
    import zar.plan as plan

    paper = _config("config/config.yaml")
    assert paper["figures"]["tsne"]["max_points"] == 5000 and paper["figures"]["attention"]["mode"] == "last"
    assert plan.ablation_figures(paper) == [f"results/figures/ablation_table{t}.png" for t in (3, 4, 5)]
    assert plan.table1_backbones(paper) == ["vitb16_openai", "vitb16_k400"]
    t = plan.tsne_inputs(paper, "k600", "vitb16_openai")
    assert t["embeddings"] == plan.embedding_shards(paper, "k600", "vitb16_openai", "t16_i16")  # the ZAR run's encoding
    assert t["videos"] == [f"splits/k600/zeroshot/split{s}/test.csv" for s in (1, 2, 3)]
    assert plan.attention_lists(paper, "ucf101") == {"videos": "splits/ucf101/zeroshot/split1/test.csv",
                                                  "classes": "splits/ucf101/zeroshot/split1/classes.csv"}
    targets = plan.all_targets(paper)
    assert set(plan.all_tables(paper)) < set(targets) and "results/table2.html" in targets
    assert [f for f in targets if "/figures/" in f] == [
        *(f"results/figures/perclass/table{n}" for n in range(1, 6)),
        *(f"results/figures/ablation_table{n}.png" for n in (3, 4, 5)),
        "results/figures/testtime_cost.png",  # Table 6 (zar's own): accuracy against cost, no per-class pages
        "results/figures/tsne/vitb16_openai", "results/figures/tsne/vitb16_k400",
        "results/figures/attention/vitb16_openai", "results/figures/attention/vitb16_k400"]
    demo = _config("demo/config/config.yaml")
    assert plan.attention_backbones(demo) == ["tiny_untrained", "tiny_k400"]
    assert plan.table1_backbones(demo) == ["tiny_k400"]


@pytest.mark.slow
def test_paper_dry_run_lists_every_figure():
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", "all", "--quiet", "rules"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout + out.stderr, re.M))
    assert counts["perclass"] == "5" and counts["ablation_figure"] == "3" and counts["tables"] == "6"
    assert counts["tsne"] == "2" and counts["attention"] == "2" and counts["cost_figure"] == "1"
    # Table 6 adds tuning jobs only: one per (dataset, backbone, split), on Table 1's encodings
    assert counts["tune_testtime"] == "18" and counts["encode"] == "54"
