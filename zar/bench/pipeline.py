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
  of a `zar` job; GFLOPs; the tuner alone at several ``run.tune_batch`` sizes (and the
  records `zar tune` writes); and an estimate of the paper's Table 1 in device-hours from the
  measured rates and the list sizes in ``splits/``. ``--json`` keeps every figure.
- ``table1``: that estimate again from a ``--json`` file (e.g. one measured on a GPU node
  whose environment lacks the workflow's packages).
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
    from zar.method.settings import add_settings_arguments

    sub = p.add_subparsers(dest="what", required=True,
                           metavar="{pipeline,table1,tower,train-step,train-data,read}")
    s = sub.add_parser("pipeline", help="zar's path and a straightforward reference, per video, side by side")
    s.add_argument("--backbone", default="ViT-B-16:none",
                   help="backbone to time (default ViT-B-16 with random weights: speed does not depend on them)")
    s.add_argument("--classes", type=int, default=160, help="number of classes (text prompts), default 160 (K600)")
    s.add_argument("--videos", type=int, default=8, help="videos timed on zar's path (default 8)")
    s.add_argument("--reference-videos", type=int, default=2, help="videos timed on the reference path (default 2)")
    s.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic clips (default 10 s, 30 fps)")
    s.add_argument("--size", default="340x256", help="frame size of the synthetic clips (default 340x256)")
    s.add_argument("--clip", default=None,
                   help="time on this video file instead of a synthetic clip made with ffmpeg (--seconds and --size "
                        "then do not apply)")
    s.add_argument("--tune-batches", default="",
                   help="comma-separated run.tune_batch sizes at which to time the tuner alone, e.g. 16,64,128")
    s.add_argument("--json", default=None, help="also write every figure to this JSON file")
    _estimate_arguments(s)
    add_settings_arguments(s)
    w = sub.add_parser("tower", help="the image tower alone, both precisions, eager and (--compile) torch.compile")
    w.add_argument("--backbone", default="ViT-B-16:none", help="backbone to time (default ViT-B-16, random weights)")
    w.add_argument("--batch", type=int, default=256, help="images per call (default 256, run.batch_size's default)")
    w.add_argument("--reps", type=int, default=20, help="timed calls per variant (default 20)")
    w.add_argument("--compile", action="store_true", help="also time the tower compiled by torch.compile")
    add_settings_arguments(w)
    t = sub.add_parser("table1", help="the Table 1 estimate from the figures of `zar bench pipeline --json`")
    t.add_argument("--rates", required=True, help="JSON file written by `zar bench pipeline --json`")
    _estimate_arguments(t)

    from zar.bench.train import add_data_arguments, add_step_arguments

    add_step_arguments(sub.add_parser("train-step", help="time fine-tuning steps on random clips"))
    add_data_arguments(sub.add_parser("train-data", help="time decoding + augmentation through the DataLoader"))
    from zar.bench.read import add_read_arguments

    add_read_arguments(sub.add_parser("read", help="time the video reader's backends on a synthetic clip"))


def _estimate_arguments(p) -> None:
    p.add_argument("--config-file", default="config/config.yaml",
                   help="the workflow config whose Table 1 is estimated (default config/config.yaml)")
    p.add_argument("--splits", default=None, help="splits folder of that config (default: its splits_dir)")


def run(args) -> int:
    if args.what == "pipeline":
        return pipeline(args)
    if args.what == "table1":
        return table1_from_json(args)
    if args.what == "tower":
        return tower(args)
    if args.what in ("train-step", "train-data"):
        from zar.bench.train import run_bench

        return run_bench(args)
    from zar.bench.read import run_read

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


def tower_rate(model, pre, cfg, device: str, precision: str, batch: int, reps: int) -> float:
    """Images/s of the image tower alone (``VideoEncoder``'s batch call on uint8 images already
    on the device: no reading, no copies, no gathering): the ceiling of the encode stage."""
    from zar.method.encoder import VideoEncoder

    enc = VideoEncoder(model, pre, cfg, device, batch_size=batch, precision=precision)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (batch, 3, pre.image_size, pre.image_size), dtype=torch.uint8, generator=g)
    images = images.to(device)
    enc._encode_batch(images)  # warm-up: kernels, casts
    _sync(device)
    t0 = time.perf_counter()
    for _ in range(reps):
        enc._encode_batch(images)
    _sync(device)
    return batch * reps / (time.perf_counter() - t0)


def tower(args) -> int:
    """The image tower alone at ``--batch`` images per call, for both precisions: images/s
    eager and, with ``--compile``, compiled by torch.compile (its compile time, images/s and
    how far its features are from the eager ones: the largest distance between L2-normalised
    features, a relative error)."""
    import torch.nn.functional as F

    from zar.model.backbone import build_model
    from zar.method.settings import load_settings
    from zar.method.encoder import VideoEncoder
    from zar.core.provenance import provenance

    settings = load_settings(args.config, args.set)
    device = settings.run.resolved_device()
    model, pre = build_model(args.backbone, device=device)
    g = torch.Generator().manual_seed(0)
    images = torch.randint(0, 256, (args.batch, 3, pre.image_size, pre.image_size), dtype=torch.uint8, generator=g)
    images = images.to(device)
    print(f"device: {provenance()['device']}; backbone {args.backbone}; {args.batch} images per call, median of "
          f"{args.reps}; torch {torch.__version__}")

    def rate(enc) -> tuple[float, torch.Tensor]:
        out = enc._encode_batch(images)
        _sync(device)
        times = []
        for _ in range(args.reps):
            t0 = time.perf_counter()
            enc._encode_batch(images)
            _sync(device)
            times.append(time.perf_counter() - t0)
        return args.batch / sorted(times)[len(times) // 2], out

    for precision in ("autocast", "bf16"):
        enc = VideoEncoder(model, pre, settings.views, device, batch_size=args.batch, precision=precision)
        ips, ref = rate(enc)
        line = f"{precision:<9} eager {ips:>9,.0f} images/s"
        if args.compile:
            enc.visual = torch.compile(enc.visual)
            t0 = time.perf_counter()
            enc._encode_batch(images)
            _sync(device)
            compile_s = time.perf_counter() - t0
            ips_c, out = rate(enc)
            dist = float((F.normalize(out, dim=-1) - F.normalize(ref, dim=-1)).norm(dim=-1).max())
            line += (f"; compiled {ips_c:>9,.0f} images/s ({ips_c / ips:.2f}x), {compile_s:.0f} s to compile, "
                     f"features within {dist:.1e} of eager")
        print(line)
    return 0


def startup_seconds(backbone: str) -> float:
    """Wall time of a fresh process that does what a `zar tune` job does before its first
    video: import the verb and build the model."""
    code = ("import zar.jobs.tune, zar.method.encoder; from zar.model.backbone import build_model; "
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
    """`zar encode` then `zar tune` on ``rows``, in one process: seconds per video by stage.
    ``start``: the wait for the first video (the reader processes starting), once per job;
    ``read``: the later waits for the readers (what reading ahead did not hide)."""
    from zar.method.encoder import VideoEncoder
    from zar.method.frames import iter_prepared
    from zar.method.tpt import Tuner

    cfg, run = settings.views, settings.run
    enc = VideoEncoder.for_run(model, pre, cfg, run, device)
    first = None  # waiting for the first video: the readers starting
    waited = 0.0  # waiting for the readers later (what reading ahead did not hide)
    images = infer_images = 0
    views, infers = [], []

    def timed(it):
        nonlocal waited, first
        while True:
            t0 = time.perf_counter()
            try:
                item = next(it)
            except StopIteration:
                return
            if first is None:
                first = time.perf_counter() - t0
            else:
                waited += time.perf_counter() - t0
            yield item

    t_all = time.perf_counter()
    prepared = iter_prepared(rows, cfg, pre, run.backend, run.timeout, run.workers,
                             pin_memory=device.startswith("cuda"))
    for _, p, v, i in enc.stream(timed(enumerate(prepared))):
        if v is None:
            raise RuntimeError(f"benchmark clip unreadable: {p['error']}")
        images += len(p["plan"].view_frames) * len(enc.crops) + len(p["plan"].infer)
        infer_images += len(p["plan"].infer)
        views.append(v)
        infers.append(i)
    _sync(device)
    encode = time.perf_counter() - t_all - waited - first
    read = waited
    tuner = Tuner(model, class_texts, settings.tune, device=device)
    v, i = torch.stack(views), torch.stack(infers)
    tuner.tune(v[:run.tune_batch], i[:run.tune_batch])  # warm-up at the batch's shape (kernels, autograd)
    _sync(device)
    t1 = time.perf_counter()
    for s in range(0, len(rows), run.tune_batch):
        tuner.tune(v[s:s + run.tune_batch], i[s:s + run.tune_batch])
    _sync(device)
    tune = time.perf_counter() - t1
    n = len(rows)
    return {"start": first, "read": read / n, "encode": encode / n, "tune": tune / n,
            "total": (read + encode + tune) / n, "images": images / n, "infer_images": infer_images / n,
            "views": v, "infer": i}


def tune_sweep(model, class_texts, settings, device, views, infers, batches: list[int]) -> list[dict]:
    """The tuner alone at each batch size (``run.tune_batch``), on the benchmark's embeddings
    repeated to fill two batches of the largest size (the cost does not depend on the values):
    ms per video in ``Tuner.tune`` and in building the records `zar tune` writes (from the
    results as the tuner returns them, and, for comparison, from copies left on the device:
    one transfer per field and video, as the tuner returned them before)."""
    from zar.method.results import record
    from zar.method.tpt import Tuner
    from zar.core.files import to_json

    tuner = Tuner(model, class_texts, settings.tune, device=device)
    n = 2 * max(batches)
    reps = -(-n // views.shape[0])
    v, i = views.repeat(reps, 1, 1)[:n], infers.repeat(reps, 1)[:n]
    out = []
    for b in batches:
        tuner.tune(v[:b], i[:b])  # warm-up at this shape
        _sync(device)
        t0 = time.perf_counter()
        results = []
        for s in range(0, n, b):
            results += tuner.tune(v[s:s + b], i[s:s + b])
        _sync(device)
        tune = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for k, r in enumerate(results):
            to_json(record(f"v{k}", 0, r, "zar"), indent=None)
        rec = (time.perf_counter() - t0) / n
        on_device = [dataclasses.replace(r, logits_before=r.logits_before.to(device),
                                         logits_after=r.logits_after.to(device),
                                         logits_ensemble=r.logits_ensemble.to(device)) for r in results]
        _sync(device)
        t0 = time.perf_counter()
        for k, r in enumerate(on_device):
            to_json(record(f"v{k}", 0, r, "zar"), indent=None)
        rec_dev = (time.perf_counter() - t0) / n
        out.append({"tune_batch": b, "videos": n, "tune": tune, "records": rec, "records_from_device": rec_dev})
    return out


# ----------------------------------------------------------------------------- the reference
def reference_path(rows, settings, model, pre, class_texts, device) -> dict:
    """The method written out plainly: per video, each view read, resized, cropped and
    encoded on its own; the text tower over the full 77-token context; one AdamW step."""
    import decord
    import open_clip
    import torch.nn.functional as F
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    from zar.method import views as V
    from zar.model.backbone import autocast

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
def table1_estimate(config_file: str, splits: str | None, zar: dict, classes: int, bench_crops: int,
                    startup_s: float = 0.0) -> dict:
    """Device-hours of the paper config's Table 1 from the measured per-video rates: every
    encoding (its union of videos; the view images scaled by its crops, plus its inference
    clip; or its inference clip alone) at the encode stage's wall time per image (reading that
    the encoder did not hide included), every tuning job (scaled by its number of classes),
    and each job's start: ``startup_s`` (imports and model) per job, plus the readers' start
    per encoding job (one per shard)."""
    import copy

    import yaml
    from snakemake.utils import validate

    import zar.plan as plan
    from zar.core.errors import UserError
    from zar.core.splitfiles import read_videos

    cfg = copy.deepcopy(yaml.safe_load(Path(config_file).read_text()))
    # the workflow's schema, in the repository that holds the config (config/ beside workflow/)
    schema = Path(config_file).resolve().parent.parent / "workflow/schemas/config.schema.yaml"
    if not schema.is_file():
        raise UserError(f"{config_file}: the workflow's schema is not at {schema} (the config must be the one in "
                        "config/ of a zar checkout)")
    validate(cfg, str(schema))  # fills in the defaults
    cfg["tables"] = [1]
    if splits:
        cfg["splits_dir"] = splits
    ids = lambda lst: {r.video_id for r in read_videos(lst)}  # noqa: E731
    per_image = (zar["read"] + zar["encode"]) / zar["images"]
    encode_s = tune_s = 0.0
    n_videos = encode_jobs = 0
    for enc in plan.encodings(cfg):
        videos = set().union(*(ids(lst) for lst in enc.lists))
        n_videos += len(videos)
        encode_jobs += plan.n_shards(cfg, enc.dataset)
        s = enc.settings
        view_images = ((zar["images"] - zar["infer_images"]) * s["views.crops"] / bench_crops
                       if s["views.samples_per_rate"] else 0)
        encode_s += len(videos) * per_image * (view_images + s["views.infer_frames"])
    evaluations = plan.evaluations(cfg)
    for e in evaluations:
        n_classes = len(Path(plan.classes_csv(cfg, e.dataset, e.evalset)).read_text().splitlines()) - 1
        per_video = zar["tune"] * n_classes / classes if e.method == "zar" else 0.0
        tune_s += len(ids(plan.videos_csv(cfg, e.dataset, e.evalset))) * per_video
    start_s = (encode_jobs + len(evaluations)) * startup_s + encode_jobs * zar.get("start", 0.0)
    return {"encodings": len(plan.encodings(cfg)), "encode_jobs": encode_jobs, "videos_encoded": n_videos,
            "encode_hours": encode_s / 3600, "tune_jobs": len(evaluations), "tune_hours": tune_s / 3600,
            "start_hours": start_s / 3600, "hours": (encode_s + tune_s + start_s) / 3600}


def print_table1(config_file: str, splits: str | None, figures: dict) -> None:
    for name in (figures["precision"], figures["other_precision"]):
        res = figures["zar"][name]
        est = table1_estimate(config_file, splits, res, figures["classes"], figures["views"]["crops"],
                              figures.get("startup_s", 0.0))
        print(f"Table 1 of {config_file} on {figures['device']} at the rates of zar ({name}, tune_batch "
              f"{figures['tune_batch']}): {est['encodings']} encodings of {est['videos_encoded']:,} videos in "
              f"{est['encode_jobs']} jobs ({est['encode_hours']:.2f} h) + {est['tune_jobs']} tuning jobs "
              f"({est['tune_hours']:.2f} h) + the jobs' start-ups ({est['start_hours']:.2f} h) = {est['hours']:.2f} "
              f"device-hours (downloads, decoding and fine-tuning not counted; clips as long as the benchmark's)")


def table1_from_json(args) -> int:
    import json

    from zar.core.errors import UserError

    try:
        figures = json.loads(Path(args.rates).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{args.rates}: not a figures file of `zar bench pipeline --json` ({e})") from None
    missing = [k for k in ("zar", "precision", "other_precision", "classes", "views", "device", "tune_batch")
               if k not in figures]
    if missing:
        raise UserError(f"{args.rates}: not a figures file of `zar bench pipeline --json` (no {', '.join(missing)})")
    print(f"figures measured {figures.get('created', '?')} on {figures['device']}, torch {figures.get('torch', '?')}")
    print_table1(args.config_file, args.splits, figures)
    return 0


# ----------------------------------------------------------------------------- the command
def pipeline(args) -> int:
    import os
    import shutil

    from zar.model.backbone import build_model
    from zar.method.settings import load_settings
    from zar.method.cost import flops
    from zar.core.splitfiles import VideoRow
    from zar.core.errors import UserError
    from zar.core.files import write_json
    from zar.core.provenance import provenance

    try:
        batches = [int(x) for x in args.tune_batches.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--tune-batches {args.tune_batches!r}: expected sizes separated by commas, e.g. 16,64") from None
    if any(b < 1 for b in batches):
        raise UserError(f"--tune-batches {args.tune_batches!r}: sizes must be positive")
    if args.clip and not Path(args.clip).is_file():
        raise UserError(f"--clip {args.clip}: no such file")
    if not args.clip and shutil.which("ffmpeg") is None:
        raise UserError("the synthetic benchmark clip is made with the ffmpeg program, which is not installed here: "
                        "install it, or time on a video file of yours with --clip FILE")
    settings = load_settings(args.config, args.set)
    device = settings.run.resolved_device()
    up = startup_seconds(args.backbone)
    model, pre = build_model(args.backbone, device=device)
    texts = [f"action number {i}" for i in range(args.classes)]
    rates = {dt: matrix_rate(device, dt) for dt in {compute_dtype(device, p) for p in ("autocast", "bf16")}}
    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(tmp) / "clip.mp4"
        if args.clip:
            clip = Path(args.clip).resolve()
        else:
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
    sweep = tune_sweep(model, texts, settings, device, ours["views"], ours["infer"], batches) if batches else []
    cuda = device.startswith("cuda")
    tower = {name: {b: tower_rate(model, pre, settings.views, device, name, b, 20 if cuda else 2)
                    for b in sorted({settings.run.batch_size, 2 * settings.run.batch_size})}
             for name in (settings.run.image_precision, other)}
    f = flops(model, pre, settings.views, texts, settings.tune, device)
    prov = provenance()
    cfg = settings.views
    source = f"clip {args.clip}" if args.clip else f"clips {args.seconds:g} s {args.size} 30 fps h264"
    print(f"device: {prov['device']}; backbone {args.backbone}; {cfg.n_views} views x {cfg.frames} frames + a "
          f"{cfg.infer_frames}-frame inference clip; {args.classes} classes; {source}; torch {torch.__version__}; "
          f"{settings.run.workers} reader workers ({os.cpu_count()} CPUs), image batch {settings.run.batch_size}, "
          f"tune batch {settings.run.tune_batch}; {args.videos} videos")
    mine = settings.run.image_precision
    print(f"{'per video':<12}{'zar':>12}{'reference':>12}{'ratio':>9}{'zar ' + other:>16}{'ratio':>9}"
          f"   (zar: image tower {mine}; zar {other}: run.image_precision={other})")
    for k in ("read", "encode", "tune", "total"):
        ratio = ref[k] / ours[k] if ours[k] > 0 else float("inf")
        ratio2 = ref[k] / lever[k] if lever[k] > 0 else float("inf")
        print(f"{k:<12}{ours[k] * 1000:>10.1f}ms{ref[k] * 1000:>10.1f}ms{ratio:>8.1f}x"
              f"{lever[k] * 1000:>14.1f}ms{ratio2:>8.1f}x")
    print("(read: waiting for the reader processes, what reading ahead did not hide; encode: the rest of the "
          f"encode stage; total: read + encode + tune; the readers' start, once per job, not counted: "
          f"{ours['start']:.2f} s and {lever['start']:.2f} s)")

    encoder = {}
    for name, res in ((mine, ours), (other, lever)):
        ips = res["images"] / res["encode"] if res["encode"] else float("nan")
        achieved = ips * f["gflops_per_frame"] / 1e3  # TFLOP/s through the image encoder
        dt = compute_dtype(device, name)
        encoder[name] = {"images_per_s": ips, "tflops": achieved, "matrix_rate_tflops": rates[dt],
                         "matrix_dtype": str(dt).removeprefix("torch.")}
        print(f"zar ({name}) encodes {res['images']:.0f} images per video (each frame and crop once) at {ips:,.0f} "
              f"images/s = {achieved:.2f} TFLOP/s, {100 * achieved / rates[dt]:.0f}% of the measured "
              f"{str(dt).removeprefix('torch.')} matrix rate {rates[dt]:.2f} TFLOP/s")
    for name, by_batch in tower.items():
        print(f"image tower alone ({name}, images already on the device): " + ", ".join(
            f"{ips:,.0f} images/s at batch {b}" for b, ips in by_batch.items()))
    print(f"reference encodes {ref['images']} images per video (every view's frames)")
    print(f"peak memory: {peak_memory(device)}; start-up of a job (imports + model): {up:.1f} s")
    print(f"GFLOPs (2 per multiply-add) per video: inference clip {f['gflops_inference_clip']:.1f}, "
          f"in all {f['gflops_per_video_total']:.1f}")
    for row in sweep:
        print(f"tuner alone, tune_batch {row['tune_batch']:>4} ({row['videos']} videos, {args.classes} classes): "
              f"{row['tune'] * 1000:.2f} ms per video; records {row['records'] * 1000:.2f} ms per video "
              f"({row['records_from_device'] * 1000:.2f} ms from tensors left on the device)")
    strip = lambda res: {k: v for k, v in res.items() if k not in ("views", "infer")}  # noqa: E731
    figures = {
        "created": prov["created"], "device": prov["device"], "torch": torch.__version__, "backbone": args.backbone,
        "classes": args.classes, "videos": args.videos, "clip": str(args.clip) if args.clip else
        {"seconds": args.seconds, "size": args.size, "fps": 30}, "cpus": os.cpu_count(),
        "settings": settings.to_dict(), "views": cfg.to_dict(), "tune_batch": settings.run.tune_batch,
        "precision": mine, "other_precision": other, "zar": {mine: strip(ours), other: strip(lever)},
        "reference": ref, "encoder": encoder, "tower_alone": tower, "peak_memory": peak_memory(device), "startup_s": up, "flops": f,
        "tune_sweep": sweep, "git_commit": prov.get("git_commit"),
    }
    if args.json:
        write_json(args.json, figures)
    if Path(args.config_file).is_file():
        try:
            import snakemake  # noqa: F401  (the estimate reads the workflow's plan and schema)
        except ImportError:
            keep = f"--rates {args.json}" if args.json else "--rates FILE on the file of this command's --json FILE"
            print(f"Table 1 estimate: it reads the workflow's plan, whose packages (snakemake) are not installed "
                  f"here; run `zar bench table1 {keep}` where they are")
        else:
            print_table1(args.config_file, args.splits, figures)
    return 0 if math.isfinite(ours["total"]) else 1
