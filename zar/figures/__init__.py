"""`zar figures <kind>`: the figures of the report, each a PNG with the CSV behind it.

Kinds:

- ``perclass``: per-class top-1 before and after tuning, confusion matrix, the classes
  tuning helps and hurts most, for one result (summary JSON + its predictions JSONL);
- ``ablation``: Table 3, 4 or 5 as a plot, from the table's CSV (`zar tables`);
- ``tsne``: t-SNE of the inference-clip embeddings of `zar encode` caches, coloured by class;
- ``attention``: the image encoder's attention over a few test frames;
- ``table``: a table's Markdown (`zar tables`) as an HTML page, for the Snakemake report.

matplotlib, scikit-learn and torch are imported only when a kind runs.
"""
from __future__ import annotations

import logging
from pathlib import Path

from zar.utils import UserError

log = logging.getLogger(__name__)

KINDS = ("perclass", "ablation", "tsne", "attention", "table")


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")

    s = sub.add_parser("perclass", help="per-class accuracy, confusion matrix, classes tuning helps/hurts")
    s.add_argument("--result", required=True, help="result summary JSON (its predictions .jsonl beside it)")
    s.add_argument("--out", required=True, help="figure to write (.png); CSVs beside it")
    s.add_argument("--top", type=int, default=10, help="classes shown that tuning helps / hurts most (default 10)")
    s.add_argument("--title", default=None, help="figure title (default: the result's path)")

    s = sub.add_parser("ablation", help="an ablation table (3, 4 or 5) as a plot")
    s.add_argument("--table", required=True, help="table CSV written by `zar tables`")
    s.add_argument("--number", type=int, required=True, choices=(3, 4, 5), help="which table it is")
    s.add_argument("--out", required=True, help="figure to write (.png); CSV beside it")
    s.add_argument("--title", default=None, help="figure title")

    s = sub.add_parser("tsne", help="t-SNE of cached video embeddings, coloured by class")
    s.add_argument("--embeddings", required=True, nargs="+", help="embedding caches of `zar encode` (.pt)")
    s.add_argument("--classes", nargs="*", default=[],
                   help="the classes.csv each cache's labels index (one for all, or one per cache)")
    s.add_argument("--out", required=True, help="figure to write (.png); CSV of the points beside it")
    s.add_argument("--max-points", type=int, default=5000, help="random subset above this many videos (default 5000)")
    s.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    s.add_argument("--seed", type=int, default=0, help="seed of the subset and of t-SNE")
    s.add_argument("--title", default=None, help="figure title")

    s = sub.add_parser("attention", help="attention maps of the image encoder over a few test frames")
    from zar.config import add_settings_arguments

    s.add_argument("--videos", required=True, help="video list CSV (path and label)")
    s.add_argument("--classes", required=True, help="the list's classes.csv")
    s.add_argument("--root", default=None, help="directory the relative video paths start from")
    s.add_argument("--ext", default=None, help="replace the video file suffix (e.g. .mp4)")
    s.add_argument("--backbone", required=True, help="backbone name, ARCH:PRETRAINED, spec .json or checkpoint")
    s.add_argument("--frames", type=int, default=4, help="how many videos (one frame each; default 4)")
    s.add_argument("--mode", choices=("last", "rollout"), default="last",
                   help="class-token attention of the last block (default) or attention rollout")
    s.add_argument("--out", required=True, help="figure to write (.png); CSV of the maps beside it")
    s.add_argument("--title", default=None, help="figure title")
    add_settings_arguments(s)

    s = sub.add_parser("table", help="a table's Markdown as an HTML page (for the report)")
    s.add_argument("--markdown", required=True, help="table .md written by `zar tables`")
    s.add_argument("--out", required=True, help="HTML page to write")


def run(args) -> int:
    out = Path(args.out)
    if args.kind != "table" and out.suffix != ".png":
        raise UserError(f"--out {out}: the figure is written as PNG; give a .png path")
    handler = {"perclass": run_perclass, "ablation": run_ablation, "tsne": run_tsne,
               "attention": run_attention, "table": run_table}[args.kind]
    handler(args)
    print(f"zar figures {args.kind}: -> {out}")
    return 0


# ----------------------------------------------------------------------------- kinds
def run_perclass(args) -> None:
    from zar import analysis as A
    from zar.figures import plots

    if args.top < 1:
        raise UserError("--top must be at least 1")
    p = A.load_predictions(args.result)
    tuned = p["summary"]["method"] != "vanilla"
    rows = A.per_class(p["labels"], p["logits_before"], p["logits_after"], p["classes"])
    matrix = A.confusion(p["labels"], p["logits_after"] if tuned else p["logits_before"], len(p["classes"]))
    helped, hurt = A.helps_hurts(rows, args.top) if tuned else ([], [])
    n = len(p["labels"])
    acc = lambda key: sum(r[key] for r in rows) / n * 100 if n else float("nan")  # noqa: E731
    title = args.title or str(args.result)
    title += (f"\n{p['summary']['method']}: top-1 {acc('correct_after'):.1f}% after tuning, "
              f"{acc('correct_before'):.1f}% before (vanilla prompt), {n} videos, {len(p['classes'])} classes"
              if tuned else f"\nvanilla CLIP: top-1 {acc('correct_before'):.1f}%, {n} videos, {len(p['classes'])} classes")
    plots.perclass(args.out, rows, matrix, helped, hurt, title, tuned=tuned)


def run_ablation(args) -> None:
    from zar import analysis as A
    from zar.figures import plots

    records = A.read_table_csv(args.table)
    points = A.ablation_series(records, args.number)
    has_paper = any(p["series"] == "paper" for p in points)
    title = args.title or f"Table {args.number}"
    title += "\nours: mean ± std over splits" + ("; paper: quoted from Liang et al. 2025" if has_paper else "")
    plots.ablation(args.out, points, args.number, title)


def tsne_points(embeddings: list[str], classes: list[str]):
    """(embeddings (N, D), class name per point, video ids) from `zar encode` caches.

    Each cache's labels index the classes.csv given with it (one for all caches, or one per
    cache); labels that are already class names need none. A video in several caches
    (overlapping splits) counts once. The one place that knows the cache layout.
    """
    import numpy as np

    from zar.encode import load_cache
    from zar.lists import read_classes

    if classes and len(classes) not in (1, len(embeddings)):
        raise UserError(f"--classes: give one file for all caches or one per cache ({len(embeddings)}), "
                        f"not {len(classes)}")
    vecs, names, ids, seen = [], [], [], set()
    for i, path in enumerate(embeddings):
        cache = load_cache(path)
        cls_file = classes[i if len(classes) > 1 else 0] if classes else None
        table = read_classes(cls_file).names if cls_file else None
        labels = cache["labels"]
        labels = labels.tolist() if hasattr(labels, "tolist") else list(labels)
        infer = cache["infer"].float().numpy()
        for j, vid in enumerate(cache["video_ids"]):
            if vid in seen:
                continue
            lab = labels[j]
            if isinstance(lab, str):
                name = lab
            elif table is None:
                raise UserError(f"{path}: labels are class indices; give the classes.csv they index (--classes)")
            elif not 0 <= int(lab) < len(table):
                raise UserError(f"{path}: label {lab} is outside {cls_file} ({len(table)} classes)")
            else:
                name = table[int(lab)]
            seen.add(vid)
            vecs.append(infer[j])
            names.append(name)
            ids.append(vid)
    if not vecs:
        raise UserError(f"{', '.join(embeddings)}: no embeddings")
    return np.stack(vecs), names, ids


def run_tsne(args) -> None:
    from zar import analysis as A
    from zar.figures import plots

    x, names, ids = tsne_points(args.embeddings, args.classes)
    keep = A.subsample(len(ids), args.max_points, args.seed)
    x, names, ids = x[keep], [names[i] for i in keep], [ids[i] for i in keep]
    xy = A.tsne_2d(x, perplexity=args.perplexity, seed=args.seed)
    title = args.title or "t-SNE of the inference-clip embeddings"
    plots.tsne(args.out, xy, names, ids, title)


def run_attention(args) -> None:
    import numpy as np
    import torch

    from zar import attention as AT
    from zar.backbone import build_model, parse_spec
    from zar.config import load_settings
    from zar.figures import plots
    from zar.lists import read_classes, read_videos

    if args.frames < 1:
        raise UserError("--frames must be at least 1")
    settings = load_settings(args.config, args.set)
    classes = read_classes(args.classes)
    rows = read_videos(args.videos, classes, args.root, args.ext)
    spec = parse_spec(args.backbone)
    device = settings.run.resolved_device()
    model, pre = build_model(spec, device=device)
    picked = AT.middle_frames(rows, args.frames, settings.views.frames, pre, settings.run.backend,
                              settings.run.timeout)
    frames = torch.stack([f for _, f in picked])
    maps = AT.attention_maps(model, frames, pre.mean, pre.std, args.mode)
    what = "class token's attention in the last block" if args.mode == "last" else "attention rollout"
    title = (args.title + "\n" if args.title else "") + (
        f"{spec.arch} ({spec.pretrained or 'random weights'}): {what}, middle frame of the inference clip")
    plots.attention(args.out, frames.permute(0, 2, 3, 1).numpy().astype(np.uint8), maps,
                    [r.class_name for r, _ in picked], [r.video_id for r, _ in picked], title)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #1e293b; background: #fff; }}
h1 {{ font-size: 1.2em; }}
li {{ font-size: 0.9em; margin: 0.2em 0; }}
table {{ border-collapse: collapse; margin-top: 1em; font-size: 0.9em; }}
th, td {{ border: 1px solid #cbd5e1; padding: 0.3em 0.6em; text-align: right; }}
th {{ background: #f1f5f9; }}
td:first-child, th:first-child {{ text-align: left; }}
</style></head>
<body>
{body}
</body></html>
"""


def run_table(args) -> None:
    import html

    import markdown

    from zar.utils import atomic_write_text

    try:
        text = Path(args.markdown).read_text(encoding="utf-8")
    except FileNotFoundError:
        raise UserError(f"{args.markdown}: table not found (run `zar tables` first)") from None
    first = next((ln.lstrip("# ").strip() for ln in text.splitlines() if ln.strip()), Path(args.markdown).stem)
    body = markdown.markdown(text, extensions=["tables"], output_format="html")
    if "<table>" not in body:
        raise UserError(f"{args.markdown}: no table found in the Markdown")
    atomic_write_text(args.out, PAGE.format(title=html.escape(first), body=body))
