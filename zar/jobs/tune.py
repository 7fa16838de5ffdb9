"""`zar tune`: one method variant on one video list, from cached embeddings.

The cache may hold more videos than the list (one encoding serves every split of a
dataset): the list decides which videos are evaluated, their labels and the classifier.
The variant may use a subset of the cached views (fewer crops, dropped rates, fewer samples
per rate): the remaining views are exactly the ones a run with those settings would have
encoded, because a view's frames depend only on (seed, video id, rate, sample, crop).
"""
from __future__ import annotations

import logging
from pathlib import Path


from zar.core.errors import UserError

log = logging.getLogger(__name__)


def select_views(cache, want, name: str = "cache") -> list[int]:
    """Indices into the cached views for the requested :class:`ViewConfig` (a subset)."""
    from zar.method.views import CROP_SETS, view_plan

    have = {"preprocess": "backbone", **cache.views_config}  # caches made before the setting: the backbone's
    for key in ("frames", "infer_frames", "seed", "short_side", "preprocess"):
        if have[key] != getattr(want, key):
            raise UserError(f"{name}: views.{key} is {have[key]} in the cache but {getattr(want, key)} was asked; "
                            "re-encode with those settings")
    index = {(r, s, c): i for i, (r, s, c) in enumerate(cache.plan)}
    missing = [v.key() for v in view_plan(want) if (v.rate, v.sample, v.crop) not in index]
    if missing:
        raise UserError(f"{name}: views {missing[:4]}{'...' if len(missing) > 4 else ''} are not in the cache "
                        f"(it holds rates {have['rates']}, {have['samples_per_rate']} samples, crops "
                        f"{list(CROP_SETS[have['crops']])}); encode with the superset of views every variant needs")
    return [index[(v.rate, v.sample, v.crop)] for v in view_plan(want)]


def match_list(cache, rows, videos: str, name: str) -> tuple[list[int], list[dict]]:
    """For each listed video: its row in the cache, or its skip record; a video the encoding
    never saw is an error (the cache was made from other lists)."""
    index = {v: i for i, v in enumerate(cache.video_ids)}
    skipped = {s["video_id"]: s for s in cache.skipped}
    found, gone, unknown = [], [], []
    for pos, row in enumerate(rows):
        if row.video_id in index:
            found.append(index[row.video_id])
        elif row.video_id in skipped:
            s = skipped[row.video_id]
            gone.append({"video_id": s["video_id"], "path": s["path"], "reason": s["reason"], "list_position": pos})
        else:
            unknown.append(row.video_id)
    if unknown:
        lists = ", ".join(x["path"] for x in cache.lists)
        raise UserError(f"{videos}: {len(unknown)} listed videos are not in {name} (e.g. {unknown[0]!r}); it was "
                        f"encoded from {lists}: encode this list too")
    return found, gone


def add_arguments(p) -> None:
    from zar.method.settings import add_settings_arguments

    p.add_argument("--embeddings", required=True, nargs="+", help="embedding cache(s) from `zar encode` (shards of one run)")
    p.add_argument("--videos", required=True, help="the video list to evaluate (its labels and videos)")
    p.add_argument("--classes", required=True, help="classes.csv of the list (the classifier)")
    p.add_argument("--backbone", required=True, help="the backbone the cache was encoded with")
    p.add_argument("--method", choices=("vanilla", "zar"), default="zar", help="vanilla CLIP or ZAR (default)")
    p.add_argument("--out", required=True, help="summary JSON to write; predictions go to the same name .jsonl")
    p.add_argument("--label", default=None, help="free-text name of this result (dataset/split/variant)")
    add_settings_arguments(p)


def run(args) -> int:
    from zar.jobs.common import labelled_videos, start
    from zar.method.cache import open_caches
    from zar.method.results import PredictionLog
    from zar.method.runs import tune_from_cache
    from zar.method.tpt import Tuner

    job = start(args, args.method)
    settings, spec = job.settings, job.spec
    classes, rows = labelled_videos(args.classes, args.videos)
    cache = open_caches(list(args.embeddings))
    if cache.backbone != spec.to_dict():
        raise UserError(f"{args.embeddings[0]}: encoded with backbone {cache.backbone}, not {spec.to_dict()}")
    view_index = select_views(cache, settings.views, args.embeddings[0])
    job.check_views_kept(len(view_index))
    found, skipped = match_list(cache, rows, args.videos, args.embeddings[0])
    model, pre = job.model()
    texts = job.class_texts(classes)
    tuner = Tuner(model, texts, settings.tune, device=job.device)
    out = Path(args.out)
    predictions = PredictionLog(out.with_suffix(".jsonl"), _fingerprint(args, job),
                                resume=settings.tune.mode == "episodic")
    todo = [i for i in found if cache.video_ids[i] not in predictions.done]
    log.info("tune %s on %d of %d listed videos (%d done, %d skipped at encoding), %d of %d cached views, %d classes, "
             "steps=%d ratio=%s", args.method, len(found), len(rows), len(found) - len(todo), len(skipped),
             len(view_index), cache.views.shape[1], len(classes), settings.tune.steps, settings.tune.ratio)
    batch = 1 if settings.tune.mode == "continual" else settings.run.tune_batch
    labels = {r.video_id: r.class_index for r in rows}
    seconds = tune_from_cache(tuner, cache, todo, view_index, labels, args.method, predictions, batch)
    recs = predictions.finish([r.video_id for r in rows])
    per_video = seconds / len(todo) if todo else None
    summary = _write_summary(args, job, classes, rows, cache, recs, skipped, view_index, per_video, seconds, texts,
                             model, pre)
    log.info("%s: top-1 %.2f%% (before tuning %.2f%%, views ensemble %.2f%%) on %d of %d listed videos -> %s",
             args.method, summary["top1"], summary["top1_before_tuning"], summary["top1_ensemble"],
             summary["n_evaluated"], summary["n_listed"], out)
    return 0


def _fingerprint(args, job) -> str:
    from zar.core.files import sha256_file
    from zar.method.results import fingerprint

    return fingerprint([sha256_file(p) for p in args.embeddings], sha256_file(args.videos), sha256_file(args.classes),
                       job.settings.tune.to_dict(), job.settings.views.to_dict(), job.spec.to_dict(), args.method)


def _write_summary(args, job, classes, rows, cache, recs, skipped, view_index, tune_per_video, seconds, texts, model,
                   pre) -> dict:
    from zar.method.cost import flops
    from zar.method.results import frames_record, write_summary

    settings, n_encoded = job.settings, len(cache.video_ids)
    cost = {**flops(model, pre, settings.views, texts, settings.tune, job.device),
            "encode_seconds_per_video": cache.seconds / n_encoded if n_encoded else None,
            "encode_devices": cache.devices, "tune_seconds_per_video": tune_per_video}
    labels = {r.video_id for r in rows}
    return write_summary(
        Path(args.out), method=args.method, records=recs, n_listed=len(rows), skipped=skipped,
        class_names=list(classes.names), inputs={"videos": args.videos, "classes": args.classes,
                                                 **{f"embeddings_{j}": p for j, p in enumerate(args.embeddings)}},
        settings={"views": settings.views.to_dict(), "tune": settings.tune.to_dict(), "run": settings.to_dict()["run"],
                  "views_encoded": cache.views_config, "image_precision_encoded": cache.image_precision,
                  "view_short_side": cache.view_short_side, "frames": frames_record(settings.views, job.spec)},
        backbone=job.spec.to_dict(), predictions=Path(args.out).with_suffix(".jsonl"),
        partial=[p for p in cache.partial if p["video_id"] in labels],
        extra={"label": args.label, "n_views": len(view_index), "seconds": seconds, "cost": cost},
    )
