"""The demo's tuning does its job, and the checks that say so fail when the method breaks.

These read the demo's results (`snakemake --cores all --directory demo all`, which CI runs
before the tests); without them they fail and say so. ZAR must beat vanilla CLIP by at least
5 points on every zero-shot role of the demo (:func:`demo_results.gain_check`), and move the
inference clip toward the views' vote (:func:`demo_results.tuning_check`). The mutation
tests rerun the demo's tuning jobs of one role (`zar tune` on its cached embeddings, a second
or two each) with the method broken on purpose and show that both checks then fail.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from safetensors.torch import load_file

import zar.method.tpt
import zar.plan as plan
from demo_results import DEMO, demo_config, gain_check, require, tuning_check
from test_encoder_levers import EPS  # 4 bf16 roundings, derived there
from zar.report.analysis import load_predictions, predict
from zar.method.cache import load_cache
from zar.cli import main


@pytest.fixture(scope="module")
def demo_cfg():
    return demo_config()


def zar_results(cfg) -> dict[tuple[str, str], list[Path]]:
    """The demo's Table 1 results tuned with ZAR: the splits' results per (run, dataset)."""
    zs = cfg["zeroshot"]
    runs = [name for name, run in zs["runs"].items() if run.get("method", "zar") == "zar"]
    jobs = plan.TableJobs(cfg)  # a cell that is one of Table 6's evaluations reads Table 6's file
    paths = {(r, d): [jobs.zeroshot(d, r, s) for s in zs["splits"]] for r in runs for d in zs["datasets"]}
    require([p for ps in paths.values() for p in ps])
    return {k: [DEMO / p for p in ps] for k, ps in paths.items()}


def test_check_against_a_direct_computation():
    """tuning_check on made-up predictions, against the definition computed here."""
    rng = np.random.default_rng(0)
    before = rng.normal(size=(50, 6))
    ensemble = rng.normal(size=(50, 6))
    vote = ensemble.argmax(1)
    after = before.copy()
    up = rng.uniform(size=50) < 0.7  # 70% of the videos: the voted class gains, the others: it loses
    after[np.arange(50), vote] += np.where(up, 0.5, -0.5)
    labels = rng.integers(0, 6, size=50)
    pred = {"logits_before": before, "logits_after": after, "logits_ensemble": ensemble, "labels": labels}

    def logp(x):
        return x - np.log(np.exp(x).sum(1, keepdims=True))
    shift = logp(after)[np.arange(50), vote] - logp(before)[np.arange(50), vote]
    r = tuning_check(pred, min_share=0.6)
    assert r["share_up"] == pytest.approx(np.mean(shift > 1e-3)) and r["share_up"] == pytest.approx(up.mean())
    assert r["ok"] and not tuning_check(pred, min_share=0.8)["ok"]
    assert r["top1_before"] == pytest.approx(100 * np.mean(before.argmax(1) == labels))
    assert r["top1_after"] == pytest.approx(100 * np.mean(after.argmax(1) == labels))
    same = dict(pred, logits_after=before + 3.0)  # a constant shift changes no probability
    assert tuning_check(same)["share_up"] == 0.0


def test_gain_check_against_a_direct_computation():
    rng = np.random.default_rng(1)
    splits = []
    for _ in range(3):
        labels = rng.integers(0, 5, size=40)
        before = rng.normal(size=(40, 5))
        after = before.copy()
        fix = rng.uniform(size=40) < 0.3  # tuning puts the right class on top for 30% of the videos
        after[fix, labels[fix]] += 10.0
        splits.append({"labels": labels, "logits_before": before, "logits_after": after})
    top1 = lambda logits, y: 100 * np.mean([row.argmax() == t for row, t in zip(logits, y)])  # noqa: E731
    b = [top1(p["logits_before"], p["labels"]) for p in splits]
    a = [top1(p["logits_after"], p["labels"]) for p in splits]
    gain = sum(a) / 3 - sum(b) / 3
    std = max(np.std(b, ddof=1), np.std(a, ddof=1))
    r = gain_check(splits)
    assert r["gain"] == pytest.approx(gain) and r["split_std"] == pytest.approx(std)
    assert r["top1_before"] == pytest.approx(b) and r["top1_after"] == pytest.approx(a)
    assert r["ok"] == (gain >= 5 and gain > std) and r["ok"]
    assert not gain_check(splits, min_gain=gain + 0.1)["ok"]
    same = [dict(p, logits_after=p["logits_before"]) for p in splits]
    assert gain_check(same)["gain"] == 0.0 and not gain_check(same)["ok"]
    noisy = [dict(splits[0], logits_before=splits[0]["logits_after"]), splits[1], splits[2]]  # one split: no gain
    r = gain_check(noisy, min_gain=0.0)
    assert r["split_std"] == pytest.approx(max(np.std([a[0], b[1], b[2]], ddof=1), np.std(a, ddof=1)))


def test_demo_zar_beats_vanilla_on_every_role(demo_cfg):
    """At least 5 points over vanilla CLIP on every zero-shot role (mean over the splits),
    and more than the split-to-split standard deviation."""
    report = {f"{d} ({run})": gain_check([load_predictions(p) for p in paths])
              for (run, d), paths in zar_results(demo_cfg).items()}
    failed = {k: v for k, v in report.items() if not v["ok"]}
    assert not failed, f"ZAR does not beat vanilla CLIP by 5 points on the demo: {failed}"


def test_demo_tuning_moves_the_inference_clip_toward_the_views_vote(demo_cfg):
    report = {}
    for path in (p for paths in zar_results(demo_cfg).values() for p in paths):
        report[str(path.relative_to(DEMO))] = tuning_check(load_predictions(path))
    failed = {k: v for k, v in report.items() if not v["ok"]}
    assert not failed, f"test-time tuning did not move the predictions toward the views' vote: {failed}"


# --------------------------------------------------------------------------- mutation runs
def recorded_embeddings(summary: dict) -> list[str]:
    inputs = summary["inputs"]
    return [inputs[k]["path"] for k in sorted(inputs) if k.startswith("embeddings_")]


def rerun(summary_path: Path, out: Path, embeddings: list[str] | None = None) -> Path:
    """`zar tune` again with a result's recorded inputs and settings (run from demo/), on
    its own embedding cache or on ``embeddings``."""
    s = json.loads(summary_path.read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    config = out.parent / "settings.yaml"
    config.write_text(yaml.safe_dump({k: s["settings"][k] for k in ("views", "tune", "run")}))
    inputs = s["inputs"]
    embeddings = embeddings or recorded_embeddings(s)
    backbone = json.dumps(s["backbone"])  # the full recorded spec
    argv = ["tune", "--embeddings", *embeddings, "--videos", inputs["videos"]["path"],
            "--classes", inputs["classes"]["path"], "--backbone", backbone, "--method", s["method"],
            "--out", str(out), "--label", s["label"], "--config", str(config)]
    # the job's thread count: CPU matrix products sum in another order with another count
    # (the demo's jobs run with the threads their rule declares, this process with the machine's)
    threads, before = s["provenance"].get("torch_threads"), torch.get_num_threads()
    torch.set_num_threads(threads or before)
    try:
        assert main(argv) == 0
    finally:
        torch.set_num_threads(before)
    return out


def unused_prompt(monkeypatch):
    """The tuned context is thrown away: the inference clip is scored with the initial one."""
    text = zar.method.tpt.Tuner.text
    monkeypatch.setattr(zar.method.tpt.Tuner, "text", lambda self, ctx=None: text(self, None))


def flipped_sign(monkeypatch):
    """The step climbs the entropy instead of descending it."""
    entropy = zar.method.tpt.marginal_entropy
    monkeypatch.setattr(zar.method.tpt, "marginal_entropy", lambda logits: -entropy(logits))


def zero_lr(monkeypatch):
    """tune.lr = 0 (the settings refuse it, so the optimiser is handed 0 behind their back)."""
    adamw = torch.optim.AdamW
    monkeypatch.setattr(zar.method.tpt.torch.optim, "AdamW",
                        lambda params, lr, weight_decay: adamw(params, lr=0.0, weight_decay=weight_decay))


@pytest.fixture(scope="module")
def one_role(demo_cfg):
    """The results of the splits of the demo's first zero-shot role."""
    return next(iter(zar_results(demo_cfg).values()))


def rerun_role(paths: list[Path], tmp_path: Path) -> list[dict]:
    return [load_predictions(rerun(p, tmp_path / f"res{i}" / "split.json")) for i, p in enumerate(paths)]


def test_rerun_reproduces_the_demo(one_role, tmp_path, monkeypatch):
    """Unbroken, the reruns give the demo's own predictions and pass both checks."""
    monkeypatch.chdir(DEMO)
    again = rerun_role(one_role, tmp_path)
    for path, pred in zip(one_role, again):
        demo = load_predictions(path)
        assert pred["video_ids"] == demo["video_ids"]
        for key in ("logits_before", "logits_after", "logits_ensemble"):
            np.testing.assert_allclose(pred[key], demo[key], atol=2e-5)
        assert (predict(pred["logits_after"]) == predict(demo["logits_after"])).all()
        assert tuning_check(pred)["ok"]
    assert gain_check(again)["ok"]


@pytest.mark.parametrize("mutation", [unused_prompt, flipped_sign, zero_lr], ids=lambda f: f.__name__)
def test_checks_fail_when_the_method_breaks(mutation, one_role, tmp_path, monkeypatch):
    monkeypatch.chdir(DEMO)
    mutation(monkeypatch)
    again = rerun_role(one_role, tmp_path)
    gain = gain_check(again)
    assert not gain["ok"] and gain["gain"] <= 0.0, f"{mutation.__name__}: ZAR still gains: {gain}"
    for pred in again:
        result = tuning_check(pred)
        assert not result["ok"], f"{mutation.__name__}: the tuning check still passes: {result}"
        assert result["share_up"] < 0.2


# --------------------------------------------------------------------------- the bf16 image tower
def top2_margin(logits: np.ndarray) -> np.ndarray:
    top = np.sort(logits, axis=1)[:, -2:]
    return top[:, 1] - top[:, 0]


def changes_beyond(ref: np.ndarray, other: np.ndarray, bound: float) -> list[int]:
    """Rows whose prediction changes although no logit may move by more than ``bound``: the
    top class then keeps its lead unless the reference's top-2 margin is at most 2 * bound."""
    changed = predict(ref) != predict(other)
    return np.flatnonzero(changed & (top2_margin(ref) > 2 * bound)).tolist()


def test_changes_beyond_against_a_direct_computation():
    ref = np.array([[3.0, 1.0, 0.0], [2.0, 1.9, 0.0], [0.0, 5.0, 4.0]])
    other = np.array([[1.0, 3.0, 0.0], [1.9, 2.0, 0.0], [0.0, 5.0, 4.0]])
    assert changes_beyond(ref, other, bound=0.5) == [0]  # margin 2 > 1; row 1's 0.1 may flip; row 2 kept
    assert changes_beyond(ref, other, bound=1.0) == []


def test_bf16_image_tower_gives_the_demo_s_predictions(demo_cfg, tmp_path, monkeypatch):
    """Every zero-shot role's videos encoded again with ``run.image_precision=bf16`` (the
    fine-tuned tiny model, the demo's own view settings) and tuned as the demo tuned them.
    What the bf16 bound implies (test_encoder_levers.py: a video embedding within EPS = 4u of
    the fp32 one): a logit s cos(v, t) moves by at most B = s * EPS for a fixed prompt, so the
    inference clip's logits before tuning stay within B and the views' vote (log of a mean of
    softmaxes: log-softmax moves by at most 2B) within 2B; a prediction may then change only
    where the fp32 top-2 margin is at most twice that. After tuning, the prompt is tuned on the
    bf16 views, one AdamW step of at most lr per element; a prediction may change only where
    the fp32 margin is within 2B too (the bound for a fixed prompt), which the test holds."""
    monkeypatch.chdir(DEMO)
    pairs = changed = 0
    for (run, dataset), paths in zar_results(demo_cfg).items():
        demo_cache = recorded_embeddings(json.loads(paths[0].read_text()))[0]
        meta = json.loads(Path(demo_cache).with_suffix(".json").read_text())
        settings = tmp_path / dataset / "encode.yaml"
        settings.parent.mkdir(parents=True)
        settings.write_text(yaml.safe_dump({"views": meta["settings"]["views"],
                                            "run": {**meta["settings"]["run"], "image_precision": "bf16"}}))
        cache = tmp_path / dataset / "bf16.pt"
        assert main(["encode", "--videos", *[lst["path"] for lst in meta["lists"]],
                     "--root", plan.video_root(demo_cfg, dataset), "--ext", ".mp4",
                     "--backbone", json.dumps(meta["backbone"]), "--out", str(cache), "--config", str(settings)]) == 0
        scale = float(load_file(meta["backbone"]["pretrained"])["logit_scale"].exp())
        bound = scale * EPS
        fp32, low = load_cache(demo_cache), load_cache(cache)
        assert low.video_ids == fp32.video_ids and low.image_precision == "bf16"
        for key in ("views", "infer"):
            assert (getattr(low, key) - getattr(fp32, key)).norm(dim=-1).max() <= EPS, key
        for i, path in enumerate(paths):
            out = rerun(path, tmp_path / dataset / f"split{i}" / "split.json", embeddings=[str(cache)])
            summary = json.loads(out.read_text())
            assert summary["settings"]["image_precision_encoded"] == "bf16"
            demo, bf16 = load_predictions(path), load_predictions(out)
            assert bf16["video_ids"] == demo["video_ids"]
            assert np.abs(bf16["logits_before"] - demo["logits_before"]).max() <= bound
            assert not np.array_equal(bf16["logits_before"], demo["logits_before"])  # bf16 did run
            assert changes_beyond(demo["logits_before"], bf16["logits_before"], bound) == [], (run, dataset, i)
            assert changes_beyond(demo["logits_ensemble"], bf16["logits_ensemble"], 2 * bound) == [], (run, dataset, i)
            assert changes_beyond(demo["logits_after"], bf16["logits_after"], bound) == [], (run, dataset, i)
            pairs += len(demo["video_ids"])
            changed += int((predict(bf16["logits_after"]) != predict(demo["logits_after"])).sum())
    assert pairs >= 200, pairs  # every role's videos were compared
    print(f"bf16 image tower: {changed} of {pairs} (split, video) predictions after tuning changed, each within "
          "the bound")


# --------------------------------------------------------------------------- Table 6: the test-time methods
def table6_results(cfg) -> dict[tuple[str, str], Path]:
    t = cfg["testtime"]
    paths = {(m, d): plan.testtime_result(cfg, d, b, m, s) for m in t["methods"] for d in t["datasets"]
             for b in t["backbones"] for s in t["splits"]}
    require(list(paths.values()))
    return {k: DEMO / p for k, p in paths.items()}


def test_demo_methods_give_what_their_definitions_imply(demo_cfg):
    """On every demo role: the views' row predicts with the views' vote, vanilla with the
    inference clip alone, ZERO with vote shares of its kept candidates (int(49 x gamma) of
    them), ZAR's file the cell of Table 1's ZAR run on that split (one evaluation); every result holds its
    calibration and cost; TDA records its three orders."""
    from zar.method.settings import load_settings

    results = table6_results(demo_cfg)
    gamma = load_settings().methods["zero"].gamma
    k = int(49 * gamma)
    for (method, dataset), path in results.items():
        s = json.loads(path.read_text())
        assert s["method"] == method and s["ece"] is not None and s["nll"] is not None and s["ms_per_video"] > 0
        p = load_predictions(path)
        if method == "vanilla":
            assert np.array_equal(p["logits_after"], p["logits_before"])
        if method == "views":
            assert np.array_equal(p["logits_after"], p["logits_ensemble"])
        if method == "zero":
            shares = np.exp(p["logits_after"]) / np.exp(p["logits_after"]).sum(1, keepdims=True)
            assert np.allclose(shares * k, np.round(shares * k), atol=1e-3)  # whole votes of k candidates
            recs = [json.loads(line) for line in path.with_suffix(".jsonl").read_text().splitlines()]
            assert all(len(r["kept_views"]) == k for r in recs)
        if method == "zar":
            assert plan.TableJobs(demo_cfg).zeroshot(dataset, "zar", 1) == str(path.relative_to(DEMO))  # Table 1's cell
        if method == "tda":
            assert [o["seed"] for o in s["orders"]] == [0, 1, 2]
    for dataset in demo_cfg["testtime"]["datasets"]:
        vanilla = predict(load_predictions(results["vanilla", dataset])["logits_after"])
        for method in ("views", "zero"):  # the vote-based methods use the views the clip misses
            assert (predict(load_predictions(results[method, dataset])["logits_after"]) != vanilla).any(), method


def test_demo_zero_predicts_the_most_voted_class_of_its_kept_views(demo_cfg, monkeypatch, tmp_path):
    """ZERO on every demo role, recomputed for every video from the cached view embeddings and
    the stored inference-clip logits: its kept candidates are the int(49 gamma) of lowest
    entropy, and its prediction is the class most of them vote for."""
    from zar.core.splitfiles import read_classes
    from zar.jobs.tune import select_views
    from zar.method.cache import open_caches
    from zar.method.settings import load_settings
    from zar.method.testtime import build
    from zar.model.backbone import build_model

    monkeypatch.chdir(DEMO)
    results = table6_results(demo_cfg)
    for dataset in demo_cfg["testtime"]["datasets"]:
        s = json.loads(results["zero", dataset].read_text())
        (tmp_path / "s.yaml").write_text(yaml.safe_dump({k: s["settings"][k] for k in ("views", "tune", "run", "zero")}))
        settings = load_settings(tmp_path / "s.yaml")
        cache = open_caches([v["path"] for k, v in s["inputs"].items() if k.startswith("embeddings")])
        views_at = select_views(cache, settings.views)
        model, _ = build_model(s["backbone"])
        texts = list(read_classes(s["inputs"]["classes"]["path"]).texts)
        text = build("vanilla", model, texts, settings, "cpu").classifier().double()
        scale = float(model.logit_scale.detach().exp())
        row = {v: i for i, v in enumerate(cache.video_ids)}
        # float32 logits of unit vectors at scale 100: off by < D x 2^-24 x scale each; stored to 5 decimals
        tol = text.shape[1] * 2.0 ** -24 * scale + 1e-5
        k = int((1 + len(views_at)) * settings.methods["zero"].gamma)
        for rec in map(json.loads, results["zero", dataset].with_suffix(".jsonl").read_text().splitlines()):
            i = row[rec["video_id"]]
            views = cache.views[i, views_at].double() @ text.t() * scale
            infer = cache.infer[i].double() @ text.t() * scale
            assert np.allclose(infer.numpy(), rec["logits_before"], atol=tol)  # the same classifier as the job's
            cand = torch.cat([infer[None], views]).numpy()  # candidate 0 = the inference clip (kept_views -1)
            p = np.exp(cand - cand.max(1, keepdims=True))
            p /= p.sum(1, keepdims=True)
            h = -(p * np.log(p)).sum(1)
            kept = np.array(rec["kept_views"]) + 1
            rest = np.setdiff1d(np.arange(len(cand)), kept)
            assert len(kept) == k and h[kept].max() <= h[rest].min() + 10 * tol  # the lowest entropies
            votes = np.bincount(cand[kept].argmax(1), minlength=len(texts))
            assert votes[int(np.argmax(rec["logits_after"]))] == votes.max(), rec["video_id"]
