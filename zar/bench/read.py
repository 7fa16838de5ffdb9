"""Benchmark of the video reader: prints figures, asserts nothing.

    zar bench read [--seconds 10] [--size 320x240] [--fps 30] [--frames 272]

Makes an h264 clip with ffmpeg in a temporary folder, then times (median of --repeats):
one batched read of --frames unique frames in this process (decord, PyAV) and through the
isolated worker (decord), 48 separate reads in this process, and the worker's first start.
"""
from __future__ import annotations

import argparse
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np


def _median_ms(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return 1000 * statistics.median(times)


def add_read_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seconds", type=float, default=10.0)
    p.add_argument("--size", default="320x240")
    p.add_argument("--fps", type=int, default=30)
    p.add_argument("--frames", type=int, default=272, help="unique frames per read")
    p.add_argument("--repeats", type=int, default=7)


def run_read(args) -> int:
    from zar.bench.clips import make_clip
    from zar.video import VideoReader
    from zar.video.backends import probe_container as probe

    with tempfile.TemporaryDirectory() as d:
        clip = Path(d) / "clip.mp4"
        make_clip(clip, args.seconds, args.size, args.fps)
        n = int(round(args.seconds * args.fps))
        k = min(args.frames, n)
        idx = np.sort(np.random.default_rng(0).choice(n, k, replace=False)).tolist()
        chunks = [c.tolist() for c in np.array_split(np.array(idx), 48) if c.size]
        mb = k * np.prod([int(x) for x in args.size.split("x")]) * 3 / 1e6
        print(f"clip: {args.seconds:g} s, {args.size}, {args.fps} fps, h264 ({n} frames); "
              f"reading {k} frames ({mb:.0f} MB) per call, median of {args.repeats}")
        results = {}
        with VideoReader("decord", isolate=False) as inline:
            inline.read(clip, lambda i: idx)  # warm the page cache and the import
            results["decord, in-process, one batched read"] = _median_ms(
                lambda: inline.read(clip, lambda i: idx), args.repeats)

            def separate():
                import decord

                vr = decord.VideoReader(str(clip), num_threads=1)
                for c in chunks:
                    vr.get_batch(c).asnumpy()
                    vr.seek(0)

            results[f"decord, in-process, {len(chunks)} separate reads"] = _median_ms(separate, args.repeats)
        with VideoReader("pyav", isolate=False) as inline_av:
            results["pyav, in-process, sequential decode"] = _median_ms(
                lambda: inline_av.read(clip, lambda i: idx), args.repeats)
        results["demuxer frame-count check (part of every read)"] = _median_ms(
            lambda: probe(str(clip)), args.repeats)
        t = time.perf_counter()
        iso = VideoReader("decord", timeout=120)
        iso.read(clip, lambda i: [0])
        start_ms = 1000 * (time.perf_counter() - t)
        results["decord, worker process, one batched read"] = _median_ms(
            lambda: iso.read(clip, lambda i: idx), args.repeats)
        iso.close()
        width = max(map(len, results))
        for name, ms in results.items():
            print(f"  {name:<{width}}  {ms:8.1f} ms")
        one = results["decord, in-process, one batched read"]
        worker = results["decord, worker process, one batched read"]
        print(f"  {'worker overhead per read':<{width}}  {worker - one:8.1f} ms "
              f"({100 * (worker - one) / one:+.0f}%)")
        print(f"  {'worker start (once per process, first read)':<{width}}  {start_ms:8.1f} ms")
    return 0
