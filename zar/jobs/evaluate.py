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
    p.add_argument("--method", choices=("vanilla", "zar"), default="zar", help="vanilla CLIP or ZAR (default)")
    p.add_argument("--out", required=True, help="output directory: summary.json and predictions.jsonl")
    add_settings_arguments(p)


def run(args) -> int:
    from zar.method.encoder import VideoEncoder
    from zar.method.frames import iter_prepared, partial_record
    from zar.jobs.common import labelled_videos, start
    from zar.method.results import PredictionLog, fingerprint, record, write_summary
    from zar.method.tpt import Tuner
    from zar.jobs.tune import frames_record
    from zar.core.files import sha256_file
    from zar.core.progress import progress

    job = start(args, args.method)
    settings, tune_cfg, device, spec = job.settings, job.settings.tune, job.device, job.spec
    job.check_views_kept(settings.views.n_views)
    classes, rows = labelled_videos(args.classes, args.videos, args.root, args.ext)
    model, pre = job.model()
    encoder = VideoEncoder.for_run(model, pre, settings.views, settings.run, device)
    texts = job.class_texts(classes)
    tuner = Tuner(model, texts, tune_cfg, device=device)
    out_dir = Path(args.out)
    fp = fingerprint(sha256_file(args.videos), sha256_file(args.classes), args.root, args.ext,
                     settings.views.to_dict(), tune_cfg.to_dict(), spec.to_dict(), args.method)
    predictions = PredictionLog(out_dir / "predictions.jsonl", fp, resume=tune_cfg.mode == "episodic")
    skipped_path = out_dir / "skipped.jsonl.part"
    if not predictions.done:
        skipped_path.unlink(missing_ok=True)
    skipped = _read_skipped(skipped_path)
    partial_path = out_dir / "partial.jsonl.part"
    if not predictions.done:
        partial_path.unlink(missing_ok=True)
    seen = set(predictions.done) | {s["video_id"] for s in skipped}
    todo = [(i, r) for i, r in enumerate(rows) if r.video_id not in seen]
    log.info("evaluate %s: %d videos listed, %d to do, %d classes, %d views, device %s",
             args.method, len(rows), len(todo), len(classes), settings.views.n_views, device)
    t0 = time.perf_counter()
    prepared_iter = iter_prepared([r for _, r in todo], settings.views, pre, settings.run.backend,
                                  settings.run.timeout, settings.run.workers)
    for (pos, row), prepared in progress(zip(todo, prepared_iter), total=len(todo), desc=f"evaluate {args.method}"):
        if "error" in prepared:
            log.warning("skipped %s: %s", row.path, prepared["error"])
            skipped.append({"video_id": row.video_id, "path": row.path, "reason": prepared["error"], "list_position": pos})
            _append_skipped(skipped_path, skipped[-1])
            continue
        if prepared.get("partial"):
            log.warning("%s is damaged or truncated: evaluated on the %d frames that decode (%s declared)",
                        row.path, prepared["frames_read"], prepared["frames_declared"])
            _append_skipped(partial_path, partial_record(row, prepared))
        t_video = time.perf_counter()
        views, infer = encoder.encode(prepared)
        result = tuner(views, infer)
        result.seconds = time.perf_counter() - t_video + float(prepared.get("read_seconds", 0.0))
        predictions.add(record(row.video_id, row.class_index, result, args.method))
    recs = predictions.finish([r.video_id for r in rows])
    skipped.sort(key=lambda s: s["list_position"])
    summary = write_summary(
        out_dir / "summary.json", method=args.method, records=recs, n_listed=len(rows), skipped=skipped,
        class_names=list(classes.names), inputs={"videos": args.videos, "classes": args.classes},
        settings={**settings.to_dict(), "view_short_side": settings.views.view_short_side(pre.image_size),
                  "frames": frames_record(settings.views, spec)},
        backbone=spec.to_dict(), predictions=out_dir / "predictions.jsonl",
        partial=[p for p in _read_skipped(partial_path) if p["video_id"] in predictions.done],
        extra={"root": args.root, "seconds": time.perf_counter() - t0},
    )
    skipped_path.unlink(missing_ok=True)
    partial_path.unlink(missing_ok=True)
    print(f"{args.method}: top-1 {summary['top1']:.2f}% top-5 {summary['top5']:.2f}% (before tuning "
          f"{summary['top1_before_tuning']:.2f}%, views ensemble {summary['top1_ensemble']:.2f}%) on "
          f"{summary['n_evaluated']} of {summary['n_listed']} listed videos ({summary['n_skipped']} skipped) "
          f"-> {out_dir / 'summary.json'}")
    return 0


def _read_skipped(path: Path) -> list[dict]:
    import json

    if not path.exists():
        return []
    out = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break
    return out


def _append_skipped(path: Path, rec: dict) -> None:
    import json

    path.parent.mkdir(parents=True, exist_ok=True)
    with open(path, "a", encoding="utf-8") as f:
        f.write(json.dumps(rec) + "\n")
