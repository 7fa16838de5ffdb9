"""`zar import-vifi`: a checkpoint in ViFi-CLIP's layout becomes a zar backbone.

The checkpoints are synthetic: a model's state dict renamed here to ViFi-CLIP's layout
(``module.image_encoder.*``, ``module.text_encoder.*``, ``module.logit_scale``, prompt
buffers, no token embedding), saved with an optimizer state and a yacs-style config
object, as ViFi-CLIP's ``epoch_saving`` does.
"""
from __future__ import annotations

import json
import sys
import types
from pathlib import Path

import pytest
import torch

from zar.cli import main
from zar.core.errors import UserError


def to_vifi(sd: dict[str, torch.Tensor], token_key: str | None = None, prefix: str = "module.") -> dict:
    """open_clip names -> ViFi-CLIP names (written independently of the importer)."""
    out = {}
    for k, v in sd.items():
        if k.startswith("visual."):
            out[prefix + "image_encoder." + k[len("visual."):]] = v.clone()
        elif k.startswith(("transformer.", "ln_final.")) or k in ("positional_embedding", "text_projection"):
            out[prefix + "text_encoder." + k] = v.clone()
        elif k == "logit_scale":
            out[prefix + "logit_scale"] = v.clone()
        elif k == "token_embedding.weight":
            if token_key:
                out[prefix + token_key] = v.clone()
        else:
            raise AssertionError(f"unexpected open_clip key {k}")
    width = sd["positional_embedding"].shape[1]
    out[prefix + "prompt_learner.complete_text_embeddings"] = torch.randn(3, 77, width)
    return out


@pytest.fixture
def fake_yacs(monkeypatch):
    """A stand-in for yacs.config.CfgNode (a dict subclass with attributes), as pickled by ViFi-CLIP."""
    pkg, mod = types.ModuleType("yacs"), types.ModuleType("yacs.config")

    class CfgNode(dict):
        pass

    CfgNode.__module__, CfgNode.__qualname__ = "yacs.config", "CfgNode"
    mod.CfgNode, pkg.config = CfgNode, mod
    monkeypatch.setitem(sys.modules, "yacs", pkg)
    monkeypatch.setitem(sys.modules, "yacs.config", mod)
    cfg = CfgNode({"TRAIN": CfgNode({"LR": 8e-6, "EPOCHS": 10}), "OUTPUT": "exp"})
    cfg.__dict__["__immutable__"] = True
    return cfg


def tiny_state(seed: int) -> dict[str, torch.Tensor]:
    from zar.model.backbone import build_model

    torch.manual_seed(seed)
    return build_model("tiny")[0].state_dict()


def save_vifi(path: Path, state: dict, config) -> Path:
    opt = {"state": {0: {"step": torch.tensor(10.0), "exp_avg": torch.zeros(3)}},
           "param_groups": [{"lr": 8e-8, "betas": (0.9, 0.98), "weight_decay": 0.001, "params": [0]}]}
    torch.save({"model": state, "optimizer": opt, "lr_scheduler": {"t_initial": 100, "base_values": [8e-6]},
                "max_accuracy": 71.2, "epoch": 9, "config": config}, path)
    return path


@pytest.fixture
def base_dir(tmp_path):
    """A zar checkpoint whose weights differ from the source except the token embedding."""
    from zar.train.checkpoint import write_backbone

    src = tiny_state(1)
    other = tiny_state(2)
    other["token_embedding.weight"] = src["token_embedding.weight"].clone()
    d = tmp_path / "base"
    write_backbone(d, other, {"arch": "ZAR-Tiny", "quick_gelu": False})
    return d


def test_import_fills_every_key_and_loads_as_backbone(tmp_path, fake_yacs, base_dir):
    from safetensors.torch import load_file

    import open_clip

    from zar.model.backbone import build_model

    src = tiny_state(1)
    ckpt = save_vifi(tmp_path / "vifi.pth", to_vifi(src), fake_yacs)
    out = tmp_path / "imported"
    assert main(["import-vifi", str(ckpt), "--out", str(out), "--base", str(base_dir)]) == 0
    got = load_file(str(out / "model.safetensors"))
    assert got.keys() == src.keys()
    assert all(torch.equal(got[k], src[k]) for k in src)  # incl. the token embedding from the base
    meta = json.loads((out / "model.json").read_text())
    assert (meta["arch"], meta["quick_gelu"]) == ("ZAR-Tiny", False)
    assert meta["filled_from_base"] == ["token_embedding.weight"]
    assert meta["ignored_extras"] == ["module.prompt_learner.complete_text_embeddings"]
    assert meta["unused"] == []
    model, pre = build_model(str(out))
    ref = open_clip.create_model("ZAR-Tiny", pretrained=None)
    ref.load_state_dict(src)
    ref.eval()
    x = torch.randn(2, 3, pre.image_size, pre.image_size)
    tok = open_clip.get_tokenizer("ZAR-Tiny")(["a photo of a dog."])
    with torch.no_grad():
        assert torch.equal(model.encode_image(x), ref.encode_image(x))
        assert torch.equal(model.encode_text(tok), ref.encode_text(tok))
    # evaluated with the preprocessing ViFi-CLIP trained it with: ImageNet statistics, bilinear
    assert pre.mean == (0.485, 0.456, 0.406) and pre.std == (0.229, 0.224, 0.225)
    assert pre.interpolation == "bilinear" and meta["train_frames"] == 32


def test_imported_weights_are_read_with_their_preprocessing(tmp_path, fake_yacs, base_dir, make_video):
    """The encoder normalises with the checkpoint's statistics and resizes bilinearly."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    from zar.model.backbone import build_model
    from zar.method.frames import prepare_video
    from zar.core.splitfiles import VideoRow
    from zar.method.views import ViewConfig

    ckpt = save_vifi(tmp_path / "vifi.pth", to_vifi(tiny_state(1)), fake_yacs)
    out = tmp_path / "imported"
    assert main(["import-vifi", str(ckpt), "--out", str(out), "--base", str(base_dir)]) == 0
    _, pre = build_model(str(out))
    path = make_video("v.mp4", n=12, h=96, w=128)
    prepared = prepare_video(VideoRow("v", str(path), class_index=0), ViewConfig(), pre)
    from zar.video import read_video

    idx = prepared.plan.infer[0]
    frame, _ = read_video(path, lambda info: [idx], max_short_side=ViewConfig().view_short_side(pre.image_size))
    x = torch.from_numpy(frame[0]).permute(2, 0, 1)  # as the reader gives it (scaled down by the decoder)
    h, w = x.shape[-2:]
    nw = round(w * 64 / h)
    ref = TF.resize(x, [64, nw], interpolation=InterpolationMode.BILINEAR, antialias=True)
    left = int(round((nw - 64) / 2))
    assert torch.equal(prepared.infer_frames[0], ref[:, :, left:left + 64])
    bicubic = TF.resize(x, [64, nw], interpolation=InterpolationMode.BICUBIC, antialias=True)
    assert not torch.equal(prepared.infer_frames[0], bicubic[:, :, left:left + 64])


@pytest.mark.parametrize("token_key", ["token_embedding.weight", "prompt_learner.token_embedding.weight"])
def test_token_embedding_in_checkpoint_and_unused_keys(tmp_path, base_dir, token_key):
    from safetensors.torch import load_file

    from zar.train.vifi import import_vifi

    src = tiny_state(3)
    state = to_vifi(src, token_key=token_key, prefix="")
    state["image_encoder.VPT_shallow"] = torch.zeros(1, 2, 64)  # a prompt-tuning extra: reported, not used
    ckpt = tmp_path / "plain.pth"
    torch.save(state, ckpt)  # a bare state dict is accepted too
    report = import_vifi(ckpt, tmp_path / "out", str(base_dir))
    assert report["filled_from_base"] == [] and report["unused"] == ["image_encoder.VPT_shallow"]
    got = load_file(str(tmp_path / "out" / "model.safetensors"))
    assert all(torch.equal(got[k], src[k]) for k in src)


def test_wrong_shapes_and_non_checkpoints_are_explained(tmp_path, base_dir):
    from zar.train.vifi import import_vifi

    state = to_vifi(tiny_state(1), token_key="token_embedding.weight")
    state["module.image_encoder.proj"] = torch.zeros(64, 32)
    torch.save({"model": state}, tmp_path / "bad.pth")
    with pytest.raises(UserError, match=r"visual\.proj: checkpoint \(64, 32\)"):
        import_vifi(tmp_path / "bad.pth", tmp_path / "o1", str(base_dir))
    (tmp_path / "junk.pth").write_bytes(b"not a checkpoint")
    with pytest.raises(UserError, match="not a readable PyTorch checkpoint"):
        import_vifi(tmp_path / "junk.pth", tmp_path / "o2", str(base_dir))
    assert not (tmp_path / "o1").exists() and not (tmp_path / "o2").exists()


def test_checkpoint_with_an_arbitrary_object_is_refused(tmp_path, base_dir, capsys):
    marker = tmp_path / "payload_ran"

    class Payload:
        def __reduce__(self):
            return (Path.touch, (marker,))

    ckpt = tmp_path / "evil.pth"
    torch.save({"model": to_vifi(tiny_state(1), token_key="token_embedding.weight"), "extra": Payload()}, ckpt)
    assert main(["import-vifi", str(ckpt), "--out", str(tmp_path / "out"), "--base", str(base_dir)]) == 2
    err = capsys.readouterr().err
    assert "refused" in err and "pathlib" in err and "evil.pth" in err
    assert "weights_only=False" not in err  # no advice to run the file's code
    assert not marker.exists() and not (tmp_path / "out").exists()


@pytest.mark.slow
def test_vitb16_layout_maps_onto_open_clip(tmp_path, fake_yacs):
    """The real architecture: every ViT-B/16 key of a ViFi-layout dict lands in open_clip's model."""
    import open_clip
    from safetensors.torch import load_file

    torch.manual_seed(0)
    src = open_clip.create_model("ViT-B-16", pretrained=None).state_dict()
    ckpt = save_vifi(tmp_path / "vifi_b16.pth", to_vifi(src, token_key="token_embedding.weight"), fake_yacs)
    out = tmp_path / "b16"
    assert main(["import-vifi", str(ckpt), "--out", str(out)]) == 0  # base weights not needed
    meta = json.loads((out / "model.json").read_text())
    assert (meta["arch"], meta["quick_gelu"], meta["filled_from_base"]) == ("ViT-B-16", True, [])
    got = load_file(str(out / "model.safetensors"))
    assert got.keys() == src.keys() and all(torch.equal(got[k], src[k]) for k in src)
