"""Table 1's "Vanilla CLIP (ViFi-CLIP's protocol)" row is measured as ViFi-CLIP measures it
(``views.preprocess: vifi``, ``tune.class_text: name``): its evaluation pipeline (mmaction's
``Resize(scale=(-1, 256))``, ``CenterCrop(224)``, ``Normalize`` with ImageNet statistics) and
the class names as its label files spell them.

The reference below is that pipeline written out on one frame in float64: mmcv's
``rescale_size`` (each side ``int(side * factor + 0.5)``), OpenCV's INTER_LINEAR sampling
(half-pixel centres, the source index clamped at the borders), the centre crop at
``(side - 224) // 2``, then ``(x - mean) / std`` with ViFi-CLIP's mean (123.675, 116.28,
103.53) and std (58.395, 57.12, 57.375). zar rounds the exact bilinear value to uint8, so each
pixel is within 0.5 of the reference (plus float32's rounding of the weights, far below 1e-3);
OpenCV itself rounds its weights to 11 bits and lands within one grey level of it.
"""
from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml

from zar.model.backbone import IMAGENET_MEAN, IMAGENET_STD, Preprocess, view_preprocess
from zar.method.encoder import VideoEncoder
from zar.method.frames import prepare_video, vifi_resize_crop
from zar.core.splitfiles import VideoRow, class_text, read_classes
from zar.method.views import ViewConfig

ROOT = Path(__file__).resolve().parents[1]
VIFI_MEAN = np.array([123.675, 116.28, 103.53])
VIFI_STD = np.array([58.395, 57.12, 57.375])


def mmaction_eval(frame: np.ndarray, short: int = 256, size: int = 224) -> np.ndarray:
    """ViFi-CLIP's evaluation pipeline on one uint8 (H, W, 3) frame: float64 (3, size, size)."""
    h, w = frame.shape[:2]
    f = short / min(h, w)
    nh, nw = int(h * f + 0.5), int(w * f + 0.5)

    def taps(n_out: int, n_in: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        i0, i1, wt = np.zeros(n_out, int), np.zeros(n_out, int), np.zeros(n_out)
        for d in range(n_out):
            s = (d + 0.5) * n_in / n_out - 0.5
            k = math.floor(s)
            t = s - k
            if k < 0:
                k, t = 0, 0.0
            if k >= n_in - 1:
                k, t = n_in - 1, 0.0
            i0[d], i1[d], wt[d] = k, min(k + 1, n_in - 1), t
        return i0, i1, wt

    y0, y1, wy = taps(nh, h)
    x0, x1, wx = taps(nw, w)
    img = frame.astype(np.float64)
    rows = img[y0] * (1 - wy)[:, None, None] + img[y1] * wy[:, None, None]
    out = rows[:, x0] * (1 - wx)[None, :, None] + rows[:, x1] * wx[None, :, None]
    top, left = (nh - size) // 2, (nw - size) // 2
    out = out[top:top + size, left:left + size]
    return ((out - VIFI_MEAN) / VIFI_STD).transpose(2, 0, 1)


@pytest.mark.parametrize("hw", [(240, 320), (256, 340), (360, 480), (250, 333)])
def test_vifi_preprocessing_equals_vifi_clip_s_pipeline_on_one_frame(hw):
    rng = np.random.default_rng(hw[0])
    h, w = hw
    yy, xx = np.mgrid[0:h, 0:w]
    frame = (rng.integers(0, 256, size=(h, w, 3)) * 0.5 + np.stack([yy, xx, yy + xx], -1) % 128).astype(np.uint8)
    ref = mmaction_eval(frame)
    pre = view_preprocess(Preprocess(224), ViewConfig(preprocess="vifi"))
    assert (pre.mean, pre.std, pre.interpolation) == (IMAGENET_MEAN, IMAGENET_STD, "bilinear")
    np.testing.assert_allclose(np.array(IMAGENET_MEAN) * 255, VIFI_MEAN, rtol=1e-12)
    np.testing.assert_allclose(np.array(IMAGENET_STD) * 255, VIFI_STD, rtol=1e-12)
    t = torch.from_numpy(frame).permute(2, 0, 1).unsqueeze(0)
    cropped = vifi_resize_crop(t, 256, 224)
    assert cropped.dtype == torch.uint8 and cropped.shape == (1, 3, 224, 224)
    model = torch.nn.Module()
    model.visual = torch.nn.Identity()  # only the encoder's normalisation is used here
    enc = VideoEncoder(model, pre, ViewConfig(preprocess="vifi"))
    got = enc._normalise(cropped)[0].double().numpy()
    bound = (0.5 + 1e-3) / VIFI_STD.min()  # half a grey level, over the smallest std
    assert np.abs(got - ref).max() <= bound
    # the protocol's own preprocessing differs: short side 224 and CLIP's statistics
    ours = view_preprocess(Preprocess(224), ViewConfig())
    assert ours == Preprocess(224)


def test_the_inference_clip_follows_the_setting(make_video):
    """`prepare_video` with ``views.preprocess: vifi`` gives vifi_resize_crop of the frames as
    the reader returns them (scaled in the decoder no further than the views' short side)."""
    from zar.video import read_video

    path = make_video("v.mp4", n=20, h=90, w=120)
    pre = Preprocess(64)
    cfg = ViewConfig(samples_per_rate=0, infer_frames=8, preprocess="vifi")
    got = prepare_video(VideoRow("v", str(path), class_index=0), cfg, pre)
    assert got.infer_frames.shape == (8, 3, 64, 64)
    short = cfg.view_short_side(64)
    frames, _ = read_video(str(path), lambda info: got.plan.infer, max_short_side=short)
    t = torch.from_numpy(np.ascontiguousarray(frames)).permute(0, 3, 1, 2)
    assert torch.equal(got.infer_frames, vifi_resize_crop(t, short, 64))
    protocol = prepare_video(VideoRow("v", str(path), class_index=0), ViewConfig(samples_per_rate=0, infer_frames=8),
                             pre)
    assert not torch.equal(protocol.infer_frames, got.infer_frames)


def test_class_names_as_vifi_clip_spells_them():
    """``tune.class_text: name``: the class name with underscores as spaces (ViFi-CLIP's label
    files: UCF101's CamelCase names unchanged); ``dataset`` splits UCF101's CamelCase."""
    ucf = read_classes(ROOT / "splits/ucf101/classes.csv", "ucf101")
    assert [class_text(n) for n in ucf.names][:3] == ["ApplyEyeMakeup", "ApplyLipstick", "Archery"]
    assert ucf.texts[:3] == ("apply eye makeup", "apply lipstick", "archery")
    hmdb = read_classes(ROOT / "splits/hmdb51/classes.csv", "hmdb51")
    assert class_text(hmdb.names[0]) == "brush hair" == hmdb.texts[0]


def test_the_paper_config_s_vifi_row_uses_vifi_clip_s_protocol():
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    run = cfg["zeroshot"]["runs"]["vanilla_vifi"]
    assert run["method"] == "vanilla" and run["backbone"] == "vitb16_openai"
    assert run["settings"] == {"views.samples_per_rate": 0, "views.infer_frames": 32, "views.preprocess": "vifi",
                               "tune.template": "{c}", "tune.class_text": "name"}
    row = next(r for r in cfg["zeroshot"]["rows"] if r["run"] == "vanilla_vifi")
    assert "kick" in row["protocol"] and "ImageNet" in row["protocol"]  # the note says what still differs
