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


def check_files(cache, rows, found: list[int], videos: str, root: str | None, ext: str | None,
                name: str) -> dict:
    """Each listed video is the file that was encoded under its id: the same path in the list
    and, with ``root`` (where the videos are), the same size and modification time. A video
    whose file is gone is tuned from its cached embeddings and counted. Raises on a mismatch."""
    from zar.core.splitfiles import resolve_path
    from zar.method.cache import file_identity

    if not cache.files:
        log.warning("%s records no video files (encoded by an older zar): their identity is not checked", name)
        return {"files_checked": "not recorded"}
    where = {r.video_id: resolve_path(r.path, root, ext) for r in rows} if root or ext else {}
    wrong, gone = [], 0
    encoded = set(cache.video_ids)
    for row, i in zip((r for r in rows if r.video_id in encoded), found):  # found: those rows' cache indices
        rec = cache.files[i]
        if rec is None:
            continue
        if row.path != rec["listed"]:
            wrong.append(f"{row.video_id!r} is listed as {row.path!r} but {rec['listed']!r} was encoded")
        elif where:
            now = file_identity(row.path, where[row.video_id])
            if now is None:
                gone += 1
            elif (now["size"], now["mtime_ns"]) != (rec["size"], rec["mtime_ns"]):
                wrong.append(f"{where[row.video_id]} changed since it was encoded (size {rec['size']} -> "
                             f"{now['size']}, modified {rec['mtime_ns']} -> {now['mtime_ns']} ns)")
    if wrong:
        more = f" (and {len(wrong) - 3} more)" if len(wrong) > 3 else ""
        raise UserError(f"{videos}: {len(wrong)} listed video(s) are not the files encoded in {name}: "
                        + "; ".join(wrong[:3]) + more + ". Encode again (a copy of the videos must keep their "
                        "times: cp -p, rsync -a)")
    if gone:
        log.warning("%d listed videos are no longer under %s: tuned from their cached embeddings", gone, root)
    return {"files_checked": "size and mtime" if where else "listed paths", "files_missing": gone}


def add_arguments(p) -> None:
    from zar.method.settings import add_settings_arguments

    p.add_argument("--embeddings", required=True, nargs="+", help="embedding cache(s) from `zar encode` (shards of one run)")
    p.add_argument("--videos", required=True, help="the video list to evaluate (its labels and videos)")
    p.add_argument("--classes", required=True, help="classes.csv of the list (the classifier)")
    p.add_argument("--backbone", required=True, help="the backbone the cache was encoded with")
    from zar.method.testtime import METHODS

    p.add_argument("--method", default="zar",
                   help="the test-time method, or several separated by commas, run one after the other on the same "
                        "cache: " + "; ".join(f"{m.name} ({m.title}, {m.kind})" for m in METHODS.values())
                        + " (default zar)")
    p.add_argument("--out", required=True, help="summary JSON to write, predictions beside it (.jsonl); with several "
                                                "methods a path holding {method}")
    p.add_argument("--label", default=None, help="free-text name of this result (dataset/split/variant)")
    p.add_argument("--root", default=None, help="where the videos are, as given to `zar encode`: each listed "
                                                "video's size and time are checked against what was encoded")
    p.add_argument("--ext", default=None, help="the video suffix given to `zar encode`, if any")
    add_settings_arguments(p)


def outputs(args) -> list:
    """Each method's summary and predictions (zar.cli checks them against the inputs first)."""
    outs = [Path(args.out.format(method=m.name)) for m in method_names(args.method, args.out)]
    return [(p, "file") for o in outs for p in (o, o.with_suffix(".jsonl"))]


def run(args) -> int:
    from zar.jobs.common import labelled_videos, start
    from zar.method.cache import open_caches

    names = method_names(args.method, args.out)
    job = start(args, "zar" if any(m.tunes_prompt for m in names) else "vanilla")
    classes, rows = labelled_videos(args.classes, args.videos)
    cache = open_caches(list(args.embeddings))
    if cache.backbone != job.spec.to_dict():
        raise UserError(f"{args.embeddings[0]}: encoded with backbone {cache.backbone}, not {job.spec.to_dict()}")
    view_index = select_views(cache, job.settings.views, args.embeddings[0])
    if any(m.tunes_prompt for m in names):
        job.check_views_kept(len(view_index))
    found, skipped = match_list(cache, rows, args.videos, args.embeddings[0])
    args.video_files = check_files(cache, rows, found, args.videos, args.root, args.ext, args.embeddings[0])
    model, pre = job.model()
    texts = job.class_texts(classes)
    for method in names:
        out = Path(args.out.format(method=method.name))
        summary = run_method(method, args, job, settings_for(job.settings, method), cache, rows, found, skipped,
                             view_index, (list(classes.names), texts), model, pre, out)
        ms = summary["ms_per_video"]  # None when a rerun found every video done
        log.info("%s: top-1 %.2f%% (vanilla %.2f%%, views' vote %.2f%%), ECE %.1f%%, %s ms per video, on %d of %d "
                 "listed videos -> %s", method.name, summary["top1"], summary["top1_before_tuning"],
                 summary["top1_ensemble"], summary["ece"], "-" if ms is None else f"{ms:.1f}", summary["n_evaluated"],
                 summary["n_listed"], out)
    return 0


def method_names(text: str, out: str) -> list:
    """The methods of ``--method`` (one, or several separated by commas), each known and once."""
    from zar.method.testtime import get

    names = [n.strip() for n in text.split(",") if n.strip()]
    if not names or len(set(names)) != len(names):
        raise UserError(f"--method {text!r}: name each method once, separated by commas")
    if len(names) > 1 and "{method}" not in out:
        raise UserError(f"--out {out!r}: with several methods it must hold {{method}} (one result per method)")
    return [get(n) for n in names]


def settings_for(settings, method):
    """The settings a method runs with: a method that does not tune the prompt records 0 steps."""
    import dataclasses

    if method.tunes_prompt or not settings.tune.steps:
        return settings
    return dataclasses.replace(settings, tune=dataclasses.replace(settings.tune, steps=0))


def run_method(method, args, job, settings, cache, rows, found, skipped, view_index, classes, model, pre, out) -> dict:
    """One method over the list (online ones over each of their seeded orders, the summary then
    giving their mean, the predictions file the first order's); its summary. ``classes``: the
    class names and their texts."""
    from zar.method.results import PredictionLog, summarise
    from zar.method.runs import peak_memory, reset_peak_memory, tune_from_cache
    from zar.method.testtime import build

    names, texts = classes
    adapter = build(method.name, model, texts, settings, job.device)
    online = method.kind == "online"
    predictions = PredictionLog(out.with_suffix(".jsonl"), _fingerprint(args, job, settings, method.name),
                                resume=settings.tune.mode == "episodic" and not online, n_classes=len(names))
    labels = {r.video_id: r.class_index for r in rows}
    batch = 1 if settings.tune.mode == "continual" and method.tunes_prompt else settings.run.tune_batch
    reset_peak_memory(job.device)
    orders, seconds, n_done, bad = [], 0.0, 0, {}
    skip = (lambda vid, why: bad.setdefault(vid, why)) if settings.run.non_finite == "skip" else None
    first = list(found)  # batches are cut over the whole list, as in a run that was never stopped
    done = set(predictions.done)
    for k in range(settings.methods[method.name].orders if online else 1):
        todo, sink = first, predictions
        if online:
            import numpy as np

            adapter.reset()
            todo = [first[j] for j in np.random.default_rng(k).permutation(len(first))]
            sink = predictions if k == 0 else Collected()
        seconds += tune_from_cache(adapter, cache, todo, view_index, labels, method.name, sink, batch, skip, done)
        n_done += sum(cache.video_ids[i] not in done for i in todo)
        if online:
            recs = sink.records() if k else list(predictions.done.values())
            orders.append({"seed": k, "order": [cache.video_ids[i] for i in todo],
                           **{key: summarise(recs, len(texts), method.name)[key] for key in ("top1", "ece", "nll")}})
    recs = predictions.finish([r.video_id for r in rows])
    per_video = seconds / n_done if n_done else None
    extra = {"memory": peak_memory(job.device)}
    if online:  # the mean over the orders
        from zar.core.metrics import mean_std

        top1 = mean_std([o["top1"] for o in orders])
        extra.update(orders=orders, top1=top1[0], top1_std_over_orders=top1[1],
                     ece=mean_std([o["ece"] for o in orders])[0], nll=mean_std([o["nll"] for o in orders])[0])
    try:
        summary = _write_summary(args, job, settings, method, cache, rows, recs, _and_non_finite(skipped, bad, rows),
                                 view_index, per_video, seconds, (names, texts), model, pre, out, extra)
    except BaseException:
        predictions.abandon()
        raise
    predictions.committed()
    return summary


def _and_non_finite(skipped: list[dict], bad: dict[str, str], rows) -> list[dict]:
    """The skipped videos, with those whose numbers were not finite (``run.non_finite: skip``)."""
    where = {r.video_id: (pos, r.path) for pos, r in enumerate(rows)}
    more = [{"video_id": v, "path": where[v][1], "reason": why, "list_position": where[v][0]} for v, why in bad.items()]
    return sorted([*skipped, *more], key=lambda s: s["list_position"])


class Collected:
    """Prediction records kept in memory (the later orders of an online method)."""

    def __init__(self):
        self.done: dict[str, dict] = {}

    def add(self, rec: dict) -> None:
        self.done[rec["video_id"]] = rec

    def records(self) -> list[dict]:
        return list(self.done.values())


def _fingerprint(args, job, settings, method: str) -> str:
    from zar.core.files import sha256_file
    from zar.method.results import fingerprint

    return fingerprint([sha256_file(p) for p in args.embeddings], sha256_file(args.videos), sha256_file(args.classes),
                       settings.tune.to_dict(), settings.views.to_dict(), job.spec.to_dict(), method,
                       settings.to_dict().get(method))


def _write_summary(args, job, settings, method, cache, rows, recs, skipped, view_index, tune_per_video, seconds,
                   classes, model, pre, out, extra) -> dict:
    from zar.method.cost import flops
    from zar.method.results import frames_record, write_summary

    names, texts = classes
    n_encoded = len(cache.video_ids)
    cost = {**flops(model, pre, settings.views, texts, settings.tune, job.device),
            "encode_seconds_per_video": cache.seconds / n_encoded if n_encoded else None,
            "encode_devices": cache.devices, "tune_seconds_per_video": tune_per_video}
    labels = {r.video_id for r in rows}
    summary = write_summary(
        out, method=method.name, records=recs, n_listed=len(rows), skipped=skipped,
        class_names=names, inputs={"videos": args.videos, "classes": args.classes,
                                                   **{f"embeddings_{j}": p for j, p in enumerate(args.embeddings)}},
        settings={**settings.to_dict(), "views_encoded": cache.views_config,
                  "image_precision_encoded": cache.image_precision, "view_short_side": cache.view_short_side,
                  "frames": frames_record(settings.views, job.spec)},
        backbone=job.spec.to_dict(), predictions=out.with_suffix(".jsonl"),
        partial=[p for p in cache.partial if p["video_id"] in labels],
        extra={"label": args.label, "method_title": method.title, "method_kind": method.kind,
               "method_source": method.source, "n_views": len(view_index), "seconds": seconds,
               "ms_per_video": 1000 * tune_per_video if tune_per_video is not None else None, "cost": cost,
               "video_files": getattr(args, "video_files", None), **extra},
    )
    return summary
