"""CUDA paths: bf16 autocast encoding and tuning agree with the fp32 CPU results.

Deselected automatically where no CUDA device is present (conftest.py)."""
import pytest
import torch
import torch.nn.functional as F

from zar.backbone import build_model
from zar.encode import VideoEncoder, prepare_video
from zar.lists import VideoRow
from zar.tta import TuneConfig, Tuner
from zar.views import ViewConfig

pytestmark = pytest.mark.gpu
CLASSES = ["red square", "green square", "blue square", "red circle", "green circle"]


@pytest.fixture(scope="module")
def models():
    cpu, pre = build_model("tiny", device="cpu")
    gpu, _ = build_model("tiny", device="cuda")
    return cpu, gpu, pre


def test_encoding_on_cuda_matches_cpu(models, tmp_path):
    from _train_data import write_video  # PyAV's own encoder: GPU machines may lack the ffmpeg program
    from conftest import moving_square

    cpu, gpu, pre = models
    path = tmp_path / "v.mp4"
    write_video(path, moving_square(n=40), fps=15)
    cfg = ViewConfig(crops=9)
    prepared = prepare_video(VideoRow("v", str(path), 0, ""), cfg, pre)
    v_cpu, i_cpu = VideoEncoder(cpu, pre, cfg, "cpu").encode(prepared)
    v_gpu, i_gpu = VideoEncoder(gpu, pre, cfg, "cuda").encode(prepared)
    assert v_gpu.dtype == torch.float32 and v_gpu.shape == v_cpu.shape == (144, 64)
    # bf16 autocast: per-view cosine similarity with the fp32 result
    assert F.cosine_similarity(v_cpu, v_gpu, dim=-1).min() > 0.995
    assert F.cosine_similarity(i_cpu, i_gpu, dim=0) > 0.995


def test_tuning_on_cuda(models):
    cpu, gpu, _ = models
    g = torch.Generator().manual_seed(0)
    views = F.normalize(torch.randn(48, 64, generator=g), dim=-1)
    infer = F.normalize(torch.randn(64, generator=g), dim=0)
    r_cpu = Tuner(cpu, CLASSES, TuneConfig(steps=1), "cpu")(views, infer)
    t_gpu = Tuner(gpu, CLASSES, TuneConfig(steps=1), "cuda")
    r_gpu = t_gpu(views, infer)
    r_gpu0 = Tuner(gpu, CLASSES, TuneConfig(steps=0), "cuda")(views, infer)
    assert torch.equal(r_gpu0.logits_after, r_gpu.logits_before)  # 0 steps = vanilla, on CUDA too
    assert t_gpu.prompt.ctx.device.type == "cuda" and t_gpu.prompt.ctx.dtype == torch.float32
    assert torch.allclose(r_cpu.logits_before, r_gpu.logits_before.cpu(), atol=0.05 * r_cpu.logits_before.abs().max())
    assert len(set(r_cpu.kept) & set(r_gpu.kept)) >= 0.9 * len(r_cpu.kept)
    assert not torch.equal(r_gpu.logits_after, r_gpu.logits_before)
    # episodic on CUDA: the same video twice gives the same answer
    assert torch.equal(t_gpu(views, infer).logits_after, r_gpu.logits_after)
