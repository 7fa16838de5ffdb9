"""`zar bench`: the FLOP count against the ViT arithmetic written out, and the command itself."""
import json

import pytest

from zar.model.backbone import build_model
from zar.method.cost import flops
from zar.cli import main as zar
from zar.method.views import ViewConfig


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


def test_bench_json_clip_tune_sweep_and_the_table1_estimate_from_the_file(capsys, tmp_path, make_video):
    clip = make_video("clip.mp4", n=40)
    figures = tmp_path / "bench.json"
    assert zar(["bench", "pipeline", "--backbone", "tiny", "--videos", "3", "--reference-videos", "1",
                "--clip", str(clip), "--classes", "5", "--tune-batches", "2,4", "--json", str(figures),
                "--set", "run.workers=0"]) == 0
    out = capsys.readouterr().out
    assert f"clip {clip}" in out and "image tower alone (autocast" in out and "image tower alone (bf16" in out
    sweep = [line for line in out.splitlines() if line.startswith("tuner alone")]
    assert [line.split("tune_batch")[1].split()[0] for line in sweep] == ["2", "4"]
    estimate = [line for line in out.splitlines() if line.startswith("Table 1 of")]
    assert len(estimate) == 2 and all("start-ups" in line for line in estimate)
    data = json.loads(figures.read_text())
    assert data["classes"] == 5 and set(data["zar"]) == {"autocast", "bf16"}
    assert [row["tune_batch"] for row in data["tune_sweep"]] == [2, 4]
    for res in data["zar"].values():  # total is read + encode + tune, per video
        assert res["total"] == pytest.approx(res["read"] + res["encode"] + res["tune"], rel=1e-9)
        assert res["infer_images"] == 16 and res["images"] > res["infer_images"]
    # the same estimate from the file alone (e.g. figures measured where snakemake is not installed)
    assert zar(["bench", "table1", "--rates", str(figures)]) == 0
    again = [line for line in capsys.readouterr().out.splitlines() if line.startswith("Table 1 of")]
    assert again == estimate


def test_bench_refuses_a_missing_clip_and_a_file_that_is_not_its_figures(capsys, tmp_path):
    assert zar(["bench", "pipeline", "--backbone", "tiny", "--clip", str(tmp_path / "nope.mp4")]) == 2
    assert "nope.mp4: no such file" in capsys.readouterr().err
    other = tmp_path / "other.json"
    other.write_text('{"top1": 50}')
    assert zar(["bench", "table1", "--rates", str(other)]) == 2
    assert "other.json: not a figures file" in capsys.readouterr().err
    assert zar(["bench", "pipeline", "--backbone", "tiny", "--tune-batches", "4,x"]) == 2
    assert "--tune-batches" in capsys.readouterr().err


def test_bench_tower_times_both_precisions(capsys):
    assert zar(["bench", "tower", "--backbone", "tiny", "--batch", "8", "--reps", "2"]) == 0
    out = capsys.readouterr().out
    assert [line.split()[0] for line in out.splitlines()[1:]] == ["autocast", "bf16"]
    assert all("images/s" in line for line in out.splitlines()[1:])
