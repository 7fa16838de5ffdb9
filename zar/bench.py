"""`zar bench`: speed figures, printed (a benchmark asserts nothing). Subcommands:

- ``pipeline`` (the main one): in one run on one device, zar's path (`zar encode` +
  `zar tune` as the workflow runs them: readers ahead in worker processes, each (frame, crop)
  encoded once, videos tuned in batches, the text tower cut at the last end-of-text token)
  against a straightforward reference written here (one video at a time, each of the 48
  views read and encoded on its own, the full 77-token text context, the model's fp32
  weights under autocast), and zar's path again with the other image precision
  (``run.image_precision``: the protocol's autocast, or the bf16 image tower). Per video:
  read, encode, tune, total, their ratio; images/s and the share of the device's matrix rate
  (of the dtype the tower multiplies in) measured in the same run; peak memory; the start-up
  of a `zar` job; GFLOPs; and an estimate of the paper's Table 1 in device-hours from the
  measured rates and the list sizes in ``splits/``.
- ``train-step`` / ``train-data``: the fine-tuning step and input pipeline (clips/s).
- ``read``: the video reader's backends (ms per batched read).
"""
from __future__ import annotations

import dataclasses
import math
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch


def add_arguments(p) -> None:
    from zar.config import add_settings_arguments

    sub = p.add_subparsers(dest="what", required=True, metavar="{pipeline,train-step,train-data,read}")
    s = sub.add_parser("pipeline", help="zar's path and a straightforward reference, per video, side by side")
    s.add_argument("--backbone", default="ViT-B-16:none",
                   help="backbone to time (default ViT-B-16 with random weights: speed does not depend on them)")
    s.add_argument("--classes", type=int, default=160, help="number of classes (text prompts), default 160 (K600)")
    s.add_argument("--videos", type=int, default=8, help="videos timed on zar's path (default 8)")
    s.add_argument("--reference-videos", type=int, default=2, help="videos timed on the reference path (default 2)")
    s.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic clips (default 10 s, 30 fps)")
    s.add_argument("--size", default="340x256", help="frame size of the synthetic clips (default 340x256)")
    s.add_argument("--config-file", default="config/config.yaml",
                   help="the workflow config whose Table 1 is estimated (default config/config.yaml)")
    s.add_argument("--splits", default=None, help="splits folder of that config (default: its splits_dir)")
    add_settings_arguments(s)

    from zar.train.bench import add_data_arguments, add_step_arguments

    add_step_arguments(sub.add_parser("train-step", help="time fine-tuning steps on random clips"))
    add_data_arguments(sub.add_parser("train-data", help="time decoding + augmentation through the DataLoader"))
    from zar.data.readbench import add_read_arguments

    add_read_arguments(sub.add_parser("read", help="time the video reader's backends on a synthetic clip"))


def run(args) -> int:
    if args.what == "pipeline":
        return pipeline(args)
    if args.what in ("train-step", "train-data"):
        from zar.train.bench import run_bench

        return run_bench(args)
    from zar.data.readbench import run_read

    return run_read(args)


# ----------------------------------------------------------------------------- helpers
def make_clip(path: Path, seconds: float, size: str, fps: int = 30) -> None:
    """A synthetic h264 clip (ffmpeg's test pattern, a keyframe every second)."""
    subprocess.run(["ffmpeg", "-loglevel", "error", "-nostdin", "-y", "-f", "lavfi", "-i",
                    f"testsrc2=size={size}:rate={fps}:duration={seconds}", "-c:v", "libx264", "-pix_fmt", "yuv420p",
                    "-g", str(fps), str(path)], check=True)


def _sync(device: str) -> None:
    if device.startswith("cuda"):
        torch.cuda.synchronize()


def matrix_rate(device: str, dtype: torch.dtype) -> float:
    """Measured TFLOP/s of a large ``dtype`` matmul on ``device``."""
    n, reps = (8192, 20) if device.startswith("cuda") else (1024, 5)
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)
    a @ b
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        a @ b
    _sync(device)
    return 2 * n ** 3 * reps / (time.perf_counter() - t0) / 1e12


def compute_dtype(device: str, precision: str) -> torch.dtype:
    """What the image tower's matmuls run in: bf16 on CUDA (autocast) or with the bf16 tower, else fp32."""
    return torch.bfloat16 if device.startswith("cuda") or precision == "bf16" else torch.float32


def startup_seconds(backbone: str) -> float:
    """Wall time of a fresh process that does what a `zar tune` job does before its first
    video: import the verb and build the model."""
    code = ("import zar.tune, zar.encode; from zar.backbone import build_model; "
            f"build_model({backbone!r})")
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-c", code], check=True, capture_output=True)
    return time.perf_counter() - t0


def peak_memory(device: str) -> str:
    if device.startswith("cuda"):
        return f"{torch.cuda.max_memory_allocated() / 2**30:.2f} GiB on the GPU"
    return f"{resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20:.2f} GiB resident (this process)"


# ----------------------------------------------------------------------------- zar's path
def zar_path(rows, settings, model, pre, class_texts, device) -> dict:
    """`zar encode` then `zar tune` on ``rows``, in one process: seconds per video by stage."""
    from zar.encode import VideoEncoder
    from zar.frames import iter_prepared
    from zar.tta import Tuner

    cfg, run = settings.views, settings.run
    enc = VideoEncoder.for_run(model, pre, cfg, run, device)
    waited = 0.0  # waiting for the readers (what reading ahead did not hide)
    images = 0
    views, infers = [], []

    def timed(it):
        nonlocal waited
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            waited += time.perf_counter() - t0
            yield item

    t_all = time.perf_counter()
    prepared = iter_prepared(rows, cfg, pre, run.backend, run.timeout, run.workers,
                             pin_memory=device.startswith("cuda"))
    for _, p, v, i in enc.stream(timed(enumerate(prepared))):
        if v is None:
            raise RuntimeError(f"benchmark clip unreadable: {p['error']}")
        images += len(p["plan"].view_frames) * len(enc.crops) + len(p["plan"].infer)
        views.append(v)
        infers.append(i)
    _sync(device)
    encode = time.perf_counter() - t_all - waited
    read = waited
    tuner = Tuner(model, class_texts, settings.tune, device=device)
    t1 = time.perf_counter()
    v, i = torch.stack(views), torch.stack(infers)
    for s in range(0, len(rows), run.tune_batch):
        tuner.tune(v[s:s + run.tune_batch], i[s:s + run.tune_batch])
    _sync(device)
    tune = time.perf_counter() - t1
    n = len(rows)
    return {"read": read / n, "encode": encode / n, "tune": tune / n,
            "total": (time.perf_counter() - t_all) / n, "images": images / n}


# ----------------------------------------------------------------------------- the reference
def reference_path(rows, settings, model, pre, class_texts, device) -> dict:
    """The method written out plainly: per video, each view read, resized, cropped and
    encoded on its own; the text tower over the full 77-token context; one AdamW step."""
    import decord
    import open_clip
    import torch.nn.functional as F
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    from zar import views as V
    from zar.backbone import autocast

    cfg, tune = settings.views, settings.tune
    mean = torch.tensor(pre.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, 3, 1, 1)

    timer = {"read": 0.0}

    def clip_embedding(vr, idx, short, position):
        t0 = time.perf_counter()
        frames = torch.from_numpy(vr.get_batch(list(map(int, idx))).asnumpy()).permute(0, 3, 1, 2)
        vr.seek(0)
        timer["read"] += time.perf_counter() - t0
        h, w = V.resized_shape(*frames.shape[-2:], short)
        frames = TF.resize(frames, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
        top, left, s, _ = V.crop_box(h, w, pre.image_size, position)
        x = (frames[..., top:top + s, left:left + s].to(device).float() / 255 - mean) / std
        with torch.no_grad(), autocast(device):
            f = model.encode_image(x).float()
        return F.normalize(f.mean(0), dim=-1)

    tok = open_clip.get_tokenizer("ViT-B-16")
    ctx_tokens = tok([tune.ctx_init])[0]
    n_ctx = int((ctx_tokens != 0).sum()) - 2
    tokens = tok([f"{tune.ctx_init} {c}." for c in class_texts]).to(device)  # all 77 positions
    with torch.no_grad():
        emb = model.token_embedding(tokens).float()
    scale = model.logit_scale.exp().float()

    def text(ctx):
        k = tokens.shape[0]
        x = torch.cat([emb[:, :1], ctx.unsqueeze(0).expand(k, -1, -1), emb[:, 1 + n_ctx:]], dim=1)
        with autocast(device):
            x = model.transformer(x + model.positional_embedding, attn_mask=model.attn_mask)
            x = model.ln_final(x)
            x = x[torch.arange(k), tokens.argmax(dim=-1)] @ model.text_projection
        return F.normalize(x.float(), dim=-1)

    read = encode = tune_s = 0.0
    t_all = time.perf_counter()
    for row in rows:
        t0 = time.perf_counter()
        vr = decord.VideoReader(row.path, num_threads=1)
        n = len(vr)
        read += time.perf_counter() - t0
        t0 = time.perf_counter()
        feats = [clip_embedding(vr, V.clip_indices(n, cfg, row.video_id, view.rate, view.sample),
                                cfg.view_short_side(pre.image_size), view.crop) for view in V.view_plan(cfg)]
        infer = clip_embedding(vr, V.inference_indices(n, cfg.infer_frames), pre.image_size, "center")
        _sync(device)
        encode += time.perf_counter() - t0
        t0 = time.perf_counter()
        views = torch.stack(feats)
        ctx = emb[0, 1:1 + n_ctx].clone().requires_grad_(True)
        opt = torch.optim.AdamW([ctx], lr=tune.lr, weight_decay=tune.weight_decay)
        for _ in range(tune.steps):
            logits = scale * views @ text(ctx).t()
            p = logits.softmax(-1)
            entropy = -(p * logits.log_softmax(-1)).sum(-1)
            kept = entropy.argsort()[:int(len(views) * tune.ratio)]
            p_bar = p[kept].mean(0)
            loss = -(p_bar * p_bar.clamp_min(1e-30).log()).sum()
            opt.zero_grad()
            loss.backward()
            opt.step()
        with torch.no_grad():
            (scale * infer @ text(ctx).t()).argmax()
        _sync(device)
        tune_s += time.perf_counter() - t0
    n = len(rows)
    read += timer["read"]
    encode -= timer["read"]
    return {"read": read / n, "encode": encode / n, "tune": tune_s / n, "total": (time.perf_counter() - t_all) / n,
            "images": cfg.n_views * cfg.frames + cfg.infer_frames}


# ----------------------------------------------------------------------------- Table 1 estimate
def table1_estimate(config_file: str, splits: str | None, zar: dict, classes: int, bench_crops: int) -> dict:
    """Device-hours of the paper config's Table 1 from the measured per-video rates: every
    encoding (its union of videos; images scaled by its crops, or its inference clip alone)
    and every tuning job (scaled by its number of classes)."""
    import copy

    import yaml
    from snakemake.utils import validate

    import zar.workflow as plan
    from zar.splits.formats import read_videos

    cfg = copy.deepcopy(yaml.safe_load(Path(config_file).read_text()))
    validate(cfg, str(Path(__file__).resolve().parent.parent / "workflow/schemas/config.schema.yaml"))
    cfg["tables"] = [1]
    if splits:
        cfg["splits_dir"] = splits
    ids = lambda lst: {r.video_id for r in read_videos(lst)}  # noqa: E731
    per_image = zar["encode"] / zar["images"]
    encode_s = tune_s = 0.0
    n_videos = 0
    for enc in plan.encodings(cfg):
        videos = set().union(*(ids(lst) for lst in enc.lists))
        n_videos += len(videos)
        s = enc.settings
        view_images = (zar["images"] - 16) * s["views.crops"] / bench_crops if s["views.samples_per_rate"] else 0
        encode_s += len(videos) * per_image * (view_images + s["views.infer_frames"])
    for e in plan.evaluations(cfg):
        n_classes = len(Path(plan.classes_csv(cfg, e.dataset, e.evalset)).read_text().splitlines()) - 1
        per_video = zar["tune"] * n_classes / classes if e.method == "zar" else 0.0
        tune_s += len(ids(plan.videos_csv(cfg, e.dataset, e.evalset))) * per_video
    return {"encodings": len(plan.encodings(cfg)), "videos_encoded": n_videos, "encode_hours": encode_s / 3600,
            "tune_jobs": len(plan.evaluations(cfg)), "tune_hours": tune_s / 3600, "hours": (encode_s + tune_s) / 3600}


# ----------------------------------------------------------------------------- the command
def pipeline(args) -> int:
    from zar.backbone import build_model
    from zar.config import load_settings
    from zar.cost import flops
    from zar.splits.formats import VideoRow
    from zar.utils import provenance

    settings = load_settings(args.config, args.set)
    device = settings.run.resolved_device()
    up = startup_seconds(args.backbone)
    model, pre = build_model(args.backbone, device=device)
    texts = [f"action number {i}" for i in range(args.classes)]
    rates = {dt: matrix_rate(device, dt) for dt in {compute_dtype(device, p) for p in ("autocast", "bf16")}}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        make_clip(clip, args.seconds, args.size)
        rows = [VideoRow(f"bench{i:03d}", str(clip), class_index=0) for i in range(max(args.videos, args.reference_videos) + 1)]
        zar_path(rows[:1], settings, model, pre, texts, device)  # warm-up: imports, kernels, reader workers
        ours = zar_path(rows[1:args.videos + 1], settings, model, pre, texts, device)
        # the bf16 image tower (run.image_precision=bf16): a lever outside the protocol, timed beside it
        other = "bf16" if settings.run.image_precision == "autocast" else "autocast"
        s_other = dataclasses.replace(settings, run=dataclasses.replace(settings.run, image_precision=other))
        zar_path(rows[:1], s_other, model, pre, texts, device)
        lever = zar_path(rows[1:args.videos + 1], s_other, model, pre, texts, device)
        ref = reference_path(rows[1:args.reference_videos + 1], settings, model, pre, texts, device)
    f = flops(model, pre, settings.views, texts, settings.tune, device)
    prov = provenance()
    cfg = settings.views
    print(f"device: {prov['device']}; backbone {args.backbone}; {cfg.n_views} views x {cfg.frames} frames + a "
          f"{cfg.infer_frames}-frame inference clip; {args.classes} classes; clips {args.seconds:g} s {args.size} "
          f"30 fps h264; torch {torch.__version__}")
    mine = settings.run.image_precision
    print(f"{'per video':<12}{'zar':>12}{'reference':>12}{'ratio':>9}{'zar ' + other:>16}{'ratio':>9}"
          f"   (zar: image tower {mine}; zar {other}: run.image_precision={other})")
    for k in ("read", "encode", "tune", "total"):
        ratio = ref[k] / ours[k] if ours[k] > 0 else float("inf")
        ratio2 = ref[k] / lever[k] if lever[k] > 0 else float("inf")
        print(f"{k:<12}{ours[k] * 1000:>10.1f}ms{ref[k] * 1000:>10.1f}ms{ratio:>8.1f}x"
              f"{lever[k] * 1000:>14.1f}ms{ratio2:>8.1f}x")
    for name, res in ((mine, ours), (other, lever)):
        ips = res["images"] / res["encode"] if res["encode"] else float("nan")
        achieved = ips * f["gflops_per_frame"] / 1e3  # TFLOP/s through the image encoder
        dt = compute_dtype(device, name)
        print(f"zar ({name}) encodes {res['images']:.0f} images per video (each frame and crop once) at {ips:,.0f} "
              f"images/s = {achieved:.2f} TFLOP/s, {100 * achieved / rates[dt]:.0f}% of the measured "
              f"{str(dt).removeprefix('torch.')} matrix rate {rates[dt]:.2f} TFLOP/s")
    print(f"reference encodes {ref['images']} images per video (every view's frames)")
    print(f"peak memory: {peak_memory(device)}; start-up of a job (imports + model): {up:.1f} s")
    print(f"GFLOPs (2 per multiply-add) per video: inference clip {f['gflops_inference_clip']:.1f}, "
          f"in all {f['gflops_per_video_total']:.1f}")
    if Path(args.config_file).is_file():
        for name, res in ((mine, ours), (other, lever)):
            est = table1_estimate(args.config_file, args.splits, res, args.classes, cfg.crops)
            print(f"Table 1 of {args.config_file} on this device at the rates of zar ({name}): {est['encodings']} "
                  f"encodings of {est['videos_encoded']:,} videos ({est['encode_hours']:.2f} h) + {est['tune_jobs']} "
                  f"tuning jobs ({est['tune_hours']:.2f} h) = {est['hours']:.2f} device-hours (start-ups and "
                  f"downloads not counted; clips as long as the benchmark's)")
    return 0 if math.isfinite(ours["total"]) else 1
