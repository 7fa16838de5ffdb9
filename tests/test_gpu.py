"""CUDA paths: bf16 autocast encoding and tuning agree with the fp32 CPU results within what
bf16's precision allows, and give the same predictions.

The bound: bf16 keeps 8 significant bits, so each rounding has relative error at most
u = 2^-8. A feature that passes a few rounded matmuls (the tiny model has 2 layers per tower)
and is then L2-normalised moves by at most ``EPS = 4u`` (about 1.6%) from its fp32 value
(the bf16 image tower, ``run.image_precision=bf16``, too: 1.7u measured on the CPU);
a logit ``s * cos(v, t)`` then moves by at most ``s * 2 * EPS``. A mistake in the bf16
path (images not normalised, a wrong mean or std) breaks this bound.

Deselected automatically where no CUDA device is present (conftest.py)."""
import pytest
import torch
import torch.nn.functional as F

from zar.model.backbone import build_model
from zar.method.encoder import VideoEncoder
from zar.method.frames import prepare_video
from zar.core.splitfiles import VideoRow
from zar.method.tpt import TuneConfig, Tuner
from zar.method.views import ViewConfig

pytestmark = pytest.mark.gpu
CLASSES = ["red square", "green square", "blue square", "red circle", "green circle"]
U = 2.0 ** -8  # bf16's unit roundoff
EPS = 4 * U  # bound on the relative error of an L2-normalised feature after the tiny towers


@pytest.fixture(scope="module")
def models():
    cpu, pre = build_model("tiny", device="cpu")
    gpu, _ = build_model("tiny", device="cuda")
    return cpu, gpu, pre


@pytest.mark.parametrize("precision", ["autocast", "bf16"])
def test_encoding_on_cuda_matches_cpu(models, tmp_path, precision):
    from _train_data import write_video  # PyAV's own encoder: GPU machines may lack the ffmpeg program
    from conftest import moving_square

    cpu, gpu, pre = models
    path = tmp_path / "v.mp4"
    write_video(path, moving_square(n=40), fps=15)
    cfg = ViewConfig(crops=9)
    prepared = prepare_video(VideoRow("v", str(path), class_index=0), cfg, pre)
    v_cpu, i_cpu = VideoEncoder(cpu, pre, cfg, "cpu").encode(prepared)
    pinned = prepared.pin_memory()  # as the reader's DataLoader gives them
    v_gpu, i_gpu = VideoEncoder(gpu, pre, cfg, "cuda", precision=precision).encode(pinned)
    assert v_gpu.dtype == torch.float32 and v_gpu.shape == v_cpu.shape == (144, 64)
    assert (v_gpu - v_cpu).norm(dim=-1).max() <= EPS
    assert (i_gpu - i_cpu).norm() <= EPS
    # and not trivially equal: the GPU path does run in bf16
    assert not torch.equal(v_gpu, v_cpu)


def top2_margin(logits: torch.Tensor) -> float:
    top = logits.float().topk(2).values
    return float(top[0] - top[1])


def test_tuning_on_cuda(models):
    """Tuning on CUDA (text tower under bf16 autocast) against the fp32 CPU tuner, with the
    bound derived above: the logits before tuning within ``s * 2 * EPS`` of the CPU's; after
    tuning, the GPU's own tuned context run through the fp32 CPU text tower gives the GPU's
    logits within the same bound; a prediction that differs from the fp32 one only where the
    fp32 top-2 margin is under twice the bound (each logit moves by at most the bound); the
    step is one AdamW step (each element moves by at most lr, plus the decay lr * wd * |x|)."""
    cpu, gpu, _ = models
    g = torch.Generator().manual_seed(0)
    n = 32
    views = F.normalize(torch.randn(n, 48, 64, generator=g), dim=-1)
    infer = F.normalize(torch.randn(n, 64, generator=g), dim=-1)
    cfg = TuneConfig(steps=1)
    t_cpu = Tuner(cpu, CLASSES, cfg, "cpu")
    r_cpu = t_cpu.tune(views, infer)
    t_gpu = Tuner(gpu, CLASSES, cfg, "cuda")
    r_gpu = t_gpu.tune(views, infer)
    r_gpu0 = Tuner(gpu, CLASSES, TuneConfig(steps=0), "cuda").tune(views, infer)
    scale = float(cpu.logit_scale.exp())
    bound = scale * 2 * EPS  # |s cos(v, t) - s cos(v, t')| <= s |t - t'| for unit v; text in bf16
    init = t_cpu.prompt.ctx_init_vectors
    # AdamW's first step: decay lr * wd * |x|, then lr * g / (|g| + eps), at most lr; plus fp32 rounding (2^-24
    # relative) of the update and of the difference taken here
    step_bound = cfg.lr * (1 + cfg.weight_decay * init.abs()) * (1 + 2.0 ** -20) + 2.0 ** -22 * init.abs()
    k = int(48 * cfg.ratio)
    for j, (a, b, b0) in enumerate(zip(r_cpu, r_gpu, r_gpu0)):
        assert torch.equal(b0.logits_after, b.logits_before)  # 0 steps = vanilla, on CUDA too
        assert (a.logits_before - b.logits_before).abs().max() <= bound
        if int(a.logits_before.argmax()) != int(b.logits_before.argmax()):
            assert top2_margin(a.logits_before) <= 2 * bound, j
        assert b.context is not None and b.context.shape == init.shape
        assert ((b.context - init).abs() <= step_bound).all(), j
        assert not torch.equal(b.context, init) and not torch.equal(b.logits_after, b.logits_before)
        with torch.no_grad():
            ref_after = t_cpu.logits(infer[j], t_cpu.prompt(b.context.unsqueeze(0))[0])  # fp32 text of the GPU's context
        assert (ref_after - b.logits_after).abs().max() <= bound, j
        if int(ref_after.argmax()) != int(b.logits_after.argmax()):
            assert top2_margin(ref_after) <= 2 * bound, j
        assert len(a.kept) == len(set(a.kept)) == len(b.kept) == len(set(b.kept)) == k
    assert t_gpu.prompt.ctx.device.type == "cuda" and t_gpu.prompt.ctx.dtype == torch.float32
    # episodic on CUDA: the same videos again give the same answers
    again = t_gpu.tune(views, infer)
    assert all(torch.equal(x.logits_after, y.logits_after) for x, y in zip(again, r_gpu))


@pytest.mark.parametrize("precision", ["autocast", "bf16"])
def test_image_attention_uses_a_fused_kernel_on_cuda(models, precision):
    """open_clip asks nn.MultiheadAttention for no weights, so on CUDA PyTorch runs a fused
    attention kernel (flash, memory-efficient or cuDNN) instead of a softmax over the scores."""
    from torch.profiler import ProfilerActivity, profile

    _, gpu, pre = models
    enc = VideoEncoder(gpu, pre, ViewConfig(), "cuda", precision=precision)
    images = torch.randint(0, 256, (8, 3, pre.image_size, pre.image_size), dtype=torch.uint8)
    with profile(activities=[ProfilerActivity.CPU, ProfilerActivity.CUDA]) as prof:
        enc.encode_images(images)
        torch.cuda.synchronize()
    names = {e.key for e in prof.key_averages()}
    fused = {n for n in names if "flash_attention" in n or "efficient_attention" in n or "cudnn_attention" in n}
    assert fused, sorted(names)
