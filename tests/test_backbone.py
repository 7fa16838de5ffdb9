"""Backbone specs, QuickGELU handling and the fast, explained offline failure."""
import json
import logging
import time

import pytest
import torch

from zar.model import backbone as B
from zar.core.errors import UserError


def test_named_and_parsed_specs(tmp_path):
    assert B.parse_spec("vitb16_openai") == B.BackboneSpec("ViT-B-16", "openai", None)
    assert B.parse_spec("ViT-B-16:openai") == B.BackboneSpec("ViT-B-16", "openai", None)
    assert B.parse_spec("ZAR-Tiny:none") == B.BackboneSpec("ZAR-Tiny", None, None)
    f = tmp_path / "spec.json"
    f.write_text(json.dumps({"arch": "ZAR-Tiny", "pretrained": None}))
    assert B.parse_spec(str(f)).arch == "ZAR-Tiny"
    with pytest.raises(UserError, match="unknown keys"):
        B.parse_spec({"arch": "ZAR-Tiny", "pretrain": "x"})
    with pytest.raises(UserError):
        B.parse_spec("no_such_backbone")


def test_quick_gelu_is_automatic_for_openai_weights():
    assert B.auto_quick_gelu(B.BackboneSpec("ViT-B-16", "openai"), None) is True
    assert B.auto_quick_gelu(B.BackboneSpec("ViT-B-16", "laion2b_s34b_b88k"), None) is False
    assert B.auto_quick_gelu(B.BackboneSpec("ViT-B-16", "openai", quick_gelu=False), None) is False


def test_openai_archive_detected(tmp_path):
    """OpenAI's released files are TorchScript archives: loading one from a file forces QuickGELU."""
    class M(torch.nn.Module):
        def forward(self, x):
            return x + 1

    path = tmp_path / "ViT-B-16.pt"
    torch.jit.script(M()).save(str(path))
    assert B._is_openai_archive(str(path))
    assert B.auto_quick_gelu(B.BackboneSpec("ViT-B-16", str(path)), str(path)) is True
    plain = tmp_path / "plain.pt"
    torch.save({"w": torch.zeros(1)}, plain)
    assert B._is_openai_archive(str(plain)) is False  # a zip of a state dict, not TorchScript code


@pytest.fixture
def empty_cache(tmp_path, monkeypatch):
    from huggingface_hub import constants

    cache = tmp_path / "hf-cache"
    cache.mkdir()
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    return cache


def test_offline_env_fails_fast_naming_the_cache(empty_cache, monkeypatch):
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    t0 = time.monotonic()
    with pytest.raises(UserError) as e:
        B.build_model("vitb16_openai")
    assert time.monotonic() - t0 < 30
    msg = str(e.value)
    assert str(empty_cache) in msg and "zar fetch-weights" in msg and "HF_HUB_OFFLINE" in msg


def test_unreachable_endpoint_fails_fast(empty_cache, monkeypatch):
    """No network: the hub endpoint (here a closed port on 127.0.0.1) cannot be reached."""
    import socket

    from huggingface_hub import constants

    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()  # nothing listens there now
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", f"http://127.0.0.1:{port}")
    t0 = time.monotonic()
    with pytest.raises(UserError, match="cannot be reached"):
        B.build_model("vitb16_openai")
    assert time.monotonic() - t0 < 30


def test_cached_weights_are_used(empty_cache, monkeypatch):
    """A file already in the cache is found without any network."""
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    snap = empty_cache / "models--timm--vit_base_patch16_clip_224.openai" / "snapshots" / "abc"
    snap.mkdir(parents=True)
    (empty_cache / "models--timm--vit_base_patch16_clip_224.openai" / "refs").mkdir()
    (empty_cache / "models--timm--vit_base_patch16_clip_224.openai" / "refs" / "main").write_text("abc")
    weights = snap / "open_clip_model.safetensors"
    weights.write_bytes(b"x")
    assert B.resolve_weights(B.BackboneSpec("ViT-B-16", "openai")) == str(weights)


def test_unknown_tag_and_arch():
    with pytest.raises(UserError, match="not a file and not an open_clip tag"):
        B.resolve_weights(B.BackboneSpec("ViT-B-16", "no-such-tag"))
    with pytest.raises(UserError, match="unknown architecture"):
        B.build_model({"arch": "ViT-Z-99", "pretrained": None})


def test_tiny_model_is_deterministic_and_checkpoint_round_trip(tmp_path, caplog):
    from safetensors.torch import save_file

    caplog.set_level(logging.INFO)
    m1, pre = B.build_model("tiny")
    assert "initialized randomly" in caplog.text  # true: no weights given
    m2, _ = B.build_model("tiny")
    assert pre.image_size == 64
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m2.state_dict().values()))
    with torch.no_grad():
        for p in m1.parameters():
            p.add_(0.01)
    out = tmp_path / "ckpt"
    out.mkdir()
    save_file({k: v.contiguous() for k, v in m1.state_dict().items()}, str(out / "model.safetensors"))
    (out / "model.json").write_text(json.dumps({"arch": "ZAR-Tiny", "quick_gelu": False}))
    init_normal = torch.nn.init.normal_
    caplog.clear()
    m3, _ = B.build_model(str(out))  # built without drawing random weights, then loaded
    assert "initialized randomly" not in caplog.text and str(out) in caplog.text  # the log says what was loaded
    assert not logging.getLogger().filters
    assert torch.nn.init.normal_ is init_normal  # the initialisers are back
    assert all(torch.equal(a, b) for a, b in zip(m1.state_dict().values(), m3.state_dict().values()))
    for (name, a), (_, b) in zip(m1.named_buffers(), m3.named_buffers()):  # the causal mask is not in the file
        assert torch.equal(a, b), name
    tokens = torch.randint(0, 100, (3, 77))
    images = torch.rand(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(m1.encode_text(tokens), m3.encode_text(tokens))
        assert torch.equal(m1.encode_image(images), m3.encode_image(images))
    state = {k: v.contiguous() for k, v in m1.state_dict().items() if k != "text_projection"}
    save_file(state, str(out / "model.safetensors"))  # one weight missing: refused, not left uninitialised
    with pytest.raises(UserError, match="text_projection"):
        B.build_model(str(out))
    save_file({k: v.contiguous() for k, v in m1.state_dict().items()}, str(out / "model.safetensors"))
    (out / "model.json").unlink()
    with pytest.raises(UserError):
        B.build_model(str(out / "model.safetensors"))
