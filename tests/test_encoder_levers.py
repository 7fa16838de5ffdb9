"""The image encoder's speed levers give the answers of the plain path.

- Batches span videos: the stream's features equal each video encoded alone, videos come
  out in order (an unreadable one in its place), every batch but the last of a group is
  full, and no batch spans two groups (chunks of `zar encode`).
- The bf16 image tower (``run.image_precision=bf16``) stays within what bf16's precision
  allows of the fp32 tower (its predictions: test_demo_method.py, on the demo's trained model).

The bf16 bound: bf16 keeps 8 significant bits, so each rounding has relative error at most
u = 2^-8. The tiny model's image tower is 2 blocks; with its weights, activations and
residual stream in bf16, a frame feature passes a few dozen roundings whose errors mostly
cancel; measured, its L2-normalised feature moves by 1.4u on average and 1.7u at most. The
bound used is ``EPS = 4u`` (as for bf16 autocast in test_gpu.py); a video embedding (a mean
of frame features, normalised) moves by at most about as much, and a logit ``s cos(v, t)``
(unit t) by at most ``s * EPS``. A mistake in the bf16 path (the images not normalised, a
wrong mean or std) breaks this bound; normalising in bf16 itself stays within it.
"""
import numpy as np
import pytest
import torch
import torch.nn.functional as F

from zar.method import views as V
from zar.method.encoder import VideoEncoder
from zar.method.frames import FramePlan, PreparedVideo, Unreadable, crop, resize_short
from zar.method.tpt import TuneConfig, Tuner

U = 2.0 ** -8
EPS = 4 * U
COLOURS = {"red": (230, 30, 30), "green": (30, 200, 30), "blue": (30, 30, 230), "yellow": (230, 230, 30),
           "cyan": (30, 220, 220), "magenta": (220, 30, 220), "white": (240, 240, 240), "orange": (240, 140, 20)}


def synthetic_prepared(video_id: str, cfg: V.ViewConfig, pre, n: int, colour, seed: int) -> PreparedVideo:
    """What `prepare_video` returns, made without a decoder: a coloured square moving over
    noise, frames at the view short side (4:3), the inference clip centre-cropped."""
    rng = np.random.default_rng(seed)
    short = cfg.view_short_side(pre.image_size)
    h, w = short, short * 4 // 3
    frames = rng.integers(40, 90, size=(n, h, w, 3), dtype=np.uint8)
    side = h // 3
    for i in range(n):
        x = int(i * (w - side) / max(1, n - 1))
        frames[i, h // 3:h // 3 + side, x:x + side] = colour
    t = torch.from_numpy(frames).permute(0, 3, 1, 2).contiguous()
    plan = FramePlan.make(n, cfg, video_id)
    infer = crop(resize_short(t[torch.from_numpy(plan.infer)], pre.image_size), pre.image_size, "center")
    return PreparedVideo(video_id, plan, t[torch.from_numpy(plan.view_frames)].contiguous(), infer.contiguous(), n,
                         fps=15.0, partial=False, frames_read=n, frames_declared=n)


def images_of(prepared: PreparedVideo, cfg: V.ViewConfig) -> int:
    return len(prepared.plan.view_frames) * cfg.crops + len(prepared.plan.infer)


@pytest.fixture
def videos(tiny_model):
    _, pre = tiny_model
    cfg = V.ViewConfig(crops=3)
    return cfg, [synthetic_prepared(f"v{i}", cfg, pre, n=12 + 5 * i, colour=list(COLOURS.values())[i], seed=i)
                 for i in range(6)]


def batch_sizes(monkeypatch) -> list[int]:
    """Record the size of every image batch the encoder runs."""
    sizes: list[int] = []
    real = VideoEncoder.encode_batch

    def recording(self, images):
        sizes.append(int(images.shape[0]))
        return real(self, images)

    monkeypatch.setattr(VideoEncoder, "encode_batch", recording)
    return sizes


def test_stream_equals_one_video_at_a_time_with_full_batches(tiny_model, videos, monkeypatch):
    model, pre = tiny_model
    cfg, prepared = videos
    alone = VideoEncoder(model, pre, cfg, batch_size=100_000)  # one batch per video
    expected = [alone.encode(p) for p in prepared]
    items = [(i, p) for i, p in enumerate(prepared)]
    items.insert(3, ("bad", Unreadable("bad", "cannot open")))
    sizes = batch_sizes(monkeypatch)
    out = list(VideoEncoder(model, pre, cfg, batch_size=50).stream(iter(items)))
    assert [k for k, *_ in out] == [k for k, _ in items]  # in order, the unreadable one in its place
    bad = out[3]
    assert bad[1].error == "cannot open" and bad[2] is None and bad[3] is None
    good = [o for o in out if o[0] != "bad"]
    for (_, _, views, infer), (v_ref, i_ref) in zip(good, expected):
        assert views.shape == v_ref.shape == (cfg.n_views, 64)
        assert torch.allclose(views, v_ref, atol=1e-5) and torch.allclose(infer, i_ref, atol=1e-5)
    total = sum(images_of(p, cfg) for p in prepared)
    assert total > 3 * 50 and any(images_of(p, cfg) % 50 for p in prepared)  # batches really cross videos
    assert sizes == [50] * (total // 50) + ([total % 50] if total % 50 else [])


def test_no_batch_spans_two_groups(tiny_model, videos, monkeypatch):
    model, pre = tiny_model
    cfg, prepared = videos
    sizes = batch_sizes(monkeypatch)
    group = lambda key: key // 4  # noqa: E731  videos 0-3, then 4-5
    out = list(VideoEncoder(model, pre, cfg, batch_size=64).stream(enumerate(prepared), group=group))
    assert [k for k, *_ in out] == list(range(6))
    expected = []
    for members in ([0, 1, 2, 3], [4, 5]):
        n = sum(images_of(prepared[i], cfg) for i in members)
        expected += [64] * (n // 64) + ([n % 64] if n % 64 else [])
    assert sizes == expected


def test_bf16_image_tower_within_bf16_precision(tiny_model):
    model, pre = tiny_model
    cfg = V.ViewConfig(crops=3)
    names = list(COLOURS)
    prepared = [synthetic_prepared(f"v{i}", cfg, pre, n=16, colour=COLOURS[names[i % len(names)]], seed=100 + i)
                for i in range(200)]
    fp32 = VideoEncoder(model, pre, cfg, batch_size=512)
    bf16 = VideoEncoder(model, pre, cfg, batch_size=512, precision="bf16")
    assert bf16.visual is not model.visual and next(model.visual.parameters()).dtype == torch.float32  # a copy
    assert next(bf16.visual.parameters()).dtype == torch.bfloat16
    a = [(v, i) for _, _, v, i in fp32.stream(enumerate(prepared))]
    b = [(v, i) for _, _, v, i in bf16.stream(enumerate(prepared))]
    va, ia = torch.stack([v for v, _ in a]), torch.stack([i for _, i in a])
    vb, ib = torch.stack([v for v, _ in b]), torch.stack([i for _, i in b])
    assert vb.dtype == torch.float32
    assert (va - vb).norm(dim=-1).max() <= EPS and (ia - ib).norm(dim=-1).max() <= EPS
    assert not torch.equal(va, vb)  # the bf16 tower did run in bf16
    # the frame features themselves, before any averaging
    frames = torch.cat([p.infer_frames for p in prepared[:8]])
    fa = F.normalize(fp32.encode_images(frames), dim=-1)
    fb = F.normalize(bf16.encode_images(frames), dim=-1)
    assert (fa - fb).norm(dim=-1).max() <= EPS
    # logits (the tiny random model predicts one class for all of these videos, so predictions
    # are compared on the demo's fine-tuned model: test_demo_method.py)
    tuner = Tuner(model, [f"a {c} square" for c in names], TuneConfig(steps=0), "cpu")
    scale = float(model.logit_scale.exp())
    for x, y in zip(tuner.tune(va, ia), tuner.tune(vb, ib)):
        assert (x.logits_before - y.logits_before).abs().max() <= scale * EPS


def test_unknown_precision_is_refused(tiny_model):
    from zar.core.errors import UserError

    model, pre = tiny_model
    with pytest.raises(UserError, match="image precision 'fp8'"):
        VideoEncoder(model, pre, V.ViewConfig(), precision="fp8")
