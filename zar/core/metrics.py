"""Accuracy metrics and aggregation over splits."""
from __future__ import annotations

import math
from typing import Sequence

import numpy as np


def topk(scores, k: int) -> np.ndarray:
    """Indices of the ``k`` highest scores along the last axis, highest first; ties go to the
    lower class index (a stable sort). The one rule every prediction, record and table uses."""
    scores = np.asarray(scores, dtype=np.float64)
    return np.argsort(-scores, axis=-1, kind="stable")[..., :min(k, scores.shape[-1])]


def topk_hits(scores: np.ndarray, labels: np.ndarray, k: int) -> np.ndarray:
    """Boolean (N,): is the label among the k highest scores?"""
    return (topk(scores, k) == np.asarray(labels)[:, None]).any(axis=1)


def accuracy_summary(scores: np.ndarray, labels: np.ndarray, n_classes: int) -> dict:
    """top-1, top-5 and mean per-class accuracy (%), with per-class top-1 and counts."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {"top1": None, "top5": None, "mean_class_acc": None, "per_class": []}
    top1 = topk_hits(scores, labels, 1)
    top5 = topk_hits(scores, labels, 5)
    per_class = []
    accs = []
    for c in range(n_classes):
        m = labels == c
        n = int(m.sum())
        acc = float(top1[m].mean() * 100) if n else None
        per_class.append({"class_index": c, "n": n, "top1": acc})
        if n:
            accs.append(acc)
    return {
        "top1": float(top1.mean() * 100),
        "top5": float(top5.mean() * 100),
        "mean_class_acc": float(np.mean(accs)),
        "per_class": per_class,
    }


def calibration(scores: np.ndarray, labels: np.ndarray, bins: int = 15) -> dict[str, float | None]:
    """Expected calibration error (%, ``bins`` equal-width confidence bins (lo, hi], the weighted
    mean of |accuracy - mean confidence| per bin) and the negative log-likelihood of the label,
    both from the softmax of ``scores`` (N, K); confidence = the top class's probability."""
    labels = np.asarray(labels)
    if len(labels) == 0:
        return {"ece": None, "nll": None}
    z = np.asarray(scores, dtype=np.float64)
    z = z - z.max(axis=1, keepdims=True)
    logp = z - np.log(np.exp(z).sum(axis=1, keepdims=True))
    conf = np.exp(logp.max(axis=1))
    correct = topk(z, 1)[:, 0] == labels
    ece = 0.0
    for lo, hi in zip(np.linspace(0, 1, bins + 1)[:-1], np.linspace(0, 1, bins + 1)[1:]):
        in_bin = (conf > lo) & (conf <= hi)
        if in_bin.any():
            ece += in_bin.mean() * abs(correct[in_bin].mean() - conf[in_bin].mean())
    return {"ece": float(100 * ece), "nll": float(-logp[np.arange(len(labels)), labels].mean())}


def mean_std(values: Sequence[float | None]) -> tuple[float | None, float | None]:
    """Mean and sample standard deviation (ddof=1) over splits; std is None for one value."""
    vals = [float(v) for v in values if v is not None]
    if not vals:
        return None, None
    mean = sum(vals) / len(vals)
    if len(vals) < 2:
        return mean, None
    var = sum((v - mean) ** 2 for v in vals) / (len(vals) - 1)
    return mean, math.sqrt(var)


def harmonic_mean(a: float | None, b: float | None) -> float | None:
    if a is None or b is None:
        return None
    return 0.0 if a + b == 0 else 2 * a * b / (a + b)
