"""The prompt learner (docs/protocol.md §2): at its init it reproduces encode_text exactly."""
import open_clip
import pytest
import torch

from zar.model.backbone import register_configs
from zar.method.prompt import PromptLearner
from zar.core.splitfiles import class_text
from zar.core.errors import UserError

NAMES = ["abseiling", "apply eye makeup", "kick_ball", "passing American football (not in game)", "yoga"]


def _reference(model, names):
    tok = open_clip.get_tokenizer("ViT-B-16")
    with torch.no_grad():
        return model.encode_text(tok([f"a video of a {class_text(n)}." for n in names]), normalize=True)


def _check(model):
    pl = PromptLearner(model, NAMES, ctx_init="a video of a", tokenizer=open_clip.get_tokenizer("ViT-B-16"))
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


def test_the_tokenizer_is_the_backbone_s(tiny_model):
    """A model built by zar knows its architecture, whose tokenizer the prompts use; one built
    elsewhere must be given a tokenizer."""
    from zar.model.backbone import tokenizer_of

    model = tiny_model[0]
    assert model.zar_arch == "ZAR-Tiny"
    assert torch.equal(tokenizer_of(model)(["a video of a yoga."]), open_clip.get_tokenizer("ZAR-Tiny")(["a video of a yoga."]))
    plain = open_clip.create_model("ZAR-Tiny", pretrained=None).eval()
    with pytest.raises(UserError, match="its tokenizer is unknown"):
        PromptLearner(plain, NAMES)


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


def test_truncated_text_equals_the_full_context(tiny_model):
    """Up to the last end-of-text token only: under the causal mask the features are the same."""
    model = tiny_model[0]
    short = PromptLearner(model, NAMES)
    full = PromptLearner(model, NAMES, truncate=False)
    assert full.length == 77 and short.length < 30
    assert short.length == int(short.tokens.argmax(dim=-1).max()) + 1  # the longest prompt's EOS
    with torch.no_grad():
        assert torch.allclose(short(), full(), atol=1e-6, rtol=0)
        ctx = torch.randn((3, *short.ctx.shape), generator=torch.Generator().manual_seed(3)) * 0.02
        assert torch.allclose(short(ctx), full(ctx), atol=1e-6, rtol=0)


def test_class_name_alone_template(tiny_model):
    """ViFi-CLIP's zero-shot text (the class name, no template): no context to tune."""
    model = tiny_model[0]
    pl = PromptLearner(model, NAMES, template="{c}")
    assert pl.n_ctx == 0 and pl.ctx.numel() == 0
    tok = open_clip.get_tokenizer("ViT-B-16")
    with torch.no_grad():
        ref = model.encode_text(tok([class_text(n) for n in NAMES]), normalize=True)
        assert torch.allclose(pl(), ref, atol=1e-5, rtol=0)
    with pytest.raises(UserError, match="only once, at its start"):
        PromptLearner(model, NAMES, template="{c} {ctx}")
    with pytest.raises(UserError, match="exactly once"):
        PromptLearner(model, NAMES, template="a video")
