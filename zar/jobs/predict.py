"""`zar predict`: ZAR on one video with your own class names; top-5 before and after tuning.

    zar predict my_clip.mp4 --labels "juggling, cooking, skateboarding"
    zar predict my_clip.mp4 --classes my_classes.txt --backbone vitb16_openai --json

The same steps as `zar evaluate` for one video: `prepare_video` reads the views and the
inference clip, `VideoEncoder` embeds them, `Tuner` tunes the prompt and predicts.
"""
from __future__ import annotations

import json
import logging
from pathlib import Path
from typing import Any

from zar.core.errors import UserError

log = logging.getLogger(__name__)


def add_arguments(p) -> None:
    from zar.method.settings import add_settings_arguments

    p.add_argument("video", help="the video file")
    g = p.add_mutually_exclusive_group(required=True)
    g.add_argument("--labels", help='class names separated by commas, e.g. "juggling, cooking, skateboarding"')
    g.add_argument("--classes", help="class list: classes.csv, or a .txt file with one name per line")
    p.add_argument("--backbone", default="vitb16_openai",
                   help="backbone name (vitb16_openai, tiny), ARCH:PRETRAINED, spec .json or a zar checkpoint dir")
    p.add_argument("--top", type=int, default=5, help="classes to show (default 5)")
    p.add_argument("--json", action="store_true", help="print one JSON object instead of a table")
    add_settings_arguments(p)


def parse_labels(text: str):
    """A :class:`zar.core.splitfiles.ClassList` from comma-separated names (blank items dropped)."""
    from zar.core.splitfiles import ClassList, check_classifier, class_text

    names = [n.strip() for n in text.split(",") if n.strip()]
    if len(names) < 2:
        raise UserError(f"--labels {text!r}: give at least two class names, separated by commas (with one, "
                        "every video is that class)")
    texts = [class_text(n) for n in names]
    check_classifier("--labels", names, texts)  # repeated names, or two of the same prompt text
    return ClassList(tuple(names), tuple(texts))


def top_classes(logits, names: list[str], k: int) -> list[dict[str, Any]]:
    """The ``k`` most probable classes: softmax over all classes of the (scaled) logits."""
    from zar.core.metrics import topk

    z = logits.detach().double().cpu()
    probs = z.softmax(dim=-1)
    order = topk(z.numpy(), k)
    return [{"rank": r + 1, "class_index": int(i), "class_name": names[int(i)], "probability": float(probs[int(i)])}
            for r, i in enumerate(order)]


def predict_video(video: str, classes, backbone: str, settings) -> dict[str, Any]:
    """Read, encode, tune and predict one video; the logits before and after tuning."""
    import time

    from zar.model.backbone import build_model, parse_spec
    from zar.method.encoder import VideoEncoder
    from zar.method.frames import Unreadable, prepare_video
    from zar.core.splitfiles import VideoRow
    from zar.method.results import non_finite
    from zar.method.tpt import Tuner, require_views_kept

    tune_cfg = settings.tune
    require_views_kept(settings.views.n_views, tune_cfg)
    path = Path(video)
    if not path.is_file():
        raise UserError(f"{video}: file not found")
    spec = parse_spec(backbone)
    device = settings.run.resolved_device()
    model, pre = build_model(spec, device=device)
    encoder = VideoEncoder.for_run(model, pre, settings.views, settings.run, device)
    tuner = Tuner(model, list(classes.texts), tune_cfg, device=device)
    t0 = time.perf_counter()
    prepared = prepare_video(VideoRow(path.stem, str(path)), settings.views, pre, settings.run.backend,
                             settings.run.timeout)
    if isinstance(prepared, Unreadable):
        raise UserError(f"{video}: cannot read the video ({prepared.error})")
    views, infer = encoder.encode(prepared)
    res = tuner(views, infer)
    bad = non_finite(res)
    if bad:
        raise UserError(f"{video}: non-finite {bad} (NaN or infinite: damaged weights, or a learning rate too "
                        "large); no prediction")
    partial = {"frames_read": prepared.frames_read, "frames_declared": prepared.frames_declared} \
        if prepared.partial else None
    return {"result": res, "spec": spec, "n_views": int(views.shape[0]), "seconds": time.perf_counter() - t0,
            "num_frames": int(prepared.num_frames), "partial": partial}


def run(args) -> int:
    from zar.method.settings import load_settings
    from zar.core.splitfiles import read_classes

    if args.top < 1:
        raise UserError("--top must be at least 1")
    settings = load_settings(args.config, args.set)
    classes = parse_labels(args.labels) if args.labels is not None else read_classes(args.classes)
    out = predict_video(args.video, classes, args.backbone, settings)
    res = out["result"]
    names = list(classes.names)
    k = min(args.top, len(names))
    report = {
        "video": args.video,
        "backbone": out["spec"].to_dict(),
        "classes": names,
        "n_views": out["n_views"],
        "kept_views": len(res.kept),
        "steps": settings.tune.steps,
        "top_before": top_classes(res.logits_before, names, k),
        "top_after": top_classes(res.logits_after, names, k),
        "seconds": round(out["seconds"], 3),
        "partial": out["partial"],  # the file is damaged or truncated: predicted from the frames that decode
        "settings": settings.to_dict(),
    }
    if args.json:
        print(json.dumps(report, allow_nan=False))
        return 0
    if out["partial"]:
        print(f"warning: {args.video} is damaged or truncated: predicted from the {out['partial']['frames_read']} "
              f"frames that decode of {out['partial']['frames_declared']} declared")
    print(f"{args.video}: {len(names)} classes, {report['n_views']} views ({report['kept_views']} kept), "
          f"{report['steps']} tuning step(s), backbone {report['backbone']['arch']} "
          f"({report['backbone']['pretrained'] or 'random init'}), {report['seconds']:.1f} s")
    nb = max(len(c["class_name"]) for c in report["top_before"])
    na = max(len(c["class_name"]) for c in report["top_after"])
    print(f"{'':4}{'before tuning (vanilla CLIP)':<{max(nb + 8, 28)}}   after tuning (ZAR)")
    for b, a in zip(report["top_before"], report["top_after"]):
        left = f"{b['class_name']:<{nb}} {100 * b['probability']:6.2f}%"
        print(f"{b['rank']:>2}. {left:<{max(nb + 8, 28)}}   {a['class_name']:<{na}} {100 * a['probability']:6.2f}%")
    return 0
