"""The demo's tuning does its job, and the check that says so fails when the method breaks.

These read the demo's results (`snakemake --cores all --directory demo all`, which CI runs
before the tests); without them they fail and say so. The mutation tests rerun one of the
demo's tuning jobs (`zar tune` on its cached embeddings, a second or two) with the method
broken on purpose and show that :func:`zar.analysis.tuning_check` then fails.
"""
import json
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

import zar.tta
import zar.workflow as plan
from demo_results import DEMO, demo_config, require
from zar.analysis import load_predictions, tuning_check
from zar.cli import main


@pytest.fixture(scope="module")
def demo_cfg():
    return demo_config()


def zar_results(cfg) -> list[Path]:
    """The demo's Table 1 results tuned with ZAR (one per dataset and split)."""
    zs = cfg["zeroshot"]
    runs = [name for name, run in zs["runs"].items() if run.get("method", "zar") == "zar"]
    paths = [plan.zeroshot_result(cfg, d, r, s) for r in runs for d in zs["datasets"] for s in zs["splits"]]
    require(paths)
    return [DEMO / p for p in paths]


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


def test_demo_tuning_moves_the_inference_clip_toward_the_views_vote(demo_cfg):
    report = {}
    for path in zar_results(demo_cfg):
        report[str(path.relative_to(DEMO))] = tuning_check(load_predictions(path))
    failed = {k: v for k, v in report.items() if not v["ok"]}
    assert not failed, f"test-time tuning did not move the predictions toward the views' vote: {failed}"


# --------------------------------------------------------------------------- mutation runs
def rerun(summary_path: Path, out: Path) -> Path:
    """`zar tune` again with a result's recorded inputs and settings (run from demo/)."""
    s = json.loads(summary_path.read_text())
    out.parent.mkdir(parents=True, exist_ok=True)
    config = out.parent / "settings.yaml"
    config.write_text(yaml.safe_dump({k: s["settings"][k] for k in ("views", "tune", "run")}))
    inputs = s["inputs"]
    embeddings = [inputs[k]["path"] for k in sorted(inputs) if k.startswith("embeddings_")]
    backbone = json.dumps(s["backbone"])  # the full recorded spec
    argv = ["tune", "--embeddings", *embeddings, "--videos", inputs["videos"]["path"],
            "--classes", inputs["classes"]["path"], "--backbone", backbone, "--method", s["method"],
            "--out", str(out), "--label", s["label"], "--config", str(config)]
    assert main(argv) == 0
    return out


def unused_prompt(monkeypatch):
    """The tuned context is thrown away: the inference clip is scored with the initial one."""
    text = zar.tta.Tuner.text
    monkeypatch.setattr(zar.tta.Tuner, "text", lambda self, ctx=None: text(self, None))


def flipped_sign(monkeypatch):
    """The step climbs the entropy instead of descending it."""
    entropy = zar.tta.marginal_entropy
    monkeypatch.setattr(zar.tta, "marginal_entropy", lambda logits: -entropy(logits))


def zero_lr(monkeypatch):
    """tune.lr = 0 (the settings refuse it, so the optimiser is handed 0 behind their back)."""
    adamw = torch.optim.AdamW
    monkeypatch.setattr(zar.tta.torch.optim, "AdamW",
                        lambda params, lr, weight_decay: adamw(params, lr=0.0, weight_decay=weight_decay))


@pytest.fixture(scope="module")
def one_result(demo_cfg):
    return zar_results(demo_cfg)[0]


def test_rerun_reproduces_the_demo(one_result, tmp_path, monkeypatch):
    """Unbroken, the rerun gives the demo's own predictions and passes the check."""
    monkeypatch.chdir(DEMO)
    out = rerun(one_result, tmp_path / "res" / "split.json")
    demo, again = load_predictions(one_result), load_predictions(out)
    assert again["video_ids"] == demo["video_ids"]
    for key in ("logits_before", "logits_after", "logits_ensemble"):
        np.testing.assert_allclose(again[key], demo[key], atol=2e-5)
    assert tuning_check(again)["ok"]


@pytest.mark.parametrize("mutation", [unused_prompt, flipped_sign, zero_lr], ids=lambda f: f.__name__)
def test_check_fails_when_the_method_breaks(mutation, one_result, tmp_path, monkeypatch):
    monkeypatch.chdir(DEMO)
    mutation(monkeypatch)
    result = tuning_check(load_predictions(rerun(one_result, tmp_path / "res" / "split.json")))
    assert not result["ok"], f"{mutation.__name__}: the check still passes: {result}"
    assert result["share_up"] < 0.2
