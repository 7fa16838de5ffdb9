"""`zar figures`: the report's figures and table pages (zar.report.figures)."""
from __future__ import annotations

from pathlib import Path

from zar.core.errors import UserError
from zar.report import table_registry
from zar.report.figures import attention_figure, perclass_figure, perclass_name, tsne_figure


def add_arguments(p) -> None:
    sub = p.add_subparsers(dest="kind", required=True, metavar="KIND")

    s = sub.add_parser("perclass", help="per-class accuracy, confusion matrix, classes tuning helps/hurts")
    s.add_argument("--results", required=True, nargs="+",
                   help="result summary JSONs (each with its predictions .jsonl beside it)")
    s.add_argument("--out", required=True, help="folder: one figure (.png, CSVs beside it) per result")
    s.add_argument("--strip", default="", help="prefix of the result paths dropped from the figure names")
    s.add_argument("--top", type=int, default=10, help="classes shown that tuning helps / hurts most (default 10)")
    s.add_argument("--note", default="", help="added to every title (e.g. that the data are synthetic)")

    drawn = table_registry.plotted()
    s = sub.add_parser("ablation", help=f"a table drawn as a plot ({', '.join(map(str, drawn))}: zar/report/table_registry.py)")
    s.add_argument("--table", required=True, help="table CSV written by `zar tables`")
    s.add_argument("--number", type=int, required=True, choices=drawn, help="which table it is")
    s.add_argument("--out", required=True, help="figure to write (.png); CSV beside it")
    s.add_argument("--title", default=None, help="figure title")

    s = sub.add_parser("cost", help="Table 6 drawn as accuracy against each method's time per video")
    s.add_argument("--table", required=True, help="Table 6's CSV written by `zar tables`")
    s.add_argument("--out", required=True, help="figure to write (.png); CSV beside it")
    s.add_argument("--title", default="Test-time methods: accuracy against cost", help="figure title")

    s = sub.add_parser("tsne", help="t-SNE of cached video embeddings, coloured by class")
    s.add_argument("--embeddings", required=True, nargs="+",
                   help="embedding cache shards of `zar encode` (.pt); with --names, NAME=SHARD")
    s.add_argument("--videos", required=True, nargs="+",
                   help="video lists (split files) naming the class of each video to plot; with --names, NAME=LIST")
    s.add_argument("--names", default=None, nargs="+",
                   help="one figure per name (e.g. per dataset), each from its NAME= caches and lists; "
                        "--out is then a folder")
    s.add_argument("--out", required=True, help="figure to write (.png); CSV of the points beside it")
    s.add_argument("--max-points", type=int, default=5000, help="random subset above this many videos (default 5000)")
    s.add_argument("--perplexity", type=float, default=30.0, help="t-SNE perplexity (default 30)")
    s.add_argument("--seed", type=int, default=0, help="seed of the subset and of t-SNE")
    s.add_argument("--title", default=None, help="figure title")

    s = sub.add_parser("attention", help="attention maps of the image encoder over a few test frames")
    from zar.method.settings import add_settings_arguments

    s.add_argument("--videos", required=True, nargs="+", help="video list CSV(s) (path and label), one per figure")
    s.add_argument("--classes", required=True, nargs="+", help="each list's classes.csv")
    s.add_argument("--root", default=None, nargs="+", help="each list's video root (relative paths start there)")
    s.add_argument("--names", default=None, nargs="+",
                   help="with several lists: the figure names (e.g. the datasets); --out is then a folder")
    s.add_argument("--ext", default=None, help="replace the video file suffix (e.g. .mp4)")
    s.add_argument("--backbone", required=True, help="backbone name, ARCH:PRETRAINED, spec .json or checkpoint")
    s.add_argument("--n-videos", type=int, default=4, help="how many videos of each list (one frame each; default 4)")
    s.add_argument("--mode", choices=("last", "rollout"), default="last",
                   help="class-token attention of the last block (default) or attention rollout")
    s.add_argument("--out", required=True, help="figure to write (.png); CSV of the maps beside it")
    s.add_argument("--title", default=None, help="figure title")
    add_settings_arguments(s)


def outputs(args) -> list:
    """A folder of figures (perclass; tsne and attention over several lists), or one PNG with
    its CSV beside it."""
    out = Path(args.out)
    if args.kind == "perclass" or (args.kind in ("tsne", "attention") and out.suffix != ".png"):
        return [(out, "dir")]
    return [(out, "file"), (out.with_suffix(".csv"), "file")]


def run(args) -> int:
    out = Path(args.out)
    if args.kind not in ("perclass", "attention", "tsne") and out.suffix != ".png":
        raise UserError(f"--out {out}: the figure is written as PNG; give a .png path")
    handler = {"perclass": run_perclass, "ablation": run_ablation, "cost": run_cost, "tsne": run_tsne,
               "attention": run_attention}[args.kind]
    handler(args)
    print(f"zar figures {args.kind}: -> {out}")
    return 0


def run_perclass(args) -> None:
    if args.top < 1:
        raise UserError("--top must be at least 1")
    for result in args.results:
        perclass_figure(result, Path(args.out) / perclass_name(result, args.strip), args.top,
                        f"{result}{args.note}")


def run_cost(args) -> None:
    from zar.report import analysis as A
    from zar.report import plots

    plots.accuracy_cost(args.out, A.cost_points(A.read_table_csv(args.table)), args.title)


def run_ablation(args) -> None:
    from zar.report import analysis as A
    from zar.report import plots

    records = A.read_table_csv(args.table)
    points = A.ablation_series(records, args.number)
    plots.ablation(args.out, points, args.number, ablation_title(args.title or f"Table {args.number}", points))


def ablation_title(title: str, points: list[dict]) -> str:
    """The figure's title and what its points are: one split, or a mean ± std over several."""
    runs = {p["n_runs"] for p in points if p["series"] == "ours"}
    ours = "ours: one split" if runs <= {1, None} else "ours: mean ± std over splits"
    has_paper = any(p["series"] == "paper" for p in points)
    return f"{title}\n{ours}" + ("; paper: quoted from Liang et al. 2025" if has_paper else "")


def run_tsne(args) -> None:
    import math

    if not (math.isfinite(args.perplexity) and args.perplexity > 0):
        raise UserError(f"--perplexity {args.perplexity}: must be a number > 0 (t-SNE's default: 30)")
    if args.max_points < 2:
        raise UserError(f"--max-points {args.max_points}: must be at least 2")
    if not args.names:
        return tsne_figure(args.embeddings, args.videos, args, Path(args.out), args.title)
    for name in args.names:
        pick = lambda items: [x.split("=", 1)[1] for x in items if x.split("=", 1)[0] == name]  # noqa: E731
        title = args.title.replace("{name}", name) if args.title else name
        tsne_figure(pick(args.embeddings), pick(args.videos), args, Path(args.out) / f"{name}.png", title)


def run_attention(args) -> None:
    from zar.model.backbone import build_model, parse_spec
    from zar.method.settings import load_settings

    if args.n_videos < 1:
        raise UserError("--n-videos must be at least 1")
    n = len(args.videos)
    if len(args.classes) != n or (args.root and len(args.root) != n) or (n > 1 and len(args.names or []) != n):
        raise UserError("give one --classes (and --root) per --videos, and with several lists one --names each")
    settings = load_settings(args.config, args.set)
    spec = parse_spec(args.backbone)
    model, pre = build_model(spec, device=settings.run.resolved_device())
    for i in range(n):
        out = Path(args.out) / f"{args.names[i]}.png" if n > 1 else Path(args.out)
        title = args.title.replace("{name}", args.names[i]) if args.title and args.names else args.title
        attention_figure(model, pre, spec, settings, args.videos[i], args.classes[i],
                         args.root[i] if args.root else None, args.ext, args.n_videos, args.mode, title, out)
