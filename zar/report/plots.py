"""The figures: matplotlib (object-oriented API, Agg canvas), PNG plus the CSV behind it.

Every function takes arrays or records, writes ``<out>.png`` and the data it draws as
``<out>.csv`` (some also a second CSV beside it), each atomically. A figure's pixel size
depends only on its kind (:data:`SIZES` at :data:`DPI`), so a reader of the report, and the
tests, know what to expect.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zar.core.files import atomic_path, atomic_write_text

DPI = 100
SIZES: dict[str, tuple[float, float]] = {  # inches at DPI
    "perclass": (16.0, 8.0),
    "ablation": (9.0, 5.0),
    "tsne": (10.0, 8.0),
    "attention": (12.0, 6.5),
    "cost": (9.0, 5.5),
}
MAX_TICK_LABELS = 40  # above this many classes the confusion matrix has no class names on its axes


def pixel_size(kind: str) -> tuple[int, int]:
    """(width, height) in pixels of a figure of this kind."""
    w, h = SIZES[kind]
    return int(round(w * DPI)), int(round(h * DPI))


def _figure(kind: str):
    from matplotlib.figure import Figure

    return Figure(figsize=SIZES[kind], dpi=DPI, layout="constrained")


def _save(fig, png: str | Path) -> None:
    with atomic_path(png, suffix=".png") as tmp:
        fig.savefig(tmp, format="png", dpi=DPI)


def write_csv(path: str | Path, rows: list[dict[str, Any]], fields: Sequence[str] | None = None) -> None:
    fields = list(fields or (rows[0].keys() if rows else []))
    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: ("" if r.get(k) is None else f"{r[k]:.4f}" if isinstance(r[k], float) else r[k])
                    for k in fields})
    atomic_write_text(path, buf.getvalue())


def csv_path(png: str | Path, suffix: str = "") -> Path:
    png = Path(png)
    return png.with_name(png.stem + suffix + ".csv")


def _short(name: str, n: int = 32) -> str:
    """A class name for display: underscores as spaces, cut to ``n`` characters."""
    name = name.replace("_", " ")
    return name if len(name) <= n else name[: n - 1] + "…"


# ----------------------------------------------------------------------------- per class
PERCLASS_FIELDS = ["class_index", "class_name", "n", "correct_before", "correct_after", "top1_before", "top1_after",
                   "delta"]


def perclass(out_png: str | Path, rows: list[dict], matrix: np.ndarray, helped: list[dict], hurt: list[dict],
             title: str, tuned: bool = True) -> None:
    """Confusion matrix (rows = true class, normalised per row) and the classes tuning helps
    and hurts most. Writes ``<out>.csv`` (per class), ``<out>_confusion.csv`` (counts) and
    ``<out>_helps_hurts.csv``."""
    names = [r["class_name"] for r in rows]
    n_classes = len(names)
    write_csv(csv_path(out_png), rows, PERCLASS_FIELDS)
    write_csv(csv_path(out_png, "_confusion"),
              [{"true_class": names[i], **{names[j]: int(matrix[i, j]) for j in range(n_classes)}}
               for i in range(n_classes)], ["true_class", *names])
    hh = [{"effect": "helps", "rank": i + 1, **r} for i, r in enumerate(helped)]
    hh += [{"effect": "hurts", "rank": i + 1, **r} for i, r in enumerate(hurt)]
    write_csv(csv_path(out_png, "_helps_hurts"), hh, ["effect", "rank", *PERCLASS_FIELDS])

    fig = _figure("perclass")
    ax_cm, ax_bar = fig.subplots(1, 2, width_ratios=[1.15, 1])
    totals = matrix.sum(axis=1, keepdims=True)
    frac = np.divide(matrix, totals, out=np.zeros(matrix.shape, dtype=float), where=totals > 0)
    im = ax_cm.imshow(frac * 100, cmap="viridis", vmin=0, vmax=100, interpolation="nearest", aspect="auto")
    fig.colorbar(im, ax=ax_cm, shrink=0.8, label="% of the true class's videos")
    when = "after tuning" if tuned else "vanilla prompt"
    ax_cm.set_title(f"confusion matrix ({when})")
    if n_classes <= MAX_TICK_LABELS:
        fs, cut = (7, 34) if n_classes <= 20 else (6, 24)
        ax_cm.set_xticks(range(n_classes), [_short(n, cut) for n in names], rotation=90, fontsize=fs)
        ax_cm.set_yticks(range(n_classes), [_short(n, cut) for n in names], fontsize=fs)
        ax_cm.set_xlabel("predicted class")
        ax_cm.set_ylabel("true class")
    else:
        ax_cm.set_xlabel(f"predicted class (index, {n_classes} classes)")
        ax_cm.set_ylabel("true class (index)")

    bars = [*helped, *hurt[::-1]]
    if not tuned:
        ax_bar.text(0.5, 0.5, "vanilla CLIP: no tuning, so no class gains or loses",
                    ha="center", va="center", transform=ax_bar.transAxes)
        ax_bar.set_axis_off()
    elif not bars:
        ax_bar.text(0.5, 0.5, "tuning changed no class's top-1", ha="center", va="center", transform=ax_bar.transAxes)
        ax_bar.set_axis_off()
    else:
        y = np.arange(len(bars))[::-1]
        vals = [r["delta"] for r in bars]
        ax_bar.barh(y, vals, color=["tab:green" if v > 0 else "tab:red" for v in vals])
        ax_bar.set_yticks(y, [f"{_short(r['class_name'])} (n={r['n']})" for r in bars], fontsize=8)
        ax_bar.axvline(0, color="black", linewidth=0.8)
        ax_bar.set_xlabel("top-1 after tuning − before (percentage points)")
        ax_bar.set_title("classes tuning helps (green) and hurts (red) most")
    fig.suptitle(title)
    _save(fig, out_png)


# ----------------------------------------------------------------------------- ablations
def _errors(points: list[dict]) -> list[float] | None:
    """Error bars (std over splits), or none at all where no point has one (a single split)."""
    return [p["std"] or 0.0 for p in points] if any(p["std"] is not None for p in points) else None


def ablation(out_png: str | Path, points: list[dict], table: int, title: str) -> None:
    """A table as its declaration says (zar.report.table_registry): lines (top-1 against the column,
    e.g. Table 3's kept ratio) or grouped bars (Tables 4-5); error bars = std over splits; the
    paper's values, where given, as a second series."""
    from zar.report.table_registry import get

    plot = get(table).plot
    write_csv(csv_path(out_png), points, ["series", "group", "x", "mean", "std", "n_runs"])
    fig = _figure("ablation")
    ax = fig.subplots()
    groups = list(dict.fromkeys(p["group"] for p in points))
    series = [s for s in ("ours", "paper") if any(p["series"] == s for p in points)]
    colours = {g: f"C{i % 10}" for i, g in enumerate(groups)}
    if plot.kind == "lines":
        for g in groups:
            for s in series:
                pts = sorted((p for p in points if p["group"] == g and p["series"] == s and p["mean"] is not None),
                             key=lambda p: p["x"])
                if not pts:
                    continue
                ax.errorbar([p["x"] for p in pts], [p["mean"] for p in pts],
                            yerr=_errors(pts), color=colours[g], capsize=3,
                            marker="o" if s == "ours" else "s", linestyle="-" if s == "ours" else "--",
                            label=f"{g} ({'ours' if s == 'ours' else 'paper, quoted'})")
        ax.set_xlabel(plot.x_label)
    else:
        cats = list(dict.fromkeys(p["x"] for p in points))
        combos = [(g, s) for g in groups for s in series]
        width = 0.8 / max(1, len(combos))
        for j, (g, s) in enumerate(combos):
            by_x = {p["x"]: p for p in points if p["group"] == g and p["series"] == s}
            xs = [i + (j - (len(combos) - 1) / 2) * width for i, c in enumerate(cats) if by_x.get(c, {}).get("mean") is not None]
            pts = [by_x[c] for c in cats if by_x.get(c, {}).get("mean") is not None]
            if not pts:
                continue
            bars = ax.bar(xs, [p["mean"] for p in pts], width, yerr=_errors(pts), capsize=3,
                          color=colours[g], alpha=1.0 if s == "ours" else 0.45, hatch=None if s == "ours" else "//",
                          edgecolor="black", linewidth=0.5,
                          label=f"{g} ({'ours' if s == 'ours' else 'paper, quoted'})")
            ax.bar_label(bars, fmt="%.1f", fontsize=8, padding=2)
        ax.set_xticks(range(len(cats)), cats)
        ax.set_xlabel(plot.x_label)
    ax.set_ylabel("top-1 (%)")
    ax.grid(axis="y", alpha=0.3)
    if points:  # below the axes, where it hides no point or bar
        fig.legend(*ax.get_legend_handles_labels(), fontsize=8, loc="outside lower center", ncols=max(1, len(series)))
    else:
        ax.text(0.5, 0.5, "no results", ha="center", va="center", transform=ax.transAxes)
    ax.set_title(title, fontsize=10)
    _save(fig, out_png)


# ----------------------------------------------------------------------------- t-SNE
MAX_LEGEND = 20


def tsne(out_png: str | Path, xy: np.ndarray, class_names: Sequence[str], video_ids: Sequence[str], title: str) -> None:
    """Scatter of 2-D t-SNE points coloured by class (legend up to 20 classes)."""
    write_csv(csv_path(out_png), [{"video_id": v, "class_name": c, "x": float(p[0]), "y": float(p[1])}
                                  for v, c, p in zip(video_ids, class_names, xy)], ["video_id", "class_name", "x", "y"])
    from matplotlib import colormaps

    fig = _figure("tsne")
    ax = fig.subplots()
    classes = sorted(set(class_names))
    cmap = colormaps["tab20"] if len(classes) <= 20 else colormaps["turbo"]
    names = np.asarray(class_names, dtype=object)
    for i, c in enumerate(classes):
        m = names == c
        colour = cmap(i % 20) if len(classes) <= 20 else cmap(i / max(1, len(classes) - 1))
        ax.scatter(xy[m, 0], xy[m, 1], s=12, color=colour, label=_short(c, 28), linewidths=0)
    if 0 < len(classes) <= MAX_LEGEND:
        ax.legend(fontsize=7, markerscale=1.5, loc="center left", bbox_to_anchor=(1.0, 0.5), frameon=False)
    ax.set_xticks([])
    ax.set_yticks([])
    ax.set_title(f"{title}\n{len(xy)} videos, {len(classes)} classes"
                 + ("" if len(classes) <= MAX_LEGEND else " (colour = class, no legend)"), fontsize=10)
    _save(fig, out_png)


# ----------------------------------------------------------------------------- attention
def attention(out_png: str | Path, frames: np.ndarray, maps: np.ndarray, captions: Sequence[str],
              video_ids: Sequence[str], title: str) -> None:
    """Frames (N, S, S, 3) uint8 over their attention maps (N, gh, gw): frames on top, the
    maps (scaled to [0, 1] per frame) overlaid below."""
    n, gh, gw = maps.shape
    write_csv(csv_path(out_png), [{"video_id": video_ids[i], "class_name": captions[i], "row": r, "col": c,
                                   "attention": float(maps[i, r, c])}
                                  for i in range(n) for r in range(gh) for c in range(gw)],
              ["video_id", "class_name", "row", "col", "attention"])
    fig = _figure("attention")
    axes = np.asarray(fig.subplots(2, n, squeeze=False))
    size = frames.shape[1]
    for i in range(n):
        m = maps[i]
        rng = float(m.max() - m.min())
        m = (m - m.min()) / rng if rng > 0 else np.zeros_like(m)
        axes[0, i].imshow(frames[i])
        axes[0, i].set_title(_short(captions[i], 28), fontsize=9)
        axes[1, i].imshow(frames[i])
        axes[1, i].imshow(m, cmap="jet", alpha=0.5, extent=(0, size, size, 0), interpolation="bilinear", vmin=0, vmax=1)
        for ax in axes[:, i]:
            ax.set_xticks([])
            ax.set_yticks([])
    axes[0, 0].set_ylabel("frame")
    axes[1, 0].set_ylabel("attention")
    fig.suptitle(title, fontsize=10)
    _save(fig, out_png)


def accuracy_cost(out_png: str | Path, points: list[dict], title: str) -> None:
    """Table 6 as a plot: each method's top-1 (mean over the datasets) against its own ms per
    video, on a log axis, one marker series per backbone; the points are in the CSV beside."""
    import numpy as np

    write_csv(csv_path(out_png), points, ["backbone", "method", "top1", "ms_per_video", "ece"])
    fig = _figure("cost")
    ax = fig.subplots()
    for backbone, marker in zip(dict.fromkeys(p["backbone"] for p in points), "osD^v<>"):
        pts = [p for p in points if p["backbone"] == backbone and p["top1"] is not None and p["ms_per_video"]]
        ax.scatter([p["ms_per_video"] for p in pts], [p["top1"] for p in pts], marker=marker, s=60, label=backbone)
        for p in pts:
            ax.annotate(p["method"], (p["ms_per_video"], p["top1"]), textcoords="offset points", xytext=(6, 4),
                        fontsize=9)
    xs = [p["ms_per_video"] for p in points if p["ms_per_video"]]
    if xs and min(xs) > 0:
        ax.set_xscale("log")
        ax.set_xlim(min(xs) / 2, max(xs) * 2 if max(xs) > min(xs) else min(xs) * 4)
    ax.set_xlabel("the method's own time per video (ms, log scale; encoding not counted)")
    ax.set_ylabel("top-1 (%), mean over the datasets")
    ax.set_title(title)
    ax.grid(True, alpha=0.3, which="both")
    ax.legend(loc="best", fontsize=9, title="backbone")
    del np
    _save(fig, out_png)
