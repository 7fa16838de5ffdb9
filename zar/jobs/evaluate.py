"""`zar evaluate`: vanilla CLIP or ZAR over a list of videos, in one process.

Reads each video once, encodes its views, tunes the prompt for it and predicts, writing
one JSON line per video as it goes (a crashed run resumes), then a summary JSON. The
workflow splits the same work into `zar encode` + `zar tune` so that ablations reuse the
embeddings; both paths run the same functions and give the same predictions.
"""
from __future__ import annotations

import logging
import time
from pathlib import Path


log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    from zar.method.settings import add_settings_arguments

    p.add_argument("--videos", required=True, help="video list CSV (path and label; video_id optional)")
    p.add_argument("--classes", required=True, help="class list (classes.csv, or .txt with one name per line)")
    p.add_argument("--root", default=None, help="directory the relative video paths start from")
    p.add_argument("--ext", default=None, help="replace the video file suffix (e.g. .mp4 for normalised copies)")
    p.add_argument("--backbone", default="vitb16_openai",
                   help="backbone name (vitb16_openai, tiny), ARCH:PRETRAINED, spec .json or a zar checkpoint dir")
    from zar.method.testtime import METHODS

    p.add_argument("--method", choices=[m.name for m in METHODS.values() if m.kind == "episodic"], default="zar",
                   help="the test-time method (episodic ones; an online method runs over orders: zar encode + "
                        "zar tune), default zar")
    p.add_argument("--out", required=True, help="output directory: summary.json and predictions.jsonl")
    add_settings_arguments(p)


def outputs(args) -> list:
    out = Path(args.out)
    return [(out, "dir"), (out / "summary.json", "file"), (out / "predictions.jsonl", "file")]


def run(args) -> int:
    from zar.jobs.common import labelled_videos, start
    from zar.method.encoder import VideoEncoder
    from zar.method.frames import iter_prepared
    from zar.method.results import JsonLines, PredictionLog
    from zar.method.runs import evaluate_videos
    from zar.method.testtime import build

    job = start(args, args.method)
    settings = job.settings
    job.check_views_kept(settings.views.n_views)
    classes, rows = labelled_videos(args.classes, args.videos, args.root, args.ext)
    model, pre = job.model()
    encoder = VideoEncoder.for_run(model, pre, settings.views, settings.run, job.device)
    tuner = build(args.method, model, job.class_texts(classes), settings, job.device)
    out_dir = Path(args.out)
    predictions = PredictionLog(out_dir / "predictions.jsonl", _fingerprint(args, job),
                                resume=settings.tune.mode == "episodic", n_classes=len(classes.names))
    skipped = JsonLines(out_dir / "skipped.jsonl.part", fresh=not predictions.done)
    partial = JsonLines(out_dir / "partial.jsonl.part", fresh=not predictions.done)
    seen = set(predictions.done) | {s["video_id"] for s in skipped.records}
    todo = [(i, r) for i, r in enumerate(rows) if r.video_id not in seen]
    log.info("evaluate %s: %d videos listed, %d to do, %d classes, %d views, device %s",
             args.method, len(rows), len(todo), len(classes), settings.views.n_views, job.device)
    t0 = time.perf_counter()
    prepared = iter_prepared([r for _, r in todo], settings.views, pre, settings.run.backend, settings.run.timeout,
                             settings.run.workers)
    evaluate_videos(todo, prepared, encoder, tuner, args.method, predictions, skipped, partial,
                    skip=settings.run.non_finite == "skip")
    try:
        summary = _write_summary(args, job, classes, rows, pre, predictions, skipped, partial, time.perf_counter() - t0)
    except BaseException:
        predictions.abandon()
        raise
    predictions.committed()
    skipped.remove()
    partial.remove()
    print(f"{args.method}: top-1 {summary['top1']:.2f}% top-5 {summary['top5']:.2f}% (before tuning "
          f"{summary['top1_before_tuning']:.2f}%, views ensemble {summary['top1_ensemble']:.2f}%) on "
          f"{summary['n_evaluated']} of {summary['n_listed']} listed videos ({summary['n_skipped']} skipped) "
          f"-> {Path(args.out) / 'summary.json'}")
    return 0


def _fingerprint(args, job) -> str:
    from zar.core.files import sha256_file
    from zar.method.results import fingerprint

    s = job.settings
    return fingerprint(sha256_file(args.videos), sha256_file(args.classes), args.root, args.ext, s.views.to_dict(),
                       s.tune.to_dict(), job.spec.to_dict(), args.method)


def _write_summary(args, job, classes, rows, pre, predictions, skipped, partial, seconds) -> dict:
    from zar.method.results import frames_record, write_summary

    out_dir, settings = Path(args.out), job.settings
    recs = predictions.finish([r.video_id for r in rows])
    return write_summary(
        out_dir / "summary.json", method=args.method, records=recs, n_listed=len(rows),
        skipped=sorted(skipped.records, key=lambda s: s["list_position"]), class_names=list(classes.names),
        inputs={"videos": args.videos, "classes": args.classes},
        settings={**settings.to_dict(), "view_short_side": settings.views.view_short_side(pre.image_size),
                  "frames": frames_record(settings.views, job.spec)},
        backbone=job.spec.to_dict(), predictions=out_dir / "predictions.jsonl",
        partial=[p for p in partial.records if p["video_id"] in predictions.done],
        extra={"root": args.root, "seconds": seconds},
    )
