"""The prompt learner (PROTOCOL §2): at its init it reproduces encode_text exactly."""
import open_clip
import pytest
import torch

from zar.backbone import register_configs
from zar.prompt import PromptLearner, class_text
from zar.utils import UserError

NAMES = ["abseiling", "apply eye makeup", "kick_ball", "passing American football (not in game)", "yoga"]


def _reference(model, names):
    tok = open_clip.get_tokenizer("ViT-B-16")
    with torch.no_grad():
        return model.encode_text(tok([f"a video of a {class_text(n)}." for n in names]), normalize=True)


def _check(model):
    pl = PromptLearner(model, NAMES, ctx_init="a video of a")
    width = pl.prefix.shape[-1]
    assert isinstance(pl.ctx, torch.nn.Parameter) and tuple(pl.ctx.shape) == (4, width)
    with torch.no_grad():
        feats = pl()
    ref = _reference(model, NAMES)
    assert feats.shape == ref.shape == (len(NAMES), ref.shape[1])
    assert torch.allclose(feats, ref, atol=1e-5, rtol=0)
    assert torch.allclose(feats.norm(dim=-1), torch.ones(len(NAMES)), atol=1e-5)
    # moving the context changes the features; reset restores them exactly
    with torch.no_grad():
        pl.ctx.add_(torch.randn(pl.ctx.shape, generator=torch.Generator().manual_seed(0)))
        moved = pl()
        assert not torch.allclose(moved, ref, atol=1e-3)
        pl.reset()
        assert torch.equal(pl(), feats)


def test_clip_text_tower(tiny_model):
    _check(tiny_model[0])


def test_custom_text_tower():
    register_configs()
    torch.manual_seed(1)
    model = open_clip.create_model("ZAR-Tiny", pretrained=None, force_custom_text=True).eval()
    assert hasattr(model, "text") and not hasattr(model, "token_embedding")
    _check(model)


def test_vit_b16_quickgelu_architecture():
    """The real architecture (random weights: none can be downloaded here)."""
    torch.manual_seed(2)
    model = open_clip.create_model("ViT-B-16", pretrained=None, force_quick_gelu=True).eval()
    _check(model)


def test_context_is_the_raw_token_embeddings(tiny_model):
    model = tiny_model[0]
    pl = PromptLearner(model, NAMES)
    tok = open_clip.get_tokenizer("ViT-B-16")
    ids = tok(["a video of a"])[0][1:5]
    assert torch.equal(pl.ctx.detach(), model.token_embedding.weight[ids].detach())


def test_errors(tiny_model):
    model = tiny_model[0]
    with pytest.raises(UserError, match="truncated"):
        PromptLearner(model, ["word " * 80])
    with pytest.raises(UserError):
        PromptLearner(model, [])
    assert class_text("kick_ball") == "kick ball"
