"""The numbers behind the figures: per-class accuracy, confusion, ablation series, t-SNE.

Pure functions of arrays and records (no files, no plotting), so each is tested on tiny
inputs; :mod:`zar.report.figures` reads the result files and draws. "Before" is the prediction
with the initial prompt (vanilla CLIP), "after" the prediction with the tuned prompt; for
a vanilla result the two are the same.
"""
from __future__ import annotations

import csv
import math
from pathlib import Path
from typing import Any, Sequence

import numpy as np

from zar.core.errors import UserError
from zar.core.metrics import topk


# ----------------------------------------------------------------------------- predictions
def load_predictions(summary_path: str | Path) -> dict[str, Any]:
    """A result summary and its predictions (the ``.jsonl`` beside it) as arrays.

    Returns ``{"summary", "classes" (names in index order), "video_ids", "labels" (N,),
    "logits_before" (N, C), "logits_after" (N, C), "logits_ensemble" (N, C) or None}`` (the
    last the views' vote under the initial prompt, as log-probabilities; None where the
    records do not hold it).
    """
    import json

    from zar.core.files import read_json

    summary_path = Path(summary_path)
    summary = read_json(summary_path)
    if "classes" not in summary or "method" not in summary:
        raise UserError(f"{summary_path}: not a zar result summary (no 'classes' or 'method')")
    classes = list(summary["classes"])
    jsonl = summary_path.with_suffix(".jsonl")
    if not jsonl.is_file():
        raise UserError(f"{jsonl}: the predictions of {summary_path.name} are missing")
    ids, labels, before, after, ensemble = [], [], [], [], []
    with open(jsonl, encoding="utf-8") as f:
        for n, line in enumerate(f, start=1):
            if not line.strip():
                continue
            try:
                rec = json.loads(line)
            except json.JSONDecodeError as e:
                raise UserError(f"{jsonl}: line {n} is not JSON ({e})") from None
            optional = ("logits_ensemble",) if "logits_ensemble" in rec else ()  # older records lack it
            for key in ("logits_before", "logits_after", *optional):
                if len(rec.get(key, ())) != len(classes):
                    raise UserError(f"{jsonl}: line {n}: {key} has {len(rec.get(key, ()))} values, "
                                    f"the summary lists {len(classes)} classes")
            ids.append(rec["video_id"])
            labels.append(int(rec["label"]))
            before.append(rec["logits_before"])
            after.append(rec["logits_after"])
            ensemble.append(rec.get("logits_ensemble"))
    shape = (len(ids), len(classes))
    return {"summary": summary, "classes": classes, "video_ids": ids, "labels": np.asarray(labels, dtype=np.int64),
            "logits_before": np.asarray(before, dtype=np.float64).reshape(shape),
            "logits_after": np.asarray(after, dtype=np.float64).reshape(shape),
            "logits_ensemble": None if any(e is None for e in ensemble)
            else np.asarray(ensemble, dtype=np.float64).reshape(shape)}


def log_softmax(logits: np.ndarray) -> np.ndarray:
    logits = np.asarray(logits, dtype=np.float64)
    z = logits - logits.max(axis=-1, keepdims=True)
    return z - np.log(np.exp(z).sum(axis=-1, keepdims=True))


def predict(logits: np.ndarray) -> np.ndarray:
    """Top-1 class per row (:func:`zar.core.metrics.topk`'s tie rule)."""
    return topk(logits, 1)[:, 0]


def top1(logits: np.ndarray, labels: np.ndarray) -> float:
    """Top-1 accuracy (%) of :func:`predict` against ``labels``."""
    return float((predict(logits) == np.asarray(labels)).mean() * 100)


def per_class(labels: np.ndarray, logits_before: np.ndarray, logits_after: np.ndarray,
              class_names: Sequence[str]) -> list[dict[str, Any]]:
    """One row per class: videos, correct and top-1 (%) before and after tuning, and the change.

    Classes without test videos get ``n = 0`` and empty accuracies.
    """
    labels = np.asarray(labels, dtype=np.int64)
    ok_before = predict(logits_before) == labels
    ok_after = predict(logits_after) == labels
    rows = []
    for c, name in enumerate(class_names):
        m = labels == c
        n = int(m.sum())
        cb, ca = int(ok_before[m].sum()), int(ok_after[m].sum())
        b = 100.0 * cb / n if n else None
        a = 100.0 * ca / n if n else None
        rows.append({"class_index": c, "class_name": name, "n": n, "correct_before": cb, "correct_after": ca,
                     "top1_before": b, "top1_after": a, "delta": None if b is None else a - b})
    return rows


def confusion(labels: np.ndarray, logits: np.ndarray, n_classes: int) -> np.ndarray:
    """(C, C) counts: row = true class, column = predicted class (scikit-learn's layout)."""
    labels = np.asarray(labels, dtype=np.int64)
    if labels.size == 0:
        return np.zeros((n_classes, n_classes), dtype=np.int64)
    return np.bincount(labels * n_classes + predict(logits), minlength=n_classes * n_classes).reshape(n_classes, n_classes)


def helps_hurts(rows: list[dict[str, Any]], k: int = 10) -> tuple[list[dict], list[dict]]:
    """The ``k`` classes whose top-1 tuning raises most and the ``k`` it lowers most.

    Only classes with test videos and a non-zero change count; ties go to more videos, then
    to the lower class index.
    """
    changed = [r for r in rows if r["n"] and r["delta"]]
    helped = sorted((r for r in changed if r["delta"] > 0), key=lambda r: (-r["delta"], -r["n"], r["class_index"]))
    hurt = sorted((r for r in changed if r["delta"] < 0), key=lambda r: (r["delta"], -r["n"], r["class_index"]))
    return helped[:k], hurt[:k]


# ----------------------------------------------------------------------------- ablation tables
def _num(value: str | None) -> float | None:
    if value is None or str(value).strip() == "":
        return None
    v = float(value)
    return None if math.isnan(v) else v


def read_table_csv(path: str | Path) -> list[dict[str, Any]]:
    """The records of a table CSV written by `zar tables` (numbers as floats, empty as None)."""
    try:
        with open(path, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
    except FileNotFoundError:
        raise UserError(f"{path}: table not found (run `zar tables` first)") from None
    need = {"row", "row_key", "column", "ours_mean", "ours_std", "paper_mean"}
    if rows and not need <= set(rows[0]):
        raise UserError(f"{path}: not a table CSV of `zar tables` (needs columns {sorted(need)})")
    out = []
    for r in rows:
        out.append({**r, "ours_mean": _num(r["ours_mean"]), "ours_std": _num(r["ours_std"]),
                    "paper_mean": _num(r["paper_mean"]), "paper_std": _num(r.get("paper_std"))})
    return out


def ablation_series(records: list[dict[str, Any]], table: int) -> list[dict[str, Any]]:
    """What an ablation plot draws, one point per (series, group, x).

    Table 3 (ratio sweep): one line per dataset (the table's rows), x = the kept ratio (%).
    Tables 4-5 (rates, crops): one group of bars per dataset (the table's columns), one bar
    per variant (the rows), x = the variant's label. Series ``ours`` (mean ± std over the
    splits) and ``paper`` (only where the table has the paper's number).
    """
    from zar.report.table_registry import TABLES, plotted

    if table not in plotted():
        raise ValueError(f"table {table} is not drawn as a figure (those drawn: {', '.join(map(str, plotted()))})")
    lines = TABLES[table].plot.kind == "lines"
    points = []
    for r in records:
        if lines:
            group, x = r["row"], float(r["column"])
        else:
            group, x = r["column"], r["row"]
        base = {"group": group, "x": x, "n_runs": int(r.get("n_runs") or 0) or None}
        points.append({"series": "ours", **base, "mean": r["ours_mean"], "std": r["ours_std"]})
        if r["paper_mean"] is not None:
            points.append({"series": "paper", **base, "mean": r["paper_mean"], "std": r["paper_std"]})
    return points


# ----------------------------------------------------------------------------- t-SNE
def tsne_2d(embeddings: np.ndarray, perplexity: float = 30.0, seed: int = 0) -> np.ndarray:
    """(N, 2) t-SNE coordinates of (N, D) embeddings (scikit-learn, cosine distance, PCA init).

    The perplexity is lowered to fit small sets (it must stay below N); N < 3 gives zeros
    and one point sits at the origin.
    """
    from sklearn.manifold import TSNE

    x = np.asarray(embeddings, dtype=np.float64)
    n = x.shape[0]
    if n < 3:
        return np.zeros((n, 2))
    perp = float(min(perplexity, max(1.0, (n - 1) / 3.0)))
    return TSNE(n_components=2, perplexity=perp, metric="cosine", init="pca", random_state=seed).fit_transform(x)


def subsample(n: int, max_points: int | None, seed: int = 0) -> np.ndarray:
    """Sorted indices of at most ``max_points`` of ``n`` items (all when it fits), seeded."""
    if not max_points or n <= max_points:
        return np.arange(n)
    return np.sort(np.random.default_rng(seed).choice(n, size=max_points, replace=False))


def cost_points(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Table 6's CSV records (columns ``backbone:dataset``, ``backbone:ece``, ``backbone:ms``)
    as one point per (backbone, method): top-1 averaged over the datasets, ECE, ms per video."""
    out: dict[tuple[str, str], dict[str, Any]] = {}
    for r in records:
        backbone, what = r["column"].split(":")
        p = out.setdefault((backbone, r["row"]), {"backbone": backbone, "method": r["row"], "top1s": []})
        if what == "ms":
            p["ms_per_video"] = r["ours_mean"]
        elif what == "ece":
            p["ece"] = r["ours_mean"]
        elif r["ours_mean"] is not None:
            p["top1s"].append(r["ours_mean"])
    return [{"backbone": p["backbone"], "method": p["method"], "ece": p.get("ece"),
             "ms_per_video": p.get("ms_per_video"), "top1": float(np.mean(p["top1s"])) if p["top1s"] else None}
            for p in out.values()]
