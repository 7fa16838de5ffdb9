"""`zar figures <kind>`: the figures of the report, each a PNG with the CSV behind it.

Kinds:

- ``perclass``: per-class top-1 before and after tuning, confusion matrix, the classes
  tuning helps and hurts most, for each result (summary JSON + its predictions JSONL);
- ``ablation``: Table 3, 4 or 5 as a plot, from the table's CSV (`zar tables`);
- ``tsne``: t-SNE of the inference-clip embeddings of `zar encode` caches, coloured by class;
- ``attention``: the image encoder's attention over a few test frames;

matplotlib, scikit-learn and torch are imported only when a kind runs.
"""
from __future__ import annotations

import logging
from pathlib import Path

from zar.core.errors import UserError

log = logging.getLogger(__name__)



# ----------------------------------------------------------------------------- kinds
def perclass_name(result: str, strip: str = "") -> str:
    """The figure's file name of a result: its path without ``strip`` and .json, '/' as '-'."""
    rel = result[len(strip):] if strip and result.startswith(strip) else result
    return rel.removesuffix(".json").strip("/").replace("/", "-") + ".png"


def perclass_figure(result: str, out: Path, top: int, title: str) -> None:
    from zar.report import analysis as A
    from zar.report import plots

    p = A.load_predictions(result)
    tuned = p["summary"]["method"] != "vanilla"
    rows = A.per_class(p["labels"], p["logits_before"], p["logits_after"], p["classes"])
    matrix = A.confusion(p["labels"], p["logits_after"] if tuned else p["logits_before"], len(p["classes"]))
    helped, hurt = A.helps_hurts(rows, top) if tuned else ([], [])
    n = len(p["labels"])
    acc = lambda key: sum(r[key] for r in rows) / n * 100 if n else float("nan")  # noqa: E731
    title += (f"\n{p['summary']['method']}: top-1 {acc('correct_after'):.1f}% after tuning, "
              f"{acc('correct_before'):.1f}% before (vanilla prompt), {n} videos, {len(p['classes'])} classes"
              if tuned else f"\nvanilla CLIP: top-1 {acc('correct_before'):.1f}%, {n} videos, {len(p['classes'])} classes")
    plots.perclass(out, rows, matrix, helped, hurt, title, tuned=tuned)


def tsne_points(embeddings: list[str], videos: list[str]):
    """(inference-clip embeddings (N, D), class name per point, video ids) of the videos of
    ``videos`` (split files, which name each video's class) found in the cache ``embeddings``
    (the shards of one `zar encode` run). A video in several lists counts once. The one place
    that knows the cache layout."""
    import numpy as np

    from zar.method.cache import open_caches
    from zar.core.splitfiles import read_videos

    cache = open_caches(list(embeddings))
    row = {v: i for i, v in enumerate(cache.video_ids)}
    infer = cache.infer.float().numpy()
    vecs, names, ids, seen = [], [], [], set()
    for lst in videos:
        for r in read_videos(lst):
            if r.video_id in row and r.video_id not in seen:
                seen.add(r.video_id)
                vecs.append(infer[row[r.video_id]])
                names.append(r.class_name)
                ids.append(r.video_id)
    if not vecs:
        raise UserError(f"{', '.join(embeddings)}: none of the videos of {', '.join(videos)}")
    return np.stack(vecs), names, ids


def tsne_figure(embeddings: list[str], videos: list[str], args, out: Path, title: str | None) -> None:
    from zar.report import analysis as A
    from zar.report import plots

    x, names, ids = tsne_points(embeddings, videos)
    keep = A.subsample(len(ids), args.max_points, args.seed)
    x, names, ids = x[keep], [names[i] for i in keep], [ids[i] for i in keep]
    xy = A.tsne_2d(x, perplexity=args.perplexity, seed=args.seed)
    plots.tsne(out, xy, names, ids, title or "t-SNE of the inference-clip embeddings")


def attention_figure(model, pre, spec, settings, videos, classes_csv, root, ext, n, mode, title, out) -> None:
    import numpy as np
    import torch

    from zar.report import attention as AT
    from zar.report import plots
    from zar.core.splitfiles import read_classes, read_videos

    rows = read_videos(videos, read_classes(classes_csv), root, ext)
    picked = AT.middle_frames(rows, n, settings.views.frames, pre, settings.run.backend, settings.run.timeout)
    frames = torch.stack([f for _, f in picked])
    maps = AT.attention_maps(model, frames, pre.mean, pre.std, mode)
    what = "class token's attention in the last block" if mode == "last" else "attention rollout"
    title = (title + "\n" if title else "") + (
        f"{spec.arch} ({spec.pretrained or 'random weights'}): {what}, middle frame of the inference clip")
    plots.attention(out, frames.permute(0, 2, 3, 1).numpy().astype(np.uint8), maps,
                    [r.class_name for r, _ in picked], [r.video_id for r, _ in picked], title)
