"""`zar bench`: how fast is one video, and what does it cost in FLOPs? Prints figures.

Times the three stages of a ZAR evaluation on a synthetic clip (read + resize, encode all
views, tune + predict) and counts FLOPs of the 16-frame inference clip (the figure papers
quote) and of the whole per-video cost (all view frames, text passes, one backward).
"""
from __future__ import annotations

import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import torch


def add_arguments(p) -> None:
    from zar.config import add_settings_arguments

    p.add_argument("--backbone", default="ViT-B-16:none",
                   help="backbone to time (default ViT-B-16 with random weights: speed does not depend on them)")
    p.add_argument("--classes", type=int, default=101, help="number of classes (text prompts), default 101")
    p.add_argument("--videos", type=int, default=5, help="timed videos after one warm-up (default 5)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic clip (default 10 s, 30 fps)")
    p.add_argument("--size", default="320x240", help="frame size of the synthetic clip (default 320x240)")
    p.add_argument("--clip", default=None, help="time this video file instead of a synthetic clip made with ffmpeg")
    p.add_argument("--no-flops", action="store_true", help="skip the FLOP count")
    add_settings_arguments(p)


def _make_clip(path: Path, seconds: float, size: str) -> None:
    subprocess.run(["ffmpeg", "-loglevel", "error", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate=30:duration={seconds}", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    str(path)], check=True)


def run(args) -> int:
    from zar.backbone import build_model
    from zar.config import load_settings
    from zar.cost import flops
    from zar.encode import VideoEncoder, prepare_video
    from zar.lists import VideoRow
    from zar.tta import Tuner
    from zar.utils import provenance

    settings = load_settings(args.config, args.set)
    device = settings.run.resolved_device()
    model, pre = build_model(args.backbone, device=device)
    enc = VideoEncoder(model, pre, settings.views, device=device, batch_size=settings.run.batch_size)
    tuner = Tuner(model, [f"action number {i}" for i in range(args.classes)], settings.tune, device=device)
    times: dict[str, list[float]] = {"read": [], "encode": [], "tune": []}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(args.clip) if args.clip else Path(tmp) / "clip.mp4"
        if not args.clip:
            _make_clip(clip, args.seconds, args.size)
        for i in range(args.videos + 1):
            row = VideoRow(f"bench{i}", str(clip), 0, "")
            t0 = time.perf_counter()
            prepared = prepare_video(row, settings.views, pre, settings.run.backend, settings.run.timeout)
            t1 = time.perf_counter()
            views, infer = enc.encode(prepared)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t2 = time.perf_counter()
            tuner(views, infer)
            if device.startswith("cuda"):
                torch.cuda.synchronize()
            t3 = time.perf_counter()
            if i > 0:  # the first video warms up
                for k, v in zip(times, (t1 - t0, t2 - t1, t3 - t2)):
                    times[k].append(v)
    prov = provenance()
    print(f"device: {prov['device']}  backbone: {args.backbone}  views: {settings.views.n_views} x "
          f"{settings.views.frames} frames  classes: {args.classes}  tune steps: {settings.tune.steps}")
    print(f"clip: {args.clip or f'{args.seconds:.0f} s, {args.size}, 30 fps, h264'}; {args.videos} videos timed (median)")
    for k, v in times.items():
        print(f"  {k:<7} {statistics.median(v) * 1000:9.1f} ms/video")
    total = sum(statistics.median(v) for v in times.values())
    print(f"  total   {total * 1000:9.1f} ms/video  ({1 / total:.2f} videos/s, one process)")
    if device.startswith("cuda"):
        print(f"  peak GPU memory {torch.cuda.max_memory_allocated() / 2**30:.2f} GiB")
    if not args.no_flops:
        f = flops(model, pre, settings.views, [f"action number {i}" for i in range(args.classes)], settings.tune,
                  device)
        print(f"  GFLOPs (2 per multiply-add): inference clip {f['gflops_inference_clip']:.1f} "
              f"({settings.views.infer_frames} frames); per video in all {f['gflops_per_video_total']:.1f} "
              f"({f['view_frames']} view frames + text passes)")
        print(f"  as multiply-adds (GMACs, the convention of most papers' 'GFLOPs'): inference clip "
              f"{f['gflops_inference_clip'] / 2:.1f}; per video in all {f['gflops_per_video_total'] / 2:.1f}")
    return 0


