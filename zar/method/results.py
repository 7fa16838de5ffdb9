"""Per-video prediction records and the summary every result file carries.

Predictions are appended as JSON lines while a run progresses (``<out>.jsonl.part``), so a
crashed run resumes where it stopped; the finished run renames them to ``<out>.jsonl`` and
writes the summary ``<out>`` atomically.
"""
from __future__ import annotations

import json
import math
import logging
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zar.core.metrics import accuracy_summary, calibration, topk
from zar.method.tpt import TuneResult
from zar.core.errors import UserError
from zar.core.files import sha256_file, to_json, write_json
from zar.core.provenance import provenance

log = logging.getLogger(__name__)


def top5(logits: torch.Tensor) -> list[int]:
    return [int(i) for i in topk(logits.detach().double().cpu().numpy(), 5)]


class NonFinite(UserError):
    """A video whose logits or loss are not finite numbers: never scored."""


def non_finite(result: TuneResult) -> str | None:
    """What is not finite in a video's result (None when everything is)."""
    bad = [name for name in ("logits_before", "logits_after", "logits_ensemble")
           if not torch.isfinite(getattr(result, name)).all()]
    if result.loss is not None and not np.isfinite(result.loss):
        bad.append("loss")
    return ", ".join(bad) or None


def record(video_id: str, label: int, result: TuneResult, method: str) -> dict[str, Any]:
    """A video's prediction record; :class:`NonFinite` (naming the video) when its numbers are
    not finite: an argmax over NaN would score it as class 0."""
    bad = non_finite(result)
    if bad:
        raise NonFinite(f"video {video_id!r}: non-finite {bad} (NaN or infinite: damaged weights, or a learning "
                        "rate too large); nothing was scored. run.non_finite=skip records such videos as skipped")
    rec = {
        "video_id": video_id,
        "label": int(label),
        "top5_before": top5(result.logits_before),
        "top5_after": top5(result.logits_after),
        "top5_ensemble": top5(result.logits_ensemble),
        "kept_views": result.kept,
        "loss": result.loss,
        "seconds": round(result.seconds, 4),
        "logits_before": [round(float(x), 5) for x in result.logits_before.tolist()],
        "logits_after": [round(float(x), 5) for x in result.logits_after.tolist()],
        "logits_ensemble": [round(float(x), 5) for x in result.logits_ensemble.tolist()],
    }
    if method == "vanilla":
        rec["kept_views"] = []
    return rec


def read_json_lines(path: Path) -> list[dict]:
    """The records of a JSON-lines file, up to a torn line (a crash's last write) or the end."""
    out = []
    if not path.exists():
        return out
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():  # a torn multi-byte character
        try:
            out.append(json.loads(line))
        except json.JSONDecodeError:
            break  # a torn last line from a crash: drop it and what follows
    return out


class JsonLines:
    """Records appended one JSON line each as a run goes (flushed, so a crash loses at most the
    line being written), read back by the next run; ``fresh`` starts the file over."""

    def __init__(self, path: Path, fresh: bool = False):
        self.path = Path(path)
        if fresh:
            self.path.unlink(missing_ok=True)
        self.records = read_json_lines(self.path)

    def add(self, rec: dict) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        try:
            with open(self.path, "a", encoding="utf-8") as f:
                f.write(to_json(rec, indent=None))
        except OSError as e:
            raise OSError(e.errno, e.strerror, str(self.path)) from None
        self.records.append(rec)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class PredictionLog:
    """Append-only JSON lines with resume: ``done`` holds the records already written. The
    first line of the part file is the fingerprint of the inputs and settings; a part file
    written with others is started over."""

    def __init__(self, out_jsonl: Path, fingerprint: str, resume: bool = True, n_classes: int | None = None):
        self.final = Path(out_jsonl)
        self.n_classes = n_classes
        self.part = self.final.with_name(self.final.name + ".part")
        self.final.parent.mkdir(parents=True, exist_ok=True)
        self.fingerprint = fingerprint
        self.done: dict[str, dict] = {}
        if resume and self.part.exists():
            lines = read_json_lines(self.part)
            if lines and isinstance(lines[0], dict) and lines[0].get("_fingerprint") == fingerprint:
                kept = [rec for rec in lines[1:] if self._fits(rec)]
                if len(kept) < len(lines) - 1:
                    log.warning("%s: %d of %d records do not fit this run (wrong fields or number of classes): "
                                "their videos are done again", self.part, len(lines) - 1 - len(kept), len(lines) - 1)
                self.done = {rec["video_id"]: rec for rec in kept}
                log.info("resuming: %d predictions already in %s", len(self.done), self.part)
            else:
                log.warning("%s was written with other inputs or settings: starting over", self.part)
        self._write_clean()
        self._f = open(self.part, "a", encoding="utf-8")

    def _fits(self, rec) -> bool:
        """A resumed record is used only if it is one this run would write: an id, a label and
        three finite logit vectors of the classifier's length."""
        if not isinstance(rec, dict) or not isinstance(rec.get("video_id"), str) or not isinstance(rec.get("label"), int):
            return False
        for key in ("logits_before", "logits_after", "logits_ensemble"):
            v = rec.get(key)
            if not isinstance(v, list) or (self.n_classes is not None and len(v) != self.n_classes):
                return False
            if not all(isinstance(x, (int, float)) and math.isfinite(x) for x in v):
                return False
        return True

    def _write_clean(self) -> None:
        tmp = self.part.with_name(self.part.name + ".tmp")
        with open(tmp, "w", encoding="utf-8") as f:
            f.write(json.dumps({"_fingerprint": self.fingerprint}) + "\n")
            for rec in self.done.values():
                f.write(to_json(rec, indent=None))
        os.replace(tmp, self.part)

    def add(self, rec: dict) -> None:
        try:
            self._f.write(to_json(rec, indent=None))
            self._f.flush()
        except OSError as e:  # a full disk: the records before this one stay, for the rerun
            raise OSError(e.errno, e.strerror, str(self.part)) from None
        self.done[rec["video_id"]] = rec

    def finish(self, order: list[str]) -> list[dict]:
        """Rewrite the records in list order under the final name; return them. The part file
        stays until :meth:`committed` (the summary written): a failure in between loses nothing."""
        self._f.close()
        recs = [self.done[v] for v in order if v in self.done]
        tmp = self.final.with_name(self.final.name + ".tmp")
        try:
            with open(tmp, "w", encoding="utf-8") as f:
                for rec in recs:
                    f.write(to_json(rec, indent=None))
        except OSError as e:  # nothing under the final name; the part file stays for the rerun
            tmp.unlink(missing_ok=True)
            raise OSError(e.errno, e.strerror, str(self.final)) from None
        os.replace(tmp, self.final)
        return recs

    def committed(self) -> None:
        """The result that the predictions belong to is written: the part file goes."""
        self.part.unlink(missing_ok=True)

    def abandon(self) -> None:
        """The result could not be written: nothing stays under the final name; the part file
        does, and the rerun resumes from it."""
        self.final.unlink(missing_ok=True)


def frames_record(views, spec) -> dict:
    """The three frame counts of a result: tuning views, inference clip, the backbone's fine-tuning."""
    from zar.model.backbone import training_frames

    return {"views": views.frames, "inference": views.infer_frames, "backbone_training": training_frames(spec)}


def fingerprint(*parts: Any) -> str:
    """A short hash of everything that determines the predictions (inputs and settings)."""
    import hashlib

    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()[:16]


def summarise(records: list[dict], n_classes: int, method: str) -> dict[str, Any]:
    """The method's accuracy and calibration (its logits, ``logits_after``: for vanilla CLIP the
    same as before), vanilla CLIP's on the inference clip (the initial prompt) and the views'
    vote (the inference clip and the views averaged under the initial prompt)."""
    labels = np.array([r["label"] for r in records], dtype=np.int64)
    out: dict[str, Any] = {}
    scores = {}
    for when in ("after", "before", "ensemble"):
        scores[when] = np.array([r[f"logits_{when}"] for r in records], dtype=np.float64).reshape(len(records),
                                                                                                 n_classes)
        out[when] = accuracy_summary(scores[when], labels, n_classes)
    main = out["after"]
    cal, cal_before = calibration(scores["after"], labels), calibration(scores["before"], labels)
    return {
        "top1": main["top1"], "top5": main["top5"], "mean_class_acc": main["mean_class_acc"],
        "ece": cal["ece"], "nll": cal["nll"],
        "ece_before_tuning": cal_before["ece"], "nll_before_tuning": cal_before["nll"],
        "top1_before_tuning": out["before"]["top1"], "top5_before_tuning": out["before"]["top5"],
        "top1_ensemble": out["ensemble"]["top1"], "top5_ensemble": out["ensemble"]["top5"],
        "per_class_top1": [c["top1"] for c in main["per_class"]],
        "per_class_top1_before_tuning": [c["top1"] for c in out["before"]["per_class"]],
        "per_class_n": [c["n"] for c in main["per_class"]],
        "mean_seconds_per_video": float(np.mean([r["seconds"] for r in records])) if records else None,
    }


def write_summary(out: Path, *, method: str, records: list[dict], n_listed: int, skipped: list[dict],
                  class_names: list[str], inputs: dict[str, str | None], settings: dict, backbone: dict,
                  predictions: Path, partial: list[dict] | None = None, extra: dict | None = None) -> dict[str, Any]:
    """The result file: every metric, the counts, what was skipped and why, the videos
    evaluated on the frames of a damaged or truncated file, inputs, settings."""
    if not records:
        reasons = sorted({s["reason"] for s in skipped})[:3]
        raise UserError(f"{out}: none of the {n_listed} listed videos could be evaluated ({len(skipped)} skipped, "
                        f"e.g. {'; '.join(reasons) or 'no reason recorded'}); no result written")
    summary = {
        "method": method,
        **summarise(records, len(class_names), method),
        "n_evaluated": len(records),
        "n_listed": n_listed,
        "n_skipped": len(skipped),
        "skipped": skipped,
        "n_partial": len(partial or []),
        "partial": partial or [],
        "classes": class_names,
        "inputs": {k: {"path": v, "sha256": sha256_file(v) if v and Path(v).is_file() else None}
                   for k, v in inputs.items()},
        "predictions": str(predictions),
        "settings": settings,
        "backbone": backbone,
        **(extra or {}),
        "provenance": provenance(),
    }
    write_json(out, summary)
    return summary
