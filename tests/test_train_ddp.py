"""Two CPU processes (torchrun, gloo) train like one process with the same global batch."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from _train_data import make_dataset, write_recipe
from zar.cli import main

ROOT = Path(__file__).resolve().parents[1]
TORCHRUN = Path(sys.executable).with_name("torchrun")
# The two runs sum the same per-clip gradients in another order: in fp32 a sum of n <= 8 terms
# reordered moves by at most n * 2^-24 (5e-7) of the terms' magnitude. Adam's first step is
# lr * sign(g), the same unless a gradient is zero to that precision; each later step moves by
# lr times a ratio of moments that the reordering changes by about as little. Over STEPS steps
# of LR the weights then differ by far less than STEPS * LR * 2.5e-2 (a margin of 5e4 over the
# reordering's relative error), the tolerance used (1e-5), for the losses too.
STEPS, LR = 4, 1e-4  # the tiny recipe's lr, 4 optimizer steps (checked below)
ATOL = STEPS * LR * 2.5e-2


def _args(data, out, recipe, *extra):
    return ["train", "--videos", str(data["videos"]), "--classes", str(data["classes"]), "--root", str(data["root"]),
            "--ext", ".mp4", "--backbone", "tiny", "--recipe", str(recipe), "--out", str(out), *extra]


def test_two_gloo_processes_match_one_process(tmp_path):
    from safetensors.torch import load_file

    if not TORCHRUN.is_file():
        pytest.fail(f"torchrun not found beside {sys.executable}")
    data = make_dataset(tmp_path / "data", broken=("v_tall_bar_02",))
    recipe = write_recipe(tmp_path / "recipe.yaml", num_workers=0)  # global batch 8, mixup and cutmix on
    one = tmp_path / "one"
    assert main(_args(data, one, recipe, "--micro-batch", "4")) == 0  # 1 process x 4 clips x 2 rounds
    two = tmp_path / "two"
    env = {**os.environ, "PYTHONPATH": str(ROOT), "OMP_NUM_THREADS": "1"}
    proc = subprocess.run(
        [str(TORCHRUN), "--standalone", "--nproc_per_node", "2", "-m", "zar", "train",
         *_args(data, two, recipe, "--micro-batch", "2", "--workers", "1")[1:]],  # 2 processes x 2 clips x 2 rounds
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert proc.returncode == 0, proc.stdout[-3000:] + proc.stderr[-3000:]
    cfg = json.loads((two / "train_config.json").read_text())
    assert cfg["layout"] == {"batch_size": 8, "micro": 2, "world": 2, "accum": 2}

    log1 = [json.loads(x) for x in (one / "train_log.jsonl").read_text().splitlines()]
    log2 = [json.loads(x) for x in (two / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log1] == [r["step"] for r in log2] == list(range(1, STEPS + 1))
    assert json.loads((one / "train_config.json").read_text())["recipe"]["lr"] == LR
    for a, b in zip(log1, log2):
        assert b["loss"] == pytest.approx(a["loss"], abs=ATOL), (a, b)
    w1, w2 = load_file(str(one / "model.safetensors")), load_file(str(two / "model.safetensors"))
    assert w1.keys() == w2.keys()
    # The attention key bias (middle third of in_proj_bias) has an exactly zero gradient
    # (softmax ignores a constant added to all scores): its computed gradient is rounding
    # noise, which Adam normalises to steps of about lr, so it only obeys Adam's bound.
    worst, key_bias = 0.0, 0.0
    for k in w1:
        diff = (w1[k] - w2[k]).abs()
        if k.endswith("attn.in_proj_bias"):
            n = diff.numel() // 3
            key_bias = max(key_bias, float(diff[n:2 * n].max()))
            diff = torch.cat([diff[:n], diff[2 * n:]])
        worst = max(worst, float(diff.max()))
    assert worst < ATOL, f"largest weight difference {worst:.3g}"
    assert key_bias <= 2 * 1e-4 * 4 * 1.01  # 2 x lr x steps
    # the gradients agree: Adam's first moments match to float tolerance
    from zar.train.checkpoint import load_state

    m1 = load_state(one / "state" / "step_00000004.pt")["optimizer"]["state"]
    m2 = load_state(two / "state" / "step_00000004.pt")["optimizer"]["state"]
    for i in m1:
        ref = m1[i]["exp_avg"]
        assert torch.allclose(m2[i]["exp_avg"], ref, rtol=1e-3, atol=1e-4 * float(ref.abs().max()) + 1e-12)
    # both runs met the undecodable video (once per epoch) and replaced it
    meta1, meta2 = (json.loads((d / "model.json").read_text()) for d in (one, two))
    assert meta1["skipped"] == meta2["skipped"]
    assert list(meta1["skipped"]["list"]) == ["v_tall_bar_02"] and meta1["skipped"]["events"] == 2
    # the tolerance is meaningful: training moved the weights far more than the runs differ
    mid = load_state(one / "state" / "step_00000002.pt")["model"]
    assert max(float((mid[k] - w1[k]).abs().max()) for k in w1) > 100 * worst
    assert len(load_state(two / "state" / "step_00000004.pt")["rng"]) == 2  # one RNG state per process
