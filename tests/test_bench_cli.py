"""`zar bench`: the FLOP count against the ViT arithmetic written out, and the command itself."""
import pytest

from zar.backbone import build_model
from zar.cost import flops
from zar.cli import main as zar
from zar.views import ViewConfig


def vit_macs(tokens: int, width: int, layers: int, patches: int, patch_dim: int, out_dim: int) -> int:
    """Multiply-adds of a CLIP ViT image tower: per layer q/k/v/out projections (4 N d^2),
    the MLP (8 N d^2), attention scores and their use (2 N^2 d); the patch embedding; the projection."""
    per_layer = 12 * tokens * width**2 + 2 * tokens**2 * width
    return layers * per_layer + patches * patch_dim * width + width * out_dim


def test_vit_b16_flops_match_the_arithmetic():
    model, pre = build_model("ViT-B-16:none")
    f = flops(model, pre, ViewConfig(), [f"class {i}" for i in range(5)], device="cpu")
    macs = vit_macs(tokens=197, width=768, layers=12, patches=196, patch_dim=3 * 16 * 16, out_dim=512)
    assert f["gflops_per_frame"] == pytest.approx(2 * macs / 1e9, rel=1e-3)
    # the paper's 281 "GFLOPs" for the 16-frame inference clip are multiply-adds
    assert f["gflops_inference_clip"] / 2 == pytest.approx(281, rel=0.01)
    assert f["view_frames"] == 768 and f["gflops_per_video_total"] > 48 * f["gflops_inference_clip"]


def test_bench_prints_both_paths_their_ratio_the_matrix_rate_and_the_table1_estimate(capsys, ffmpeg):
    assert zar(["bench", "pipeline", "--backbone", "tiny", "--videos", "2", "--reference-videos", "1",
                "--seconds", "1", "--size", "96x72", "--classes", "5", "--set", "run.workers=0"]) == 0
    out = capsys.readouterr().out
    for what in ("read", "encode", "tune", "total", "reference", "ratio", "matrix rate", "TFLOP/s", "images/s",
                 "peak memory", "start-up", "GFLOPs", "device-hours"):
        assert what in out, out
    total = next(line for line in out.splitlines() if line.startswith("total")).split()
    ours, ref = float(total[1].removesuffix("ms")), float(total[2].removesuffix("ms"))
    assert float(total[3].removesuffix("x")) == pytest.approx(ref / ours, rel=0.05)
    lever = float(total[4].removesuffix("ms"))  # the bf16 image tower, timed beside
    assert float(total[5].removesuffix("x")) == pytest.approx(ref / lever, rel=0.05)
    assert "zar bf16: run.image_precision=bf16" in out
    assert sum(line.startswith("Table 1 of") for line in out.splitlines()) == 2
