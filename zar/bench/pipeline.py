"""`zar bench pipeline`: zar's evaluation path (`zar encode` + `zar tune` as the workflow runs
them) against the plain reference (:mod:`zar.bench.reference`), and again with the other image
precision, in one run on one device; the tower and the tuner alone; the Table 1 estimate."""
from __future__ import annotations

import dataclasses
import math
import os
import tempfile
import time
from pathlib import Path

import torch

from zar.bench.device import compute_dtype, matrix_rate, peak_memory, random_images, startup_seconds, sync, tower_rate
from zar.bench.estimate import add_estimate_arguments, print_table1
from zar.core.errors import UserError


def add_pipeline_arguments(p) -> None:
    from zar.method.settings import add_settings_arguments

    p.add_argument("--backbone", default="ViT-B-16:none",
                   help="backbone to time (default ViT-B-16 with random weights: speed does not depend on them)")
    p.add_argument("--classes", type=int, default=160, help="number of classes (text prompts), default 160 (K600)")
    p.add_argument("--videos", type=int, default=8, help="videos timed on zar's path (default 8)")
    p.add_argument("--reference-videos", type=int, default=2, help="videos timed on the reference path (default 2)")
    p.add_argument("--seconds", type=float, default=10.0, help="length of the synthetic clips (default 10 s, 30 fps)")
    p.add_argument("--size", default="340x256", help="frame size of the synthetic clips (default 340x256)")
    p.add_argument("--clip", default=None,
                   help="time on this video file instead of a synthetic clip made with ffmpeg (--seconds and --size "
                        "then do not apply)")
    p.add_argument("--tune-batches", default="",
                   help="comma-separated run.tune_batch sizes at which to time the tuner alone, e.g. 16,64,128")
    p.add_argument("--json", default=None, help="also write every figure to this JSON file")
    add_estimate_arguments(p)
    add_settings_arguments(p)


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
            raise RuntimeError(f"benchmark clip unreadable: {p.error}")
        images += p.images(len(enc.crops))
        infer_images += len(p.plan.infer)
        views.append(v)
        infers.append(i)
    sync(device)
    encode = time.perf_counter() - t_all - waited - first
    read = waited
    tuner = Tuner(model, class_texts, settings.tune, device=device)
    v, i = torch.stack(views), torch.stack(infers)
    tuner.tune(v[:run.tune_batch], i[:run.tune_batch])  # warm-up at the batch's shape (kernels, autograd)
    sync(device)
    t1 = time.perf_counter()
    for s in range(0, len(rows), run.tune_batch):
        tuner.tune(v[s:s + run.tune_batch], i[s:s + run.tune_batch])
    sync(device)
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
        sync(device)
        t0 = time.perf_counter()
        results = []
        for s in range(0, n, b):
            results += tuner.tune(v[s:s + b], i[s:s + b])
        sync(device)
        tune = (time.perf_counter() - t0) / n
        t0 = time.perf_counter()
        for k, r in enumerate(results):
            to_json(record(f"v{k}", 0, r, "zar"), indent=None)
        rec = (time.perf_counter() - t0) / n
        on_device = [dataclasses.replace(r, logits_before=r.logits_before.to(device),
                                         logits_after=r.logits_after.to(device),
                                         logits_ensemble=r.logits_ensemble.to(device)) for r in results]
        sync(device)
        t0 = time.perf_counter()
        for k, r in enumerate(on_device):
            to_json(record(f"v{k}", 0, r, "zar"), indent=None)
        rec_dev = (time.perf_counter() - t0) / n
        out.append({"tune_batch": b, "videos": n, "tune": tune, "records": rec, "records_from_device": rec_dev})
    return out


def tune_batches(text: str) -> list[int]:
    try:
        batches = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise UserError(f"--tune-batches {text!r}: expected sizes separated by commas, e.g. 16,64") from None
    if any(b < 1 for b in batches):
        raise UserError(f"--tune-batches {text!r}: sizes must be positive")
    return batches


def check_clip(args) -> None:
    import shutil

    if args.clip and not Path(args.clip).is_file():
        raise UserError(f"--clip {args.clip}: no such file")
    if not args.clip and shutil.which("ffmpeg") is None:
        raise UserError("the synthetic benchmark clip is made with the ffmpeg program, which is not installed here: "
                        "install it, or time on a video file of yours with --clip FILE")


def run_paths(args, settings, model, pre, texts, device) -> tuple[dict, dict, dict]:
    """zar's path with the settings' image precision and with the other one, and the reference."""
    from zar.bench.clips import make_clip
    from zar.bench.reference import reference_path
    from zar.core.splitfiles import VideoRow

    with tempfile.TemporaryDirectory() as tmp:
        clip = Path(args.clip).resolve() if args.clip else Path(tmp) / "clip.mp4"
        if not args.clip:
            make_clip(clip, args.seconds, args.size)
        n = max(args.videos, args.reference_videos) + 1
        rows = [VideoRow(f"bench{i:03d}", str(clip), class_index=0) for i in range(n)]
        zar_path(rows[:1], settings, model, pre, texts, device)  # warm-up: imports, kernels, reader workers
        ours = zar_path(rows[1:args.videos + 1], settings, model, pre, texts, device)
        # the other image precision (run.image_precision): the bf16 tower, a lever outside the protocol
        s_other = dataclasses.replace(settings, run=dataclasses.replace(settings.run, image_precision=other_precision(
            settings)))
        zar_path(rows[:1], s_other, model, pre, texts, device)
        lever = zar_path(rows[1:args.videos + 1], s_other, model, pre, texts, device)
        ref = reference_path(rows[1:args.reference_videos + 1], settings, model, pre, texts, device)
    return ours, lever, ref


def other_precision(settings) -> str:
    return "bf16" if settings.run.image_precision == "autocast" else "autocast"


def towers_alone(model, pre, settings, device) -> dict:
    """Images/s of the image tower alone, both precisions, at the run's batch size and twice it."""
    from zar.method.encoder import VideoEncoder

    reps = 20 if device.startswith("cuda") else 2
    out = {}
    for name in (settings.run.image_precision, other_precision(settings)):
        out[name] = {}
        for b in sorted({settings.run.batch_size, 2 * settings.run.batch_size}):
            enc = VideoEncoder(model, pre, settings.views, device, batch_size=b, precision=name)
            out[name][b] = tower_rate(enc, random_images(b, pre.image_size, device), reps)[0]
    return out


def measure(args) -> dict:
    """Every figure of the benchmark, as ``--json`` writes them."""
    from zar.core.provenance import provenance
    from zar.method.cost import flops
    from zar.method.settings import load_settings
    from zar.model.backbone import build_model

    batches = tune_batches(args.tune_batches)
    check_clip(args)
    settings = load_settings(args.config, args.set)
    device = settings.run.resolved_device()
    up = startup_seconds(args.backbone)
    model, pre = build_model(args.backbone, device=device)
    texts = [f"action number {i}" for i in range(args.classes)]
    rates = {str(dt).removeprefix("torch."): matrix_rate(device, dt)
             for dt in {compute_dtype(device, p) for p in ("autocast", "bf16")}}
    ours, lever, ref = run_paths(args, settings, model, pre, texts, device)
    sweep = tune_sweep(model, texts, settings, device, ours["views"], ours["infer"], batches) if batches else []
    towers = towers_alone(model, pre, settings, device)
    prov = provenance()
    mine, other = settings.run.image_precision, other_precision(settings)
    strip = lambda res: {k: v for k, v in res.items() if k not in ("views", "infer")}  # noqa: E731
    return {
        "created": prov["created"], "device": prov["device"], "torch": torch.__version__, "backbone": args.backbone,
        "classes": args.classes, "videos": args.videos, "clip": str(args.clip) if args.clip else
        {"seconds": args.seconds, "size": args.size, "fps": 30}, "cpus": os.cpu_count(),
        "settings": settings.to_dict(), "views": settings.views.to_dict(), "tune_batch": settings.run.tune_batch,
        "precision": mine, "other_precision": other, "zar": {mine: strip(ours), other: strip(lever)},
        "reference": ref, "matrix_rates": rates, "tower_alone": towers, "peak_memory": peak_memory(device),
        "startup_s": up, "flops": flops(model, pre, settings.views, texts, settings.tune, device),
        "tune_sweep": sweep, "git_commit": prov.get("git_commit"),
    }


def print_stages(f: dict) -> None:
    mine, other = f["precision"], f["other_precision"]
    ours, lever, ref = f["zar"][mine], f["zar"][other], f["reference"]
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


def print_encoder(f: dict) -> None:
    device = "cuda" if f["device"] != "cpu" else "cpu"
    for name in (f["precision"], f["other_precision"]):
        res = f["zar"][name]
        ips = res["images"] / res["encode"] if res["encode"] else float("nan")
        achieved = ips * f["flops"]["gflops_per_frame"] / 1e3  # TFLOP/s through the image encoder
        dt = str(compute_dtype(device, name)).removeprefix("torch.")
        rate = f["matrix_rates"][dt]
        print(f"zar ({name}) encodes {res['images']:.0f} images per video (each frame and crop once) at {ips:,.0f} "
              f"images/s = {achieved:.2f} TFLOP/s, {100 * achieved / rate:.0f}% of the measured "
              f"{dt} matrix rate {rate:.2f} TFLOP/s")
    for name, by_batch in f["tower_alone"].items():
        print(f"image tower alone ({name}, images already on the device): " + ", ".join(
            f"{ips:,.0f} images/s at batch {b}" for b, ips in by_batch.items()))


def print_report(f: dict, args) -> None:
    cfg = f["settings"]["views"]
    n_views = len(cfg["rates"]) * cfg["samples_per_rate"] * cfg["crops"]
    run = f["settings"]["run"]
    source = f"clip {args.clip}" if args.clip else f"clips {args.seconds:g} s {args.size} 30 fps h264"
    print(f"device: {f['device']}; backbone {args.backbone}; {n_views} views x {cfg['frames']} frames + a "
          f"{cfg['infer_frames']}-frame inference clip; {args.classes} classes; {source}; torch {f['torch']}; "
          f"{run['workers']} reader workers ({f['cpus']} CPUs), image batch {run['batch_size']}, "
          f"tune batch {run['tune_batch']}; {args.videos} videos")
    print_stages(f)
    print_encoder(f)
    print(f"reference encodes {f['reference']['images']} images per video (every view's frames)")
    print(f"peak memory: {f['peak_memory']}; start-up of a job (imports + model): {f['startup_s']:.1f} s")
    print(f"GFLOPs (2 per multiply-add) per video: inference clip {f['flops']['gflops_inference_clip']:.1f}, "
          f"in all {f['flops']['gflops_per_video_total']:.1f}")
    for row in f["tune_sweep"]:
        print(f"tuner alone, tune_batch {row['tune_batch']:>4} ({row['videos']} videos, {args.classes} classes): "
              f"{row['tune'] * 1000:.2f} ms per video; records {row['records'] * 1000:.2f} ms per video "
              f"({row['records_from_device'] * 1000:.2f} ms from tensors left on the device)")


def pipeline(args) -> int:
    from zar.core.files import write_json

    figures = measure(args)
    print_report(figures, args)
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
    return 0 if math.isfinite(figures["zar"][figures["precision"]]["total"]) else 1
