"""`zar train` on the CPU: tiny model, synthetic videos made here.

Checks the recipe, the sampling/augmentation/mixing maths against re-implementations,
that training lowers the loss, that resuming gives bit-identical weights, that the output
is a backbone for `zar evaluate`, and that state files holding other objects are refused.
"""
from __future__ import annotations

import dataclasses
import json
import math
import shutil
from pathlib import Path

import numpy as np
import pytest
import torch

from _train_data import make_dataset, write_recipe
from zar.cli import main
from zar.core.errors import UserError

BROKEN = "v_cross_03"


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return make_dataset(tmp_path_factory.mktemp("train_data"), broken=(BROKEN,))


def train_args(data, out, recipe, *extra):
    return ["train", "--videos", str(data["videos"]), "--classes", str(data["classes"]),
            "--root", str(data["root"]), "--ext", ".mp4", "--backbone", "tiny",
            "--recipe", str(recipe), "--out", str(out), *extra]


def load_weights(path: Path) -> dict[str, torch.Tensor]:
    from safetensors.torch import load_file

    return load_file(str(path))


def assert_same_weights(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    diff = [k for k in a if not torch.equal(a[k], b[k])]
    assert not diff, f"{len(diff)} tensors differ, e.g. {diff[:3]}"


def log_losses(out: Path) -> list[float]:
    return [json.loads(line)["loss"] for line in (out / "train_log.jsonl").read_text().splitlines()]


# ----------------------------------------------------------------------------- recipe
def test_recipe_presets_follow_the_protocol():
    from zar.train.recipe import load_recipe

    k = load_recipe("k400")
    assert (k.epochs, k.lr, k.batch_size, k.frames) == (10, 8e-6, 256, 16)
    assert (k.betas, k.weight_decay, k.min_lr_ratio, k.warmup_epochs) == ((0.9, 0.98), 0.001, 0.01, 5.0)
    assert (k.label_smoothing, k.mixup_alpha, k.cutmix_alpha, k.mix_switch_prob) == (0.1, 0.8, 1.0, 0.5)
    assert (k.color_jitter_p, k.grayscale_p, k.crop_scales) == (0.8, 0.2, (1.0, 0.875, 0.75, 0.66))
    assert k.prompt == "a photo of a {c}."
    b = load_recipe("b2n")
    assert (b.epochs, b.lr, b.batch_size, b.frames) == (11, 2e-6, 64, 16)  # same clip length as K400


def test_recipe_yaml_overrides_and_errors(tmp_path):
    from zar.train.recipe import load_recipe

    ok = tmp_path / "ok.yaml"
    ok.write_text("base: b2n\nlr: 1.0e-5\nframes: 32\ncrop_scales: [1, 0.5]\n")
    r = load_recipe(ok)
    assert (r.epochs, r.lr, r.frames, r.crop_scales) == (11, 1e-5, 32, (1.0, 0.5))
    bad = tmp_path / "bad.yaml"
    bad.write_text("lr: 1.0e-5\nlearning_rate: 3\n")
    with pytest.raises(UserError, match="learning_rate"):
        load_recipe(bad)
    wrong = tmp_path / "wrong.yaml"
    wrong.write_text("epochs: ten\n")
    with pytest.raises(UserError, match="epochs must be an integer"):
        load_recipe(wrong)
    with pytest.raises(UserError, match="not a preset"):
        load_recipe(tmp_path / "missing.yaml")


# ----------------------------------------------------------------------------- maths
@pytest.mark.parametrize("n,t", [(100, 16), (16, 16), (7, 16), (1, 4), (301, 8)])
def test_segment_indices_one_per_segment(n, t):
    from zar.train.augment import segment_indices

    idx = segment_indices(n, t, seed=3)
    assert idx == segment_indices(n, t, seed=3)
    assert len(idx) == t
    for i, v in enumerate(idx):
        lo, hi = i * n // t, (i + 1) * n // t
        assert 0 <= v < n
        assert (lo <= v < hi) if hi > lo else v == min(lo, n - 1)
    if n >= 4 * t:  # random offsets: another seed moves some index
        assert any(segment_indices(n, t, seed=s) != idx for s in range(4, 8))


def test_lr_follows_vifi_clips_timm_schedule_step_for_step(data, tmp_path):
    """8 optimizer steps, 4 of warm-up: the lr of each step, as logged, is ViFi-CLIP's.

    ViFi-CLIP: timm CosineLRScheduler(t_initial=8, lr_min=lr/100, warmup_lr_init=0, warmup_t=4,
    t_in_epochs=False), step_update(s) after step s; so step s runs at the value for s - 1:
    warm-up lr * t / 4, then lr_min + (lr - lr_min)(1 + cos(pi t / 8)) / 2 of the WHOLE run.
    """
    lr = 1e-3
    recipe = write_recipe(tmp_path / "r.yaml", epochs=4, warmup_epochs=2.0, lr=lr, min_lr_ratio=0.01,
                          num_workers=0, mixup_alpha=0.0, cutmix_alpha=0.0)
    out = tmp_path / "run"
    assert main(train_args(data, out, recipe)) == 0
    got = [json.loads(line)["lr"] for line in (out / "train_log.jsonl").read_text().splitlines()]
    lo = lr / 100
    # written out by hand: t = step - 1; steps 0 and 1 run at t = 0 (lr 0)
    want = [0.0, 0.0, lr * 1 / 4, lr * 2 / 4, lr * 3 / 4,
            lo + (lr - lo) * (1 + math.cos(math.pi * 4 / 8)) / 2,   # end of warm-up: about lr / 2
            lo + (lr - lo) * (1 + math.cos(math.pi * 5 / 8)) / 2,
            lo + (lr - lo) * (1 + math.cos(math.pi * 6 / 8)) / 2]   # the last step
    assert len(got) == 8
    assert got == pytest.approx(want, rel=1e-12, abs=1e-15)
    assert want[5] == pytest.approx(0.505 * lr)  # half the peak right after warm-up: no restart


def test_token_embedding_is_not_trained_everything_else_is(data, tmp_path):
    """ViFi-CLIP keeps the word table fixed (its prompts' embeddings are a buffer) and trains
    both towers, the projections, the positional embeddings and logit_scale."""
    from zar.model.backbone import build_model
    from zar.core.files import stable_int
    from zar.train.recipe import load_recipe

    recipe = write_recipe(tmp_path / "r.yaml", epochs=1, warmup_epochs=0.0, lr=1e-3, num_workers=0)
    out = tmp_path / "run"
    assert main(train_args(data, out, recipe)) == 0
    torch.manual_seed(stable_int(load_recipe(recipe).seed, "init"))  # the run's initial weights
    init, _ = build_model("tiny")
    before = {k: v for k, v in init.state_dict().items()}
    after = load_weights(out / "model.safetensors")
    assert torch.equal(after["token_embedding.weight"], before["token_embedding.weight"])
    trained = [n for n, p in init.named_parameters() if n != "token_embedding.weight"]
    assert "logit_scale" in trained and "positional_embedding" in trained and "text_projection" in trained
    unchanged = [n for n in trained if torch.equal(after[n], before[n])]
    assert not unchanged, f"parameters that did not move: {unchanged}"


def test_soft_targets_and_cross_entropy():
    from zar.train.augment import soft_cross_entropy, soft_targets

    y = soft_targets(torch.tensor([2, 0]), 4, 0.1)
    expect = torch.full((2, 4), 0.025)
    expect[0, 2] = expect[1, 0] = 0.925
    assert torch.allclose(y, expect)
    z = torch.randn(2, 4)
    ref = torch.stack([-(y[i] * torch.log(torch.exp(z[i]) / torch.exp(z[i]).sum())).sum() for i in range(2)])
    assert torch.allclose(soft_cross_entropy(z, y), ref, atol=1e-6)


@pytest.mark.parametrize("mode", ["mixup", "cutmix"])
def test_mixing_within_pairs(mode):
    from zar.train.augment import mix_batch, soft_targets
    from zar.train.recipe import make_recipe

    r = make_recipe({"mixup_alpha": 0.8 if mode == "mixup" else 0.0, "cutmix_alpha": 1.0 if mode == "cutmix" else 0.0})
    b, k = 6, 6
    clips = torch.stack([torch.full((2, 3, 10, 12), float(i)) for i in range(b)])
    y = soft_targets(torch.arange(b), k, 0.0)
    pos = torch.arange(4, 4 + b)
    mx, my = mix_batch(clips, y, pos, seed=1, epoch=2, step=3, recipe=r)
    for i in range(0, b, 2):
        for me, other in ((i, i + 1), (i + 1, i)):
            lam = float(my[me, me])
            assert float(my[me, other]) == pytest.approx(1 - lam) and float(my[me].sum()) == pytest.approx(1.0)
            if mode == "mixup":
                assert torch.allclose(mx[me], torch.full_like(mx[me], lam * me + (1 - lam) * other))
            else:  # a box of the partner's pixels whose area is 1 - lam, the same in every frame
                from_other = (mx[me] == other).float().mean()
                assert float(from_other) == pytest.approx(1 - lam, abs=1e-6)
                assert torch.equal(mx[me, 0], mx[me, 1])
    # the same pairs mixed in two halves (another split of the batch) give the same result
    hx = torch.cat([mix_batch(clips[:2], y[:2], pos[:2], 1, 2, 3, r)[0], mix_batch(clips[2:], y[2:], pos[2:], 1, 2, 3, r)[0]])
    assert torch.equal(hx, mx)
    with pytest.raises(ValueError, match="whole pairs"):
        mix_batch(clips[1:3], y[1:3], pos[1:3], 1, 2, 3, r)


def test_step_plan_does_not_depend_on_the_split():
    from zar.train.data import Layout, StepBatches

    n, batch = 37, 8

    def per_step(micro, world):
        lay = Layout.make(batch, micro, world, mixing=True)
        steps: dict[int, set] = {}
        for rank in range(world):
            plan = StepBatches(n, lay, rank, seed=5, epoch=1)
            for i, mb in enumerate(plan):
                steps.setdefault(i // lay.accum, set()).update((v, p) for _, v, p in mb)
        return steps

    ref = per_step(8, 1)
    assert len(ref) == n // batch and all(len(s) == batch for s in ref.values())
    assert per_step(4, 1) == ref == per_step(4, 2) == per_step(2, 2) == per_step(2, 4)
    used = [v for s in ref.values() for v, _ in s]
    assert len(used) == len(set(used))  # each video at most once per epoch
    def first_step(epoch):
        return [v for _, v, _ in next(iter(StepBatches(n, Layout.make(batch, 8, 1, True), 0, seed=5, epoch=epoch)))]

    assert first_step(1) == first_step(1) != first_step(2)
    with pytest.raises(UserError, match="multiple"):
        Layout.make(8, 3, 1, mixing=False)
    with pytest.raises(UserError, match="even"):
        Layout.make(6, 3, 1, mixing=True)


def test_clip_augmentation_is_shared_by_all_frames_and_in_bounds():
    from zar.model.backbone import CLIP_MEAN, CLIP_STD
    from zar.train.augment import clip_generator, apply_clip_aug, sample_clip_aug
    from zar.train.recipe import make_recipe

    r = make_recipe({})
    frame = np.random.default_rng(0).integers(0, 256, (48, 64, 3), dtype=np.uint8)
    frames = np.stack([frame] * 5)
    seen_flip, seen_gray = set(), set()
    for s in range(40):
        aug = sample_clip_aug(48, 64, 32, r, clip_generator("t", s))
        top, left, h, w = aug.box
        assert 0 <= top and 0 <= left and top + h <= 48 and left + w <= 64 and h > 0 and w > 0
        seen_flip.add(aug.flip)
        seen_gray.add(aug.gray)
        out = apply_clip_aug(frames, aug, 32, CLIP_MEAN, CLIP_STD)
        assert out.shape == (5, 3, 32, 32) and out.dtype == torch.float32
        assert all(torch.equal(out[0], out[i]) for i in range(1, 5))
        if aug.gray:
            assert torch.allclose(out[0, 0] * CLIP_STD[0] + CLIP_MEAN[0], out[0, 1] * CLIP_STD[1] + CLIP_MEAN[1], atol=1e-5)
    assert seen_flip == {True, False} and seen_gray == {True, False}
    # no augmentation: a full-frame crop of the centre square, resized, then CLIP-normalised
    plain = make_recipe({"crop_scales": [1.0], "flip_p": 0.0, "color_jitter_p": 0.0, "grayscale_p": 0.0})
    aug = sample_clip_aug(48, 64, 48, plain, clip_generator("t", 0))
    assert aug.box[2] == 48 and aug.box[3] == 48
    out = apply_clip_aug(frames, aug, 48, CLIP_MEAN, CLIP_STD)
    top, left = aug.box[:2]
    ref = torch.from_numpy(frame[top:top + 48, left:left + 48]).permute(2, 0, 1).float() / 255
    ref = (ref - torch.tensor(CLIP_MEAN).view(3, 1, 1)) / torch.tensor(CLIP_STD).view(3, 1, 1)
    assert torch.allclose(out[0], ref, atol=1e-5)


def test_hue_rotation_keeps_luma_and_greys_and_turns_like_torchvision():
    from torchvision.transforms.v2 import functional as TF

    from zar.train.augment import rotate_hue

    x = 0.25 + 0.5 * torch.rand(2, 3, 8, 8)  # mid-range colours: no clamping
    assert torch.equal(rotate_hue(x, 0.0), x)
    luma = torch.tensor([0.299, 0.587, 0.114]).view(1, 3, 1, 1)
    for f in (0.05, -0.1, 0.3):
        y = rotate_hue(x, f)
        inside = ((y > 0) & (y < 1)).all(1)  # pixels the [0, 1] clamp left alone
        assert inside.float().mean() > 0.5
        assert torch.allclose((y * luma).sum(1)[inside], (x * luma).sum(1)[inside], atol=1e-5)
        assert (y - TF.adjust_hue(x, f)).abs().mean() < (y - TF.adjust_hue(x, -f)).abs().mean()
    grey = torch.full((1, 3, 4, 4), 0.4)
    assert torch.allclose(rotate_hue(grey, 0.2), grey, atol=1e-6)
    small = 0.4 + 0.2 * torch.rand(2, 3, 8, 8)
    assert torch.allclose(rotate_hue(rotate_hue(small, 0.05), -0.05), small, atol=1e-5)


def test_dataset_is_deterministic_and_replaces_undecodable_videos(data):
    from zar.train.data import TrainClips, load_training_list
    from zar.train.recipe import make_recipe

    r = make_recipe({"frames": 4})
    classes, items = load_training_list(data["videos"], data["classes"], data["root"], ".mp4")
    ds = TrainClips(items, r, 32, (0.5,) * 3, (0.25,) * 3)
    a, b = ds[(1, 0, 0)], ds[(1, 0, 0)]
    assert torch.equal(a["clip"], b["clip"]) and a["label"] == 0 and a["skipped"] == []
    assert not torch.equal(a["clip"], ds[(2, 0, 0)]["clip"])  # another epoch, another draw
    broken = [i for i, it in enumerate(items) if it.video_id == BROKEN][0]
    got = ds[(1, broken, 5)]
    assert got["skipped"] and got["skipped"][0][0] == BROKEN
    assert got["clip"].shape == (4, 3, 32, 32) and got["position"] == 5
    assert torch.equal(got["clip"], ds[(1, broken, 5)]["clip"])  # the replacement is deterministic


# ----------------------------------------------------------------------------- training runs
@pytest.fixture(scope="module")
def full_run(data, tmp_path_factory):
    """2 epochs x 2 steps, mixing on, 2 accumulation rounds, in-process data loading."""
    tmp = tmp_path_factory.mktemp("full")
    recipe = write_recipe(tmp / "recipe.yaml", num_workers=0)
    out = tmp / "run"
    assert main(train_args(data, out, recipe)) == 0
    return {"out": out, "recipe": recipe, "tmp": tmp}


def test_training_lowers_the_loss(data, tmp_path):
    """10 steps on 8 videos: the logged loss and the loss of a fixed batch both fall."""
    from zar.model.backbone import build_model
    from zar.train.augment import soft_cross_entropy, soft_targets
    from zar.train.data import TrainClips, class_prompts, collate, load_training_list
    from zar.train.loop import VideoCLIP
    from zar.train.recipe import load_recipe
    from zar.core.files import stable_int

    lines = data["videos"].read_text().splitlines()
    small = tmp_path / "train8.csv"
    small.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if "_00," in ln or "_01," in ln]) + "\n")
    recipe = write_recipe(tmp_path / "r.yaml", epochs=10, micro_batch=8, lr=1e-4, warmup_epochs=0.0,
                          mixup_alpha=0.0, cutmix_alpha=0.0, label_smoothing=0.0, color_jitter_p=0.0,
                          grayscale_p=0.0, num_workers=0)
    out = tmp_path / "run"
    args = train_args(data, out, recipe)
    args[args.index("--videos") + 1] = str(small)
    assert main(args) == 0
    losses = log_losses(out)
    assert len(losses) == 10 and all(math.isfinite(x) for x in losses)
    assert np.mean(losses[-3:]) < np.mean(losses[:3]) - 0.05, losses

    r = load_recipe(recipe)
    classes, items = load_training_list(small, data["classes"], data["root"], ".mp4")
    import open_clip

    tokens = open_clip.get_tokenizer("ZAR-Tiny")(class_prompts(classes, r.prompt))

    def loss_of(spec):
        torch.manual_seed(stable_int(r.seed, "init"))  # the training run's initial weights for "tiny"
        model, pre = build_model(spec)
        batch = collate([TrainClips(items, r, pre.image_size, pre.mean, pre.std)[(99, i, i)] for i in range(len(items))])
        with torch.no_grad():
            logits = VideoCLIP(model)(batch["clips"], tokens)
        return float(soft_cross_entropy(logits, soft_targets(batch["labels"], len(classes), 0.0)).mean())

    before, after = loss_of("tiny"), loss_of(str(out))
    assert after < before - 0.05, (before, after)


def test_resume_after_an_epoch_is_bit_identical(data, full_run, tmp_path):
    out = tmp_path / "run"
    recipe = full_run["recipe"]
    # stop after epoch 1 (with 2 loader workers: the data must not depend on the worker count)
    assert main(train_args(data, out, recipe, "--stop-after-epoch", "1", "--workers", "2")) == 0
    assert not (out / "model.safetensors").exists()
    states = sorted(p.name for p in (out / "state").iterdir())
    assert states == ["step_00000002.pt"]
    # a changed recipe is refused, not mixed into the run
    changed = write_recipe(tmp_path / "changed.yaml", num_workers=0, lr=5e-4)
    assert main(train_args(data, out, changed, "--resume")) == 2
    # without --resume the directory is protected
    assert main(train_args(data, out, recipe)) == 2
    assert main(train_args(data, out, recipe, "--resume", "--workers", "2")) == 0
    assert_same_weights(load_weights(out / "model.safetensors"), load_weights(full_run["out"] / "model.safetensors"))
    assert log_losses(out) == log_losses(full_run["out"])
    meta = json.loads((out / "model.json").read_text())
    ref = json.loads((full_run["out"] / "model.json").read_text())
    assert meta["skipped"]["list"] == ref["skipped"]["list"]
    assert list(ref["skipped"]["list"]) == [BROKEN] and ref["skipped"]["events"] == 2  # once per epoch
    # a finished run is left alone
    assert main(train_args(data, out, recipe, "--resume")) == 0


def test_frame_cache_gives_the_same_run(data, full_run, tmp_path):
    """recipe.cache_frames (decode each video once, keep it in memory) changes speed only."""
    recipe = write_recipe(tmp_path / "cached.yaml", num_workers=0, cache_frames=True)
    out = tmp_path / "run"
    assert main(train_args(data, out, recipe)) == 0
    assert_same_weights(load_weights(out / "model.safetensors"), load_weights(full_run["out"] / "model.safetensors"))
    assert log_losses(out) == log_losses(full_run["out"])


def test_resume_mid_epoch_is_bit_identical(data, full_run, tmp_path):
    from zar.train.checkpoint import load_state
    from zar.train.loop import TrainJob, train
    from zar.train.recipe import load_recipe

    out = tmp_path / "run"
    r = load_recipe(full_run["recipe"])
    job = TrainJob(videos=data["videos"], classes=data["classes"], root=data["root"], out=out, recipe=r,
                   backbone="tiny", ext=".mp4", stop_after_steps=3)
    assert train(job) == 0
    assert sorted(p.name for p in (out / "state").iterdir()) == ["step_00000002.pt", "step_00000003.pt"]
    assert train(dataclasses.replace(job, stop_after_steps=None, resume=True)) == 0
    assert_same_weights(load_weights(out / "model.safetensors"), load_weights(full_run["out"] / "model.safetensors"))
    a, b = load_state(out / "state" / "step_00000004.pt"), load_state(full_run["out"] / "state" / "step_00000004.pt")
    for k, v in a["optimizer"]["state"].items():
        assert torch.equal(v["exp_avg"], b["optimizer"]["state"][k]["exp_avg"])
        assert torch.equal(v["exp_avg_sq"], b["optimizer"]["state"][k]["exp_avg_sq"])


def test_stop_signal_drops_the_step_in_flight_and_resumes_exactly(data, full_run, tmp_path, monkeypatch):
    """SIGTERM during step 4 (as SLURM or torchrun send before a kill): state of step 3, exit 75."""
    import os
    import signal

    from zar.train import loop

    real_set_step_lr = loop.set_step_lr

    def set_step_lr_with_signal(scheduler, step):
        if step == 3:
            os.kill(os.getpid(), signal.SIGTERM)  # the handler runs before this returns
        return real_set_step_lr(scheduler, step)

    out = tmp_path / "run"
    monkeypatch.setattr(loop, "set_step_lr", set_step_lr_with_signal)
    assert main(train_args(data, out, full_run["recipe"])) == loop.EXIT_STOPPED
    monkeypatch.setattr(loop, "set_step_lr", real_set_step_lr)
    assert sorted(p.name for p in (out / "state").iterdir()) == ["step_00000002.pt", "step_00000003.pt"]
    assert [json.loads(x)["step"] for x in (out / "train_log.jsonl").read_text().splitlines()] == [1, 2, 3]
    assert signal.getsignal(signal.SIGTERM) is signal.SIG_DFL  # the handler is removed afterwards
    assert main(train_args(data, out, full_run["recipe"], "--resume")) == 0
    assert_same_weights(load_weights(out / "model.safetensors"), load_weights(full_run["out"] / "model.safetensors"))


def test_checkpoint_is_a_backbone_with_the_trained_weights(data, full_run):
    import open_clip

    from zar.model.backbone import build_model, parse_spec, register_configs
    from zar.train.checkpoint import load_state

    out = full_run["out"]
    spec = parse_spec(str(out))
    assert spec.arch == "ZAR-Tiny" and spec.pretrained == str(out / "model.safetensors")
    model, pre = build_model(str(out))
    state = load_state(out / "state" / "step_00000004.pt")["model"]
    got = model.state_dict()
    assert_same_weights({k: got[k] for k in state}, state)
    register_configs()
    ref = open_clip.create_model("ZAR-Tiny", pretrained=None)
    ref.load_state_dict(state)
    ref.eval()
    x = torch.randn(3, 3, pre.image_size, pre.image_size)
    tok = open_clip.get_tokenizer("ZAR-Tiny")(["a photo of a square.", "a photo of a cross."])
    with torch.no_grad():
        assert torch.equal(model.encode_image(x), ref.encode_image(x))
        assert torch.equal(model.encode_text(tok), ref.encode_text(tok))
    meta = json.loads((out / "model.json").read_text())
    assert meta["quick_gelu"] is False and meta["recipe"]["frames"] == 4 and meta["steps"] == 4


def test_checkpoint_round_trips_into_evaluate(data, full_run, tmp_path):
    """`zar evaluate --backbone DIR` uses the trained weights: the same logits as those
    weights written independently here, different logits from the initial weights."""
    from safetensors.torch import save_file

    from zar.train.checkpoint import load_state

    out = full_run["out"]
    lines = data["videos"].read_text().splitlines()
    small = tmp_path / "eval.csv"
    small.write_text("\n".join([lines[0]] + [ln for ln in lines[1:] if "_00," in ln]) + "\n")

    def handmade(name, state):
        d = tmp_path / name
        d.mkdir()
        save_file({k: v.contiguous() for k, v in state.items()}, str(d / "model.safetensors"))
        (d / "model.json").write_text(json.dumps({"arch": "ZAR-Tiny", "quick_gelu": False}))
        return d

    trained = handmade("trained", load_state(out / "state" / "step_00000004.pt")["model"])
    from zar.model.backbone import build_model
    from zar.core.files import stable_int

    torch.manual_seed(stable_int(1024, "init"))
    init_state = build_model("tiny")[0].state_dict()
    initial = handmade("initial", init_state)

    def evaluate(backbone, name):
        res = tmp_path / name
        rc = main(["evaluate", "--videos", str(small), "--classes", str(data["classes"]), "--root", str(data["root"]),
                   "--ext", ".mp4", "--backbone", str(backbone), "--method", "vanilla", "--out", str(res),
                   "--set", "run.workers=0"])
        assert rc == 0
        recs = [json.loads(x) for x in (res / "predictions.jsonl").read_text().splitlines() if x.strip()]
        recs = [r for r in recs if "video_id" in r]
        assert len(recs) == 4
        return {r["video_id"]: r["logits_before"] for r in recs}

    ours = evaluate(out, "eval_run")
    assert ours == evaluate(trained, "eval_handmade")
    assert ours != evaluate(initial, "eval_initial")


def test_state_file_with_a_pickled_object_is_refused(data, full_run, tmp_path, capsys):
    from zar.train.checkpoint import load_state

    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    out = tmp_path / "run"
    (out / "state").mkdir(parents=True)
    shutil.copy(full_run["out"] / "state" / "step_00000002.pt", out / "state" / "step_00000002.pt")
    good = torch.load(out / "state" / "step_00000002.pt", weights_only=True)
    good["extra"] = Payload()
    bad = out / "state" / "step_00000003.pt"
    torch.save(good, bad)
    with pytest.raises(UserError, match="refused") as e:
        load_state(bad)
    assert str(bad) in str(e.value)
    capsys.readouterr()
    assert main(train_args(data, out, full_run["recipe"], "--resume")) == 2
    err = capsys.readouterr().err
    assert "step_00000003.pt" in err and "refused" in err
    assert not marker.exists()


@pytest.mark.gpu
def test_training_on_cuda_bf16(data, tmp_path):
    recipe = write_recipe(tmp_path / "r.yaml", epochs=1, num_workers=0)
    out = tmp_path / "run"
    assert main(train_args(data, out, recipe, "--device", "cuda")) == 0
    assert all(math.isfinite(x) for x in log_losses(out))
    from zar.model.backbone import build_model

    model, _ = build_model(str(out), device="cuda")
    assert next(model.parameters()).dtype == torch.float32


@pytest.mark.parametrize("key,value,says", [
    ("lr", 0, "recipe.lr = 0.0: must be a finite number > 0"), ("lr", ".nan", "recipe.lr = nan"),
    ("lr", -1e-5, "recipe.lr"), ("betas", [0.9], "exactly 2 items"), ("betas", [0.9, 1.5], "recipe.betas"),
    ("weight_decay", -0.1, "recipe.weight_decay"), ("num_workers", -1, "recipe.num_workers"),
    ("flip_p", 2.0, "recipe.flip_p = 2.0: must be a finite number >= 0 and <= 1"),
    ("frames", 100000000, "recipe.frames"), ("warmup_epochs", 20, "at most epochs (10)"),
    ("precision", "fp8", "one of bf16, fp16, fp32"), ("prompt", "no class here", "holding {c}"),
])
def test_every_recipe_key_is_bounded(tmp_path, key, value, says):
    """A recipe value that cannot train is refused in one line naming the file and the key
    (the bounds are those of zar.core.fields settings, as for the method's settings)."""
    import yaml

    from zar.train.recipe import load_recipe

    path = tmp_path / "r.yaml"
    text = yaml.safe_dump({key: value}) if value != ".nan" else f"{key}: .nan\n"
    path.write_text(text)
    with pytest.raises(UserError) as e:
        load_recipe(path)
    assert str(e.value).startswith(f"{path}: setting recipe.{key} = ") and says in str(e.value)
    assert "\n" not in str(e.value)
