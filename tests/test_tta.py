"""Test-time tuning (docs/protocol.md §3.2-3.7) against a straightforward re-implementation."""
import math

import pytest
import torch

from zar.method.prompt import PromptLearner
from zar.method.tpt import TuneConfig, Tuner, marginal_entropy, select_confident

CLASSES = ["abseiling", "brush hair", "kick ball", "playing guitar", "riding a bike", "sword exercise", "yoga"]


def _feats(n, d, seed):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(n, d, generator=g)
    return x / x.norm(dim=-1, keepdim=True)


# ----------------------------------------------------------------------------- reference
def ref_text_features(model, tokens, ctx, n_ctx):
    """The text path written out: embeddings with the context rows replaced, positions,
    causal transformer, final norm, the EOS token's feature, projection, L2 norm."""
    emb = model.token_embedding(tokens)
    k = tokens.shape[0]
    x = torch.cat([emb[:, :1], ctx.unsqueeze(0).expand(k, -1, -1), emb[:, 1 + n_ctx:]], dim=1)
    x = x + model.positional_embedding
    x = model.transformer(x, attn_mask=model.attn_mask)
    x = model.ln_final(x)
    x = x[torch.arange(k), tokens.argmax(dim=-1)] @ model.text_projection
    return x / x.norm(dim=-1, keepdim=True)


def ref_entropy(logits_row):
    p = torch.softmax(logits_row, dim=0)
    return float(-(p * torch.log(p)).sum())


def ref_step(model, tokens, ctx0, n_ctx, view_feats, ratio, lr, wd, scale):
    ctx = ctx0.clone().requires_grad_(True)
    text = ref_text_features(model, tokens, ctx, n_ctx)
    per_view = [scale * (view_feats[v] @ text.t()) for v in range(view_feats.shape[0])]  # one view at a time
    ent = [ref_entropy(l.detach()) for l in per_view]
    order = sorted(range(len(ent)), key=lambda v: (ent[v], v))
    kept = order[: int(len(ent) * ratio)]
    p_bar = torch.stack([torch.softmax(per_view[v], dim=0) for v in kept]).mean(dim=0)
    loss = -(p_bar * torch.log(p_bar)).sum()
    loss.backward()
    g = ctx.grad.detach()
    b1, b2, eps = 0.9, 0.999, 1e-8
    p = ctx0.detach() * (1 - lr * wd)  # decoupled weight decay
    m_hat = ((1 - b1) * g) / (1 - b1)
    v_hat = ((1 - b2) * g * g) / (1 - b2)
    p = p - lr * m_hat / (v_hat.sqrt() + eps)
    return kept, float(loss.detach()), p


@pytest.mark.parametrize("ratio", [0.1, 0.5, 0.8, 1.0])
def test_one_step_matches_reference(tiny_model, ratio):
    model, _ = tiny_model
    cfg = TuneConfig(steps=1, ratio=ratio)
    tuner = Tuner(model, CLASSES, cfg)
    d = model.text_projection.shape[1]
    views, infer = _feats(48, d, 1), _feats(1, d, 2)[0]
    res = tuner(views, infer)
    pl = tuner.prompt
    scale = float(model.logit_scale.exp())
    import open_clip  # the reference reads the full 77-token context (zar stops at the last EOS)

    tokens = open_clip.get_tokenizer("ViT-B-16")([f"a video of a {c}." for c in CLASSES])
    kept, loss, ctx_new = ref_step(model, tokens, pl.ctx_init_vectors, pl.n_ctx, views, ratio, cfg.lr,
                                   cfg.weight_decay, scale)
    assert res.kept == kept
    assert len(res.kept) == int(48 * ratio)
    assert res.loss == pytest.approx(loss, rel=1e-5)
    assert not torch.equal(ctx_new, pl.ctx_init_vectors)  # the step moves the context
    # the prediction uses the tuned prompt on the inference clip
    text = ref_text_features(model, tokens, ctx_new, pl.n_ctx)
    assert torch.allclose(res.logits_after, scale * infer @ text.t(), atol=1e-4)
    assert not torch.allclose(res.logits_after, res.logits_before, atol=1e-4)


def test_selection_and_entropy_reference():
    g = torch.Generator().manual_seed(0)
    logits = torch.randn(48, 11, generator=g) * 5
    for ratio in (0.021, 0.1, 0.33, 0.8, 1.0):
        ent = [ref_entropy(l) for l in logits]
        order = sorted(range(48), key=lambda v: (ent[v], v))[: int(48 * ratio)]
        assert select_confident(logits, ratio).tolist() == order
    # no view is forced in: a ratio that keeps int(48 * 0.02) = 0 views is refused, not rounded up
    with pytest.raises(ValueError, match="keeps int"):
        select_confident(logits, 0.02)
    kept = logits[:7]
    p_bar = torch.softmax(kept, dim=1).mean(0)
    assert float(marginal_entropy(kept)) == pytest.approx(float(-(p_bar * p_bar.log()).sum()), rel=1e-6)
    # log-space stays finite where the direct formula underflows
    sharp = torch.tensor([[1000.0, 0.0, -1000.0]])
    assert torch.isfinite(marginal_entropy(sharp)) and float(marginal_entropy(sharp)) == pytest.approx(0.0, abs=1e-6)
    uniform = torch.zeros(4, 5)
    assert float(marginal_entropy(uniform)) == pytest.approx(math.log(5), rel=1e-6)
    with pytest.raises(ValueError):
        select_confident(logits, 0.0)


def test_gradient_reaches_only_the_context(tiny_model):
    model, _ = tiny_model
    pl = PromptLearner(model, CLASSES)
    for p in model.parameters():
        p.requires_grad_(False)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    views = _feats(12, model.text_projection.shape[1], 3)
    loss = marginal_entropy(100 * views @ pl().t())
    loss.backward()
    assert pl.ctx.grad is not None and float(pl.ctx.grad.abs().sum()) > 0
    assert all(p.grad is None for p in model.parameters())
    assert [n for n, p in pl.named_parameters()] == ["ctx"]
    tuner = Tuner(model, CLASSES, TuneConfig(steps=3))
    tuner(views, views[0])
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items())


def test_zero_steps_equals_vanilla_exactly(tiny_model):
    import open_clip

    model, _ = tiny_model
    d = model.text_projection.shape[1]
    views, infer = _feats(48, d, 4), _feats(1, d, 5)[0]
    vanilla = Tuner(model, CLASSES, TuneConfig(steps=0))(views, infer)
    zar = Tuner(model, CLASSES, TuneConfig(steps=1))(views, infer)
    assert torch.equal(vanilla.logits_after, vanilla.logits_before)
    assert torch.equal(vanilla.logits_after, zar.logits_before)
    assert not torch.equal(zar.logits_after, zar.logits_before)
    tok = open_clip.get_tokenizer("ViT-B-16")
    with torch.no_grad():
        text = model.encode_text(tok([f"a video of a {c}." for c in CLASSES]), normalize=True)
    assert torch.allclose(vanilla.logits_after, model.logit_scale.exp() * infer @ text.t(), atol=1e-5)


def test_episodic_order_independent(tiny_model):
    model, _ = tiny_model
    d = model.text_projection.shape[1]
    a = (_feats(48, d, 6), _feats(1, d, 7)[0])
    b = (_feats(48, d, 8), _feats(1, d, 9)[0])
    t1 = Tuner(model, CLASSES, TuneConfig(steps=2))
    ra1, rb1 = t1(*a), t1(*b)
    t2 = Tuner(model, CLASSES, TuneConfig(steps=2))
    rb2, ra2 = t2(*b), t2(*a)
    assert torch.equal(ra1.logits_after, ra2.logits_after) and ra1.kept == ra2.kept
    assert torch.equal(rb1.logits_after, rb2.logits_after) and rb1.kept == rb2.kept


def test_batched_tuning_equals_one_video_at_a_time(tiny_model):
    """B contexts in one parameter, losses summed: each video gets exactly its own AdamW steps."""
    model, _ = tiny_model
    d = model.text_projection.shape[1]
    views = torch.stack([_feats(48, d, 20 + i) for i in range(5)])
    infer = torch.stack([_feats(1, d, 40 + i)[0] for i in range(5)])
    tuner = Tuner(model, CLASSES, TuneConfig(steps=2))
    batched = tuner.tune(views, infer)
    for i in range(5):
        alone = Tuner(model, CLASSES, TuneConfig(steps=2))(views[i], infer[i])
        assert batched[i].kept == alone.kept
        assert batched[i].loss == pytest.approx(alone.loss, rel=1e-6)
        scale = float(model.logit_scale.exp())  # logits are scale x cosine: compare the cosines
        assert torch.allclose(batched[i].logits_after / scale, alone.logits_after / scale, atol=1e-6, rtol=0)
        assert torch.allclose(batched[i].logits_before / scale, alone.logits_before / scale, atol=1e-7, rtol=0)


def test_views_ensemble_is_the_mean_probability(tiny_model):
    """The '48 views, no tuning' control: the inference clip's and the views' probabilities
    under the initial prompt, averaged."""
    import open_clip

    model, _ = tiny_model
    d = model.text_projection.shape[1]
    views, infer = _feats(48, d, 50), _feats(1, d, 51)[0]
    res = Tuner(model, CLASSES, TuneConfig(steps=1))(views, infer)
    tok = open_clip.get_tokenizer("ViT-B-16")
    with torch.no_grad():
        text = model.encode_text(tok([f"a video of a {c}." for c in CLASSES]), normalize=True)
    scale = model.logit_scale.exp()
    probs = [torch.softmax(scale * infer @ text.t(), dim=0)] + [torch.softmax(scale * v @ text.t(), dim=0) for v in views]
    mean = torch.stack(probs).mean(0)
    assert torch.allclose(res.logits_ensemble.exp(), mean, atol=1e-5)
    assert int(res.logits_ensemble.argmax()) == int(mean.argmax())


def test_continual_mode_carries_the_prompt(tiny_model):
    model, _ = tiny_model
    d = model.text_projection.shape[1]
    a = (_feats(48, d, 6), _feats(1, d, 7)[0])
    b = (_feats(48, d, 8), _feats(1, d, 9)[0])
    episodic = Tuner(model, CLASSES, TuneConfig(steps=1))
    episodic(*a)
    rb_e = episodic(*b)
    cont = Tuner(model, CLASSES, TuneConfig(steps=1, mode="continual"))
    cont(*a)
    rb_c = cont(*b)
    assert not torch.equal(rb_e.logits_after, rb_c.logits_after)
    assert not torch.equal(rb_e.logits_before, rb_c.logits_before)  # starts from the prompt tuned on a
