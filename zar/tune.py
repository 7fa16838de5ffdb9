"""`zar tune`: one method variant on one (dataset, split, backbone), from cached embeddings.

The variant may use a subset of the cached views (fewer crops, dropped rates, fewer samples
per rate): the remaining views are exactly the ones a run with those settings would have
encoded, because a view's frames depend only on (seed, video id, rate, sample, crop).
"""
from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path

import torch

from zar.utils import UserError

log = logging.getLogger(__name__)


def select_views(cache: dict, want, name: str = "cache") -> list[int]:
    """Indices into the cached views for the requested :class:`ViewConfig` (a subset)."""
    from zar.views import CROP_SETS, view_plan

    have = cache["views_config"]
    for key in ("frames", "seed", "short_side"):
        if have[key] != getattr(want, key):
            raise UserError(f"{name}: views.{key} is {have[key]} in the cache but {getattr(want, key)} was asked; "
                            "re-encode with those settings")
    index = {(r, s, c): i for i, (r, s, c) in enumerate(cache["plan"])}
    missing = [v.key() for v in view_plan(want) if (v.rate, v.sample, v.crop) not in index]
    if missing:
        raise UserError(f"{name}: views {missing[:4]}{'...' if len(missing) > 4 else ''} are not in the cache "
                        f"(it holds rates {have['rates']}, {have['samples_per_rate']} samples, crops "
                        f"{list(CROP_SETS[have['crops']])}); encode with the superset of views every variant needs")
    return [index[(v.rate, v.sample, v.crop)] for v in view_plan(want)]


def add_arguments(p) -> None:
    from zar.config import add_settings_arguments

    p.add_argument("--embeddings", required=True, nargs="+", help="embedding cache(s) from `zar encode` (shards of one list)")
    p.add_argument("--classes", required=True, help="classes.csv of the split (the classifier)")
    p.add_argument("--backbone", required=True, help="the backbone the cache was encoded with")
    p.add_argument("--method", choices=("vanilla", "zar"), default="zar", help="vanilla CLIP or ZAR (default)")
    p.add_argument("--out", required=True, help="summary JSON to write; predictions go to the same name .jsonl")
    p.add_argument("--label", default=None, help="free-text name of this result (dataset/split/variant)")
    add_settings_arguments(p)


def run(args) -> int:
    from zar.backbone import build_model, parse_spec
    from zar.config import load_settings
    from zar.encode import load_cache, merge_caches
    from zar.lists import read_classes
    from zar.results import PredictionLog, record, write_summary
    from zar.tta import Tuner, kept_count
    from zar.utils import progress

    settings = load_settings(args.config, args.set)
    tune_cfg = settings.tune if args.method == "zar" else replace(settings.tune, steps=0)
    caches = [load_cache(p) for p in args.embeddings]
    cache = merge_caches(caches, list(args.embeddings)) if len(caches) > 1 else caches[0]
    spec = parse_spec(args.backbone)
    if cache["backbone"] != spec.to_dict():
        raise UserError(f"{args.embeddings[0]}: encoded with backbone {cache['backbone']}, not {spec.to_dict()}")
    sel = select_views(cache, settings.views, args.embeddings[0])
    if tune_cfg.steps:
        try:
            kept_count(len(sel), tune_cfg.ratio)
        except ValueError as e:
            raise UserError(str(e)) from None
    classes = read_classes(args.classes)
    labels = cache["labels"]
    if len(labels) and int(labels.max()) >= len(classes):
        raise UserError(f"{args.classes}: {len(classes)} classes, but the cache has label {int(labels.max())}")
    device = settings.run.resolved_device()
    model, _ = build_model(spec, device=device)
    tuner = Tuner(model, list(classes.texts), tune_cfg, device=device)
    out = Path(args.out)
    from zar.results import fingerprint
    from zar.utils import sha256_file

    fp = fingerprint([sha256_file(p) for p in args.embeddings], sha256_file(args.classes), tune_cfg.to_dict(),
                     settings.views.to_dict(), spec.to_dict(), args.method)
    plog = PredictionLog(out.with_suffix(".jsonl"), fp, resume=tune_cfg.mode == "episodic")
    sel_t = torch.tensor(sel, dtype=torch.long)
    ids = cache["video_ids"]
    t0 = time.perf_counter()
    todo = [i for i, v in enumerate(ids) if v not in plog.done]
    log.info("tune %s on %d videos (%d done), %d of %d cached views, %d classes, steps=%d ratio=%s",
             args.method, len(ids), len(ids) - len(todo), len(sel), cache["views"].shape[1] if len(ids) else 0,
             len(classes), tune_cfg.steps, tune_cfg.ratio)
    for i in progress(todo, total=len(todo), desc=f"tune {args.method}"):
        res = tuner(cache["views"][i].index_select(0, sel_t).float(), cache["infer"][i].float())
        plog.add(record(ids[i], int(labels[i]), res, args.method))
    recs = plog.finish(ids)
    summary = write_summary(
        out, method=args.method, records=recs, n_listed=int(cache["n_listed_in_shards"]),
        skipped=cache["skipped"], class_names=list(classes.names),
        inputs={"classes": args.classes, **{f"embeddings_{j}": p for j, p in enumerate(args.embeddings)}},
        settings={"views": settings.views.to_dict(), "tune": tune_cfg.to_dict(),
                  "views_encoded": cache["views_config"], "view_short_side": cache.get("view_short_side")},
        backbone=spec.to_dict(),
        extra={"label": args.label, "n_views": len(sel), "seconds": time.perf_counter() - t0},
    )
    log.info("%s: top-1 %.2f%% (before tuning %.2f%%) on %d of %d listed videos -> %s", args.method,
             summary["top1"] or 0, summary["top1_before_tuning"] or 0, summary["n_evaluated"], summary["n_listed"], out)
    return 0
