"""The method applied to a list of videos: from an embedding cache (`zar tune`), or reading,
encoding and tuning each video in one process (`zar evaluate`). Both append one prediction
record per video as they go (a crashed run resumes) and give the same predictions."""
from __future__ import annotations

import logging
import time

import torch

from zar.core.progress import progress
from zar.method.results import JsonLines, PredictionLog, record

log = logging.getLogger(__name__)


def tune_from_cache(tuner, cache, todo: list[int], view_index: list[int], labels: dict[str, int], method: str,
                    predictions: PredictionLog, batch: int, skip=None, done: set[str] = frozenset()) -> float:
    """Tune the cached videos at rows ``todo`` of ``cache`` (their views ``view_index``) in
    batches of ``batch``, adding each video's record to ``predictions``; the seconds spent. A
    video with non-finite numbers stops the run, or with ``skip`` (a function of its id and the
    reason) is handed to it and not scored.

    Videos in ``done`` (a resumed run's records) get no new record, but the batches are cut
    over all of ``todo`` as in the first run: a batch with some of them is tuned whole, so each
    video meets the same batch and gets the same bits (a batch's shape moves the last float
    digits); a batch with all of them is not tuned again."""
    ids, view_index_t = cache.video_ids, torch.tensor(view_index, dtype=torch.long)
    t0 = time.perf_counter()
    for first in progress(range(0, len(todo), batch), total=-(-len(todo) // batch), desc=f"tune {method}", every=10):
        rows = todo[first:first + batch]
        if all(ids[i] in done for i in rows):
            continue
        chunk = torch.tensor(rows, dtype=torch.long)
        views = cache.views.index_select(0, chunk).index_select(1, view_index_t).float()
        results = tuner.tune(views, cache.infer.index_select(0, chunk).float())
        for i, result in zip(rows, results):
            if ids[i] not in done:
                add_record(predictions, ids[i], labels[ids[i]], result, method, skip)
    return time.perf_counter() - t0


def add_record(predictions, video_id: str, label: int, result, method: str, skip=None) -> None:
    """The video's record into ``predictions``; one with non-finite numbers raises, or goes to ``skip``."""
    from zar.method.results import NonFinite

    try:
        rec = record(video_id, label, result, method)
    except NonFinite as e:
        if skip is None:
            raise
        log.warning("skipped %s", e)
        skip(video_id, str(e))
        return
    predictions.add(rec)


def evaluate_videos(todo, prepared, encoder, tuner, method: str, predictions: PredictionLog, skipped: JsonLines,
                    partial: JsonLines, skip: bool = False) -> None:
    """Encode and tune each of ``todo`` ((list position, row) pairs) as ``prepared`` (the
    reader's output for them, in order) comes; an unreadable video goes to ``skipped`` with
    its reason, a damaged one is evaluated on the frames that decode and noted in ``partial``;
    one with non-finite numbers stops the run, or with ``skip`` goes to ``skipped``."""
    from zar.method.frames import Unreadable, partial_record

    for (pos, row), p in progress(zip(todo, prepared), total=len(todo), desc=f"evaluate {method}"):
        if isinstance(p, Unreadable):
            log.warning("skipped %s: %s", row.path, p.error)
            skipped.add({"video_id": row.video_id, "path": row.path, "reason": p.error, "list_position": pos})
            continue
        if p.partial:
            log.warning("%s is damaged or truncated: evaluated on the %d frames that decode (%s declared)",
                        row.path, p.frames_read, p.frames_declared)
            partial.add(partial_record(row, p))
        t_video = time.perf_counter()
        views, infer = encoder.encode(p)
        result = tuner(views, infer)
        result.seconds = time.perf_counter() - t_video + p.read_seconds
        to_skipped = (lambda vid, why, pos=pos, row=row: skipped.add(
            {"video_id": vid, "path": row.path, "reason": why, "list_position": pos})) if skip else None
        add_record(predictions, row.video_id, row.class_index, result, method, to_skipped)


def reset_peak_memory(device) -> None:
    import torch

    if torch.device(device).type == "cuda":
        torch.cuda.reset_peak_memory_stats()


def peak_memory(device) -> dict:
    """The peak memory of a method's run: the GPU's allocations since :func:`reset_peak_memory`,
    or on the CPU the process's peak resident memory (everything the job held, model included)."""
    import resource

    import torch

    if torch.device(device).type == "cuda":
        return {"device": "cuda", "peak_allocated_mb": torch.cuda.max_memory_allocated() / 2 ** 20}
    return {"device": "cpu", "process_peak_rss_mb": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2 ** 10}
