"""The demo's results, for the tests that read them (CI runs the demo before the tests), and the
two checks the tests make of them: the tuning moves the inference clip toward the views' vote
(:func:`tuning_check`) and raises top-1 beyond the splits' noise (:func:`gain_check`)."""
from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import yaml

from zar.core.errors import UserError
from zar.report.analysis import log_softmax, predict, top1

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"


def demo_config() -> dict:
    """The demo's config, checked against the schema and with its defaults filled in."""
    from snakemake.utils import validate

    cfg = yaml.safe_load((DEMO / "config/config.yaml").read_text())
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return cfg


def require(paths) -> None:
    """Fail, saying how to make them, when any of the demo's files ``paths`` (relative to demo/) is missing."""
    missing = [p for p in paths if not (DEMO / p).exists()]
    if missing:
        pytest.fail(f"the demo's results are missing ({len(missing)} files, e.g. demo/{missing[0]}): run the demo "
                    "first: snakemake --cores all --directory demo all  (or: make demo)")


def tuning_check(predictions: dict, min_share: float = 0.8, tol: float = 1e-3) -> dict:
    """Does test-time tuning do its job on these predictions (from :func:`load_predictions`)?

    Tuning minimises the entropy of the views' mean prediction, so with the tuned prompt the
    inference clip should give MORE probability to the class the views vote for (the
    ensemble's top class). ``shift`` is that class's log-probability on the inference clip
    after tuning minus before; the check passes when it rises (by more than ``tol``) in at
    least ``min_share`` of the videos. A tuned prompt left unused or a learning rate of 0
    leaves it unchanged, a flipped gradient sign lowers it.
    """
    if predictions["logits_ensemble"] is None:
        raise UserError("these predictions do not record the views' vote (logits_ensemble): rerun their tuning job")
    vote = predict(predictions["logits_ensemble"])
    rows = np.arange(len(vote))
    shift = log_softmax(predictions["logits_after"])[rows, vote] - log_softmax(predictions["logits_before"])[rows, vote]
    n = len(shift)
    share = float((shift > tol).mean()) if n else 0.0
    labels = predictions["labels"]
    return {"videos": n, "share_up": share, "median_shift": float(np.median(shift)) if n else 0.0,
            "top1_before": top1(predictions["logits_before"], labels) if n else None,
            "top1_after": top1(predictions["logits_after"], labels) if n else None,
            "min_share": min_share, "ok": n > 0 and share >= min_share}


def gain_check(splits: list[dict], min_gain: float = 5.0) -> dict:
    """Does tuning raise top-1 on one dataset, beyond the noise of its splits?

    ``splits`` are the predictions (:func:`load_predictions`) of its splits. The gain is the
    mean over the splits of top-1 after tuning minus top-1 before (vanilla CLIP, the same
    inference clip with the initial prompt), in points. The check passes when the gain is at
    least ``min_gain`` and larger than the split-to-split standard deviation (ddof=1, as the
    tables report it) of either top-1.
    """
    if not len(splits) or any(len(p["labels"]) == 0 for p in splits):
        raise UserError("gain_check needs at least one split with videos")
    before = np.array([top1(p["logits_before"], p["labels"]) for p in splits])
    after = np.array([top1(p["logits_after"], p["labels"]) for p in splits])
    gain = float(after.mean() - before.mean())
    std = float(max(before.std(ddof=1), after.std(ddof=1))) if len(splits) > 1 else 0.0
    return {"top1_before": before.tolist(), "top1_after": after.tolist(), "gain": gain, "split_std": std,
            "min_gain": min_gain, "ok": gain >= min_gain and gain > std}
