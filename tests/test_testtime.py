"""The test-time methods (zar.method.testtime), each against a straightforward re-implementation
written here from the authors' description, on random embeddings, and on inputs with a known
answer; calibration metrics against their definition; `zar tune` running several methods."""
from __future__ import annotations

import json
import math

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zar.core.metrics import calibration
from zar.method.settings import Settings, load_settings
from zar.method.testtime import METHODS, build, get
from zar.method.testtime.mta import MtaConfig, mta_mode
from zar.method.testtime.tda import TdaConfig
from zar.method.testtime.zero import zero_vote
from zar.method.tpt import Tuner, text_dispersion

CLASSES = ["red square", "green square", "blue square", "red circle", "green circle", "blue circle"]


def random_batch(b=6, v=12, d=64, seed=0):
    g = torch.Generator().manual_seed(seed)
    return (F.normalize(torch.randn(b, v, d, generator=g), dim=-1), F.normalize(torch.randn(b, d, generator=g), dim=-1))


def test_the_registry_names_every_method_with_its_kind_and_source():
    assert list(METHODS) == sorted(["vanilla", "views", "zar", "zero", "mta", "ctpt", "ensemble", "tda"])
    assert {m.name for m in METHODS.values() if m.kind == "online"} == {"tda"}
    assert all(m.source and m.title for m in METHODS.values())
    assert set(Settings().methods) == {"zero", "mta", "ctpt", "ensemble", "tda"}  # one section per method's settings
    with pytest.raises(Exception, match="unknown test-time method 'nope'"):
        get("nope")


# ----------------------------------------------------------------------------- ZERO
def zero_reference(logits: np.ndarray, gamma: float) -> int:
    """ZERO written out for one video: entropy per candidate, the int(N gamma) lowest kept
    (stable), one vote each for its top class; ties: most summed probability, then lowest index."""
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    h = -(p * np.log(p)).sum(1)
    kept = np.argsort(h, kind="stable")[:int(len(h) * gamma)]
    votes = np.bincount(logits[kept].argmax(1), minlength=logits.shape[1])
    tied = np.flatnonzero(votes == votes.max())
    mass = p[kept].sum(0)
    return int(min(tied, key=lambda c: (-mass[c], c)))


@pytest.mark.parametrize("gamma", [0.1, 0.3, 0.5, 1.0])
def test_zero_votes_as_written_out(gamma):
    g = torch.Generator().manual_seed(1)
    logits = 30 * torch.randn(40, 49, 6, generator=g)
    out, kept = zero_vote(logits, gamma)
    k = int(49 * gamma)
    assert kept.shape == (40, k)
    for i in range(40):
        assert int(out[i].argmax()) == zero_reference(logits[i].double().numpy(), gamma)
        share = out[i].softmax(-1)  # the confidence is the vote share
        votes = np.bincount(logits[i][kept[i]].argmax(1).numpy(), minlength=6)
        # the winner's +1e-4 in log space moves a share s by at most 1e-4 * s (1 - s) <= 2.5e-5
        assert np.allclose(share.numpy(), votes / k, atol=2.5e-5 + 1e-6)


def test_zero_on_candidates_that_all_vote_one_class():
    logits = torch.full((1, 20, 5), -3.0)
    logits[0, :, 3] = 4.0
    logits[0, 0] = torch.tensor([-10.0, 20.0, -10.0, -10.0, -10.0])  # votes for 1, the most confident of all
    out, kept = zero_vote(logits, 0.5)
    assert 0 in kept[0].tolist() and int(out[0].argmax()) == 3  # kept, and outvoted by the other 9
    assert math.isclose(float(out[0].softmax(-1)[3]), 0.9, abs_tol=2.5e-5 + 1e-6)


def test_zero_breaks_ties_by_probability_then_index():
    logits = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 5.0, 0.0]]])  # one vote each for classes 0 and 1
    assert int(zero_vote(logits, 1.0)[0][0].argmax()) == 0  # equal mass: the lower index
    logits = torch.tensor([[[5.0, 0.0, 0.0], [0.0, 6.0, 0.0]]])  # class 1's voter is surer
    assert int(zero_vote(logits, 1.0)[0][0].argmax()) == 1


# ----------------------------------------------------------------------------- MTA
def mta_reference(x: np.ndarray, logits: np.ndarray, lambda_y=0.2, lambda_q=4.0, share=0.3, outer=5, inner=5,
                  tol=1e-6) -> np.ndarray:
    """MTA written out with numpy loops, float64."""
    n = len(x)
    k = int(share * (n - 1))
    d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
    h = np.array([np.sqrt(0.5 * np.mean(np.sort(row)[1:k + 1] ** 2)) for row in d])
    kern = lambda m: np.exp(-((x - m) ** 2).sum(1) / (2 * h ** 2))  # noqa: E731
    p = np.exp(logits - logits.max(1, keepdims=True))
    p /= p.sum(1, keepdims=True)
    a = p @ p.T
    y, mode = np.full(n, 1 / n), x[0].copy()
    for _ in range(outer):
        dens = kern(mode)
        for _ in range(inner):
            old = y
            z = (dens + lambda_q * (a * y[None]).sum(1)) / lambda_y
            y = np.exp(z - z.max())
            y /= y.sum()
            if np.linalg.norm(old - y) < tol:
                break
        for _ in range(inner):
            old = mode
            w = kern(mode) * y
            mode = (w[:, None] * x).sum(0) / w.sum()
            mode /= np.linalg.norm(mode)
            if np.linalg.norm(old - mode) < tol:
                break
    return mode


def test_mta_mode_as_written_out():
    views, infer = random_batch(b=4, v=24, d=32, seed=2)
    text = F.normalize(torch.randn(6, 32, generator=torch.Generator().manual_seed(3)), dim=-1)
    for i in range(4):
        x = torch.cat([infer[i:i + 1], views[i]]).double()
        logits = 100 * x @ text.double().t()
        got = mta_mode(x, logits, MtaConfig())
        want = mta_reference(x.numpy(), logits.numpy())
        assert np.allclose(got.numpy(), want, atol=1e-9)


def test_mta_mode_is_the_mean_when_every_point_weighs_the_same():
    """Points placed symmetrically around the first one (every score and kernel weight equal
    by symmetry): the weighted mode is their normalised mean, the first point's direction."""
    e = torch.eye(8, dtype=torch.float64)
    pts = [e[0]] + [F.normalize(e[0] + s * 0.3 * e[j], dim=0) for j in range(1, 5) for s in (1, -1)]
    x = torch.stack(pts)
    logits = torch.zeros(len(pts), 3, dtype=torch.float64)  # every probability vector alike
    mode = mta_mode(x, logits, MtaConfig())
    assert torch.allclose(mode, F.normalize(x.mean(0), dim=0), atol=1e-9)


# ----------------------------------------------------------------------------- C-TPT
def test_dispersion_is_the_mean_distance_to_the_centroid():
    t = F.normalize(torch.randn(7, 16, generator=torch.Generator().manual_seed(4)), dim=-1)
    want = np.mean([np.linalg.norm(t[i].numpy() - t.numpy().mean(0)) for i in range(7)])
    assert math.isclose(float(text_dispersion(t)), want, rel_tol=1e-6)


def test_ctpt_is_zar_with_the_dispersion_rewarded(tiny_model):
    model, _ = tiny_model
    views, infer = random_batch(b=3, v=48, seed=5)
    cfg = load_settings().tune
    zar = Tuner(model, CLASSES, cfg).tune(views, infer)
    ctpt_tuner = Tuner(model, CLASSES, cfg, dispersion=50.0)
    ctpt = ctpt_tuner.tune(views, infer)
    atfd = float(text_dispersion(ctpt_tuner.text()))  # the initial prompt's dispersion
    for a, b in zip(zar, ctpt):
        assert b.kept == a.kept and torch.equal(b.logits_before, a.logits_before)
        assert math.isclose(b.loss, a.loss - 50.0 * atfd, rel_tol=1e-5, abs_tol=1e-5)
        assert not torch.equal(b.context, a.context)  # the extra term moves the step
    built = build("ctpt", model, CLASSES, load_settings(None, ["ctpt.weight=50"]), "cpu")
    assert built.dispersion == 50.0


# ----------------------------------------------------------------------------- ensemble
def test_the_ensemble_classifier_is_the_mean_of_normalised_template_features(tiny_model):
    import open_clip

    from zar.method.testtime.ensemble import TEMPLATES, ensemble_classifier

    model, _ = tiny_model
    assert len(TEMPLATES["kinetics700"]) == 28 and len(TEMPLATES["ucf101"]) == 48
    assert all(t.count("{}") == 1 for ts in TEMPLATES.values() for t in ts)
    tok = open_clip.get_tokenizer("ZAR-Tiny")
    with torch.no_grad():
        feats = [F.normalize(model.encode_text(tok([t.format(c) for c in CLASSES])), dim=-1)
                 for t in TEMPLATES["kinetics700"]]
    want = F.normalize(torch.stack(feats).mean(0), dim=-1)
    got = ensemble_classifier(model, CLASSES, TEMPLATES["kinetics700"], "cpu")
    assert torch.allclose(got, want, atol=1e-5)


def test_the_ensemble_is_the_initial_classifier_of_the_methods_that_do_not_tune(tiny_model):
    """tune.classifier = ensemble: vanilla CLIP becomes the ensemble method, ZERO votes with the
    ensemble's text features (its re-implementation above, fed those logits); ZAR refuses."""
    from zar.method.testtime.ensemble import TEMPLATES, ensemble_classifier

    model, _ = tiny_model
    views, infer = random_batch(d=model.text_projection.shape[1])
    ens = load_settings(None, ["tune.classifier=ensemble", "tune.steps=0"])
    text = ensemble_classifier(model, CLASSES, TEMPLATES["kinetics700"], "cpu")
    scale = float(model.logit_scale.detach().exp())
    atol = views.shape[-1] * 2.0 ** -24 * scale * 2  # float32 dot products of unit vectors, scaled, two roundings
    vanilla = build("vanilla", model, CLASSES, ens, "cpu").tune(views, infer)
    alone = build("ensemble", model, CLASSES, load_settings(), "cpu").tune(views, infer)
    for i, (a, b) in enumerate(zip(vanilla, alone)):
        assert torch.allclose(a.logits_after, b.logits_after, atol=atol)
        assert torch.allclose(a.logits_before, scale * infer[i] @ text.t(), atol=atol)
    prompt = build("vanilla", model, CLASSES, load_settings(), "cpu").tune(views, infer)
    assert not torch.allclose(prompt[0].logits_after, vanilla[0].logits_after, atol=10 * atol)  # the choice matters
    gamma = load_settings().methods["zero"].gamma
    zero = build("zero", model, CLASSES, ens, "cpu").tune(views, infer)
    for i, r in enumerate(zero):
        cand = torch.cat([infer[i:i + 1], views[i]]) @ text.t() * scale
        assert int(r.logits_after.argmax()) == zero_reference(cand.numpy().astype(np.float64), gamma)
    with pytest.raises(Exception, match="zar tunes the prompt's context"):
        build("zar", model, CLASSES, load_settings(None, ["tune.classifier=ensemble"]), "cpu")


# ----------------------------------------------------------------------------- TDA
def tda_reference(infer: np.ndarray, text: np.ndarray, scale: float, cfg: TdaConfig) -> np.ndarray:
    """TDA written out with Python lists: caches updated first, then the cache logits."""
    pos, neg, out = {}, {}, []
    n_classes = text.shape[0]

    def update(cache, label, item, cap):
        lst = cache.setdefault(label, [])
        if len(lst) < cap:
            lst.append(item)
        elif item[1] < lst[-1][1]:
            lst[-1] = item
        lst.sort(key=lambda e: e[1])

    def read(cache, f, alpha, beta, mask=None):
        total = np.zeros(n_classes)
        for label in sorted(cache):
            for e in cache[label]:
                value = np.eye(n_classes)[label] if mask is None else ((e[2] > mask[0]) & (e[2] < mask[1])) * 1.0
                total += np.exp(-beta * (1 - f @ e[0])) * value
        return alpha * total

    for f in infer:
        logits = scale * f @ text.T
        p = np.exp(logits - logits.max())
        p /= p.sum()
        h = -(p * np.log(p)).sum()
        label = int(np.argmax(logits))
        update(pos, label, (f, h), cfg.pos_capacity)
        if cfg.neg_entropy[0] < h / math.log2(n_classes) < cfg.neg_entropy[1]:
            update(neg, label, (f, h, p), cfg.neg_capacity)
        final = logits + read(pos, f, cfg.pos_alpha, cfg.pos_beta)
        if neg:
            final = final - read(neg, f, cfg.neg_alpha, cfg.neg_beta, cfg.neg_mask)
        out.append(final)
    return np.array(out)


def test_tda_as_written_out_and_its_state_carries_over(tiny_model):
    model, _ = tiny_model
    views, infer = random_batch(b=40, v=4, seed=6)
    settings = load_settings(None, ["tda.pos_capacity=2", "tda.neg_entropy=[0.0, 0.7]"])
    tda = build("tda", model, CLASSES, settings, "cpu")
    got = torch.stack([r.logits_after for r in tda.tune(views, infer)]).double().numpy()
    text = tda.classifier().double().numpy()
    want = tda_reference(infer.double().numpy(), text, float(tda.logit_scale), settings.methods["tda"])
    assert np.allclose(got, want, atol=1e-3)  # float32 sums of at most 100-scaled logits
    again = torch.stack([r.logits_after for r in tda.tune(views, infer)])  # the caches kept filling
    assert not torch.allclose(again.double(), torch.from_numpy(got))
    tda.reset()
    assert torch.allclose(torch.stack([r.logits_after for r in tda.tune(views, infer)]).double(),
                          torch.from_numpy(got), atol=1e-6)


# ----------------------------------------------------------------------------- the simple ones
def test_vanilla_and_the_views_vote(tiny_model):
    model, _ = tiny_model
    views, infer = random_batch(seed=7)
    settings = load_settings()
    van = build("vanilla", model, CLASSES, settings, "cpu").tune(views, infer)
    vote = build("views", model, CLASSES, settings, "cpu").tune(views, infer)
    for a, b in zip(van, vote):
        assert torch.equal(a.logits_after, a.logits_before) and a.kept == [] and a.loss is None
        assert torch.equal(b.logits_after, b.logits_ensemble)


# ----------------------------------------------------------------------------- calibration
def test_ece_and_nll_against_their_definition():
    rng = np.random.default_rng(8)
    scores = rng.normal(size=(500, 7)) * 3
    labels = rng.integers(0, 7, size=500)
    p = np.exp(scores) / np.exp(scores).sum(1, keepdims=True)
    conf, pred = p.max(1), p.argmax(1)
    ece = 0.0
    for b in range(15):
        lo, hi = b / 15, (b + 1) / 15
        m = (conf > lo) & (conf <= hi)
        if m.any():
            ece += m.sum() / 500 * abs((pred[m] == labels[m]).mean() - conf[m].mean())
    got = calibration(scores, labels)
    assert math.isclose(got["ece"], 100 * ece, rel_tol=1e-9)
    assert math.isclose(got["nll"], -np.log(p[np.arange(500), labels]).mean(), rel_tol=1e-9)
    sure = calibration(np.array([[50.0, 0.0], [0.0, 50.0]]), np.array([0, 1]))
    assert sure["ece"] < 1e-9 and sure["nll"] < 1e-9


# ----------------------------------------------------------------------------- the verb
def test_zar_tune_runs_every_method_on_one_cache(dataset):
    from test_encode_tune import FAST, zar

    d = dataset
    cache = d["tmp"] / "emb_all.pt"
    assert zar(["encode", "--videos", str(d["videos"]), "--root", str(d["root"]), "--backbone", "tiny",
                "--out", str(cache), *FAST]) == 0
    out = d["tmp"] / "methods" / "{method}" / "split1.json"
    assert zar(["tune", "--embeddings", str(cache), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
                "--backbone", "tiny", "--method", ",".join(METHODS), "--out", str(out), *FAST]) == 0
    summaries = {m: json.loads((d["tmp"] / "methods" / m / "split1.json").read_text()) for m in METHODS}
    for m, s in summaries.items():
        assert s["method"] == m and s["n_evaluated"] == 6
        assert s["ece"] is not None and s["nll"] is not None and s["ms_per_video"] > 0 and s["memory"]
        assert s["settings"]["tune"]["steps"] == (1 if get(m).tunes_prompt else 0)
    tda = summaries["tda"]
    assert [o["seed"] for o in tda["orders"]] == [0, 1, 2]
    assert all(sorted(o["order"]) == sorted(tda["orders"][0]["order"]) for o in tda["orders"])
    assert tda["top1"] == pytest.approx(np.mean([o["top1"] for o in tda["orders"]]))
    assert zar(["tune", "--embeddings", str(cache), "--videos", str(d["videos"]), "--classes", str(d["classes"]),
                "--backbone", "tiny", "--method", "zar,zero", "--out", str(d["tmp"] / "x.json"), *FAST]) == 2
