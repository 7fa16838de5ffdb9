"""``VideoReader`` and ``read_video``: exact frames, partial files, time limits (zar.video)."""
from __future__ import annotations

import atexit
import dataclasses
import logging
import multiprocessing.util
import os
import stat
import sys
import threading
import time
from pathlib import Path
from typing import Callable, Sequence

import numpy as np

from zar.video.common import (BACKENDS, IMPORT_TIMEOUT, PARTIAL_POLICIES, VideoDecodeError, VideoInfo, ShortRead,
                              Untrusted)
from zar.video.backends import BACKEND_READERS, last_line
from zar.video.worker import WorkerTimeout, Worker

log = logging.getLogger(__name__)

class VideoReader:
    """Reads the frames a video's views need, in one batched call, within a time limit.

    backend: "decord" (default) or "pyav".
    fallback: on failure, distrust or timeout of the backend, try PyAV once more.
    timeout: seconds each backend attempt may take (so at most two timeouts per video).
    isolate: decode in a worker process (time-bounded); False decodes in this process
        (no time bound; for benchmarks and debugging).
    short_side: resize in the decoder so the shorter side has this many pixels (default:
        original size); bilinear in both decord and PyAV.
    max_short_side: scale down in the decoder, to this short side, only sources whose short
        side is larger (memory then stays bounded whatever the source resolution); smaller
        sources are returned as they are. ``short_side`` wins when both are given.
    partial: "flag" (default) reads a damaged or truncated file's readable frames and sets
        ``info.partial``; "refuse" raises VideoDecodeError for it instead.
    recycle_after: replace the worker process after this many videos.
    """

    def __init__(self, backend: str = "decord", *, fallback: bool = True, timeout: float = 60.0,
                 isolate: bool = True, short_side: int | None = None, max_short_side: int | None = None,
                 partial: str = "flag", threads: int = 1, recycle_after: int = 1000):
        if backend not in BACKENDS:
            raise ValueError(f"unknown video backend {backend!r}; choose from {BACKENDS}")
        if partial not in PARTIAL_POLICIES:
            raise ValueError(f"unknown partial policy {partial!r}; choose from {PARTIAL_POLICIES}")
        for name, v in (("short_side", short_side), ("max_short_side", max_short_side)):
            if v is not None and (not isinstance(v, int) or v < 1):
                raise ValueError(f"{name} must be a positive integer or None, not {v!r}")
        self.max_short_side, self.partial = max_short_side, partial
        self.backend, self.fallback, self.timeout = backend, fallback, float(timeout)
        self.isolate, self.short_side, self.threads = isolate, short_side, threads
        self.recycle_after = recycle_after
        self.stats = {"videos": 0, "fallbacks": 0, "timeouts": 0, "restarts": 0}
        self._worker: Worker | None = None
        self._shm = None
        self._shm_owner: int | None = None
        self._lock = threading.Lock()

    # -- public
    def read(self, path: str | os.PathLike, indices_fn: Callable[[VideoInfo], Sequence[int]],
             timeout: float | None = None) -> tuple[np.ndarray, VideoInfo]:
        path = os.fspath(path)
        _precheck(path)
        timeout = self.timeout if timeout is None else float(timeout)
        order = [self.backend] + (["pyav"] if self.fallback and self.backend != "pyav" else [])
        errors = []
        with self._lock:
            self.stats["videos"] += 1
            for i, backend in enumerate(order):
                try:
                    if self.isolate:
                        out = self._attempt_isolated(path, backend, indices_fn, timeout)
                    else:
                        out = self._attempt_inline(path, backend, indices_fn)
                    self.stats["fallbacks"] += i > 0
                    break
                except _Failure as e:
                    errors.append(f"{backend}: {e}")
                    log.debug("%s: %s failed: %s", path, backend, e)
            else:
                raise VideoDecodeError(path, "; ".join(errors))
        info = out[1]
        if info.partial and self.partial == "refuse":
            raise VideoDecodeError(path, "partial file (damaged or truncated): " + partial_summary(info))
        return out

    def worker_pid(self) -> int | None:
        """The decoder process's id (None before the first read or after a kill)."""
        return self._worker.pid if self._worker is not None and self._worker.alive() else None

    def close(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None
        if self._shm is not None and self._shm_owner == os.getpid():
            self._shm.close()
            self._shm.unlink()
        self._shm = None

    def __enter__(self):
        return self

    def __del__(self):
        try:
            self.close()
        except Exception:  # pragma: no cover - interpreter shutdown
            pass

    def __exit__(self, *exc):
        self.close()

    # -- one attempt
    def _attempt_inline(self, path, backend, indices_fn):
        try:
            source = BACKEND_READERS[backend](path, self.threads, self.short_side, self.max_short_side)
        except (VideoDecodeError, Untrusted) as e:
            raise _Failure(e.reason if isinstance(e, VideoDecodeError) else f"not used: {e}") from None
        except Exception as e:
            raise _Failure(f"{type(e).__name__}: {last_line(e)}") from None

        def read_unique(uniq: list[int], info: VideoInfo) -> np.ndarray:
            try:
                return np.asarray(source.read(uniq), dtype=np.uint8)
            except ShortRead:
                raise
            except Untrusted as e:
                raise _Failure(f"not used: {e}") from None
            except VideoDecodeError as e:
                raise _Failure(e.reason) from None
            except Exception as e:
                raise _Failure(f"{type(e).__name__}: {last_line(e)}") from None

        try:
            return _read_in_order(source.info, indices_fn, read_unique)
        finally:
            source.close()

    def _attempt_isolated(self, path, backend, indices_fn, timeout):
        worker = self._get_worker()
        try:
            if backend not in worker.loaded:  # imports do not count against a video's time
                limit = IMPORT_TIMEOUT
                kind, payload = worker.call(("load", backend, limit), time.monotonic() + limit)
                if kind == "error":
                    raise _Failure(f"cannot load: {payload}")
                worker.loaded.add(backend)
            limit = timeout
            deadline = time.monotonic() + timeout
            # the worker lives on across calls: a relative path means this process's current directory
            kind, payload = worker.call(("open", os.path.abspath(path), backend, self.threads, self.short_side,
                                         self.max_short_side, timeout), deadline)
            if kind == "error":
                raise _Failure(payload)
            info = payload

            def read_unique(uniq: list[int], info: VideoInfo) -> np.ndarray:
                shm = self._get_shm(len(uniq) * info.height * info.width * 3)
                kind, payload = worker.call(("read", uniq, shm.name, shm.size, timeout), deadline)
                if kind == "need":
                    shm = self._get_shm(int(payload))
                    kind, payload = worker.call(("put", None, shm.name, shm.size, timeout), deadline)
                if kind == "short":
                    raise ShortRead(int(payload))
                if kind == "error":
                    raise _Failure(payload)
                # a view of the shared block: _read_in_order copies out of it, in request order
                return np.ndarray(tuple(payload), np.uint8, buffer=shm.buf)

            out = _read_in_order(info, indices_fn, read_unique)
            worker.reads += 1
            return out
        except WorkerTimeout:
            self._drop_worker()
            self.stats["timeouts"] += 1
            raise _Failure(f"timed out after {limit:g} s (decoder process killed)") from None
        except (EOFError, OSError, BrokenPipeError):
            code = worker.proc.poll()
            self._drop_worker()
            raise _Failure(f"decoder process died (exit status {code})") from None
        except BaseException:
            # a failing indices_fn, an interrupt: the worker may still be busy; do not reuse it
            if not isinstance(sys.exc_info()[1], _Failure):
                self._drop_worker()
            raise

    # -- resources
    def _get_worker(self) -> Worker:
        w = self._worker
        if w is not None and (w.owner != os.getpid() or not w.alive() or w.reads >= self.recycle_after):
            self._drop_worker()
            w = None
        if w is None:
            w = self._worker = Worker()
            self.stats["restarts"] += 1
        return w

    def _drop_worker(self) -> None:
        if self._worker is not None:
            self._worker.kill()
            self._worker = None

    def _get_shm(self, nbytes: int):
        from multiprocessing import shared_memory

        if self._shm is not None and (self._shm_owner != os.getpid() or self._shm.size < nbytes):
            if self._shm_owner == os.getpid():
                self._shm.close()
                self._shm.unlink()
            self._shm = None
        if self._shm is None:
            self._shm = shared_memory.SharedMemory(create=True, size=max(int(nbytes * 1.25), 1 << 20))
            self._shm_owner = os.getpid()
        return self._shm


class _Failure(Exception):
    """One backend attempt failed; the message is the reason."""


def _read_in_order(info: VideoInfo, indices_fn, read_unique) -> tuple[np.ndarray, VideoInfo]:
    """The frames ``indices_fn(info)`` asks for, in its order (repeats allowed), from ONE
    ``read_unique(sorted unique indices, info)`` call. A short read (fewer frames decode than
    the demuxer promised) corrects ``info.num_frames`` and asks ``indices_fn`` again, once."""
    for _ in range(2):
        idx = _indices(indices_fn, info)
        uniq, inverse = np.unique(idx, return_inverse=True)
        if uniq.size == 0:
            return np.zeros((0, info.height, info.width, 3), np.uint8), info
        try:
            unique_frames = read_unique(uniq.tolist(), info)
        except ShortRead as e:
            info = dataclasses.replace(info, num_frames=int(e.args[0]), partial=True)
            continue
        try:
            return unique_frames[inverse], info  # a copy: nothing refers to a shared block after this
        finally:
            del unique_frames
    raise _Failure("frame count changed twice while reading")


def _indices(indices_fn, info: VideoInfo) -> np.ndarray:
    idx = np.asarray(list(indices_fn(info)), dtype=np.int64).reshape(-1)
    bad = idx[(idx < 0) | (idx >= info.num_frames)]
    if bad.size:
        raise IndexError(f"frame index {int(bad[0])} outside 0..{info.num_frames - 1}")
    return idx


def _precheck(path: str) -> None:
    try:
        st = os.stat(path)
    except FileNotFoundError:
        raise VideoDecodeError(path, "file not found") from None
    except OSError as e:
        raise VideoDecodeError(path, f"cannot stat: {e.strerror}") from None
    if stat.S_ISDIR(st.st_mode):
        raise VideoDecodeError(path, "is a directory")
    if stat.S_ISREG(st.st_mode) and st.st_size == 0:
        raise VideoDecodeError(path, "empty file (0 bytes)")


# ----------------------------------------------------------------------------- convenience
_IDLE: dict[tuple, list[VideoReader]] = {}  # per setting: readers not in use (one per concurrent caller)
_ALL: list[VideoReader] = []
_POOL_LOCK = threading.Lock()


def read_video(
    path: str | Path,
    indices_fn: Callable[[VideoInfo], Sequence[int]],
    backend: str = "decord",
    timeout: float = 60.0,
    max_short_side: int | None = None,
    partial: str = "flag",
) -> tuple[np.ndarray, VideoInfo]:
    """Read the frames ``indices_fn(info)`` asks for (see ``VideoReader``), with a shared
    isolated reader: concurrent callers (threads) each get their own worker process."""
    if backend not in BACKENDS:
        raise ValueError(f"unknown video backend {backend!r}; choose from {BACKENDS}")
    key = (backend, max_short_side, partial)
    with _POOL_LOCK:
        idle = _IDLE.setdefault(key, [])
        if idle:
            reader = idle.pop()
        else:
            reader = VideoReader(backend, timeout=timeout, max_short_side=max_short_side, partial=partial)
            _ALL.append(reader)
    try:
        return reader.read(path, indices_fn, timeout=timeout)
    finally:
        with _POOL_LOCK:
            _IDLE[key].append(reader)


def partial_summary(info: VideoInfo) -> str:
    """'N of M declared frames decode' (or what is known) for a partial file's record."""
    if info.declared_frames:
        return f"{info.num_frames} of {info.declared_frames} declared frames decode"
    return f"only the first {info.num_frames} frames decode"


def _close_readers() -> None:
    """At exit, stop the decoder processes and free the shared memory this process owns, also
    in a DataLoader worker or other forked child (which skips ``atexit``); ``close`` leaves
    what a forked child inherited from its parent to the parent."""
    for reader in list(_ALL):
        try:
            reader.close()
        except Exception:  # pragma: no cover - best effort at exit
            pass


def _close_readers_at_child_exit(_=None) -> None:
    multiprocessing.util.Finalize(None, _close_readers, exitpriority=10)


atexit.register(_close_readers)
# a multiprocessing child ends through os._exit (no atexit) after running its finalizers, and
# starts with none: register ours again in every child
multiprocessing.util.register_after_fork(_close_readers_at_child_exit, _close_readers_at_child_exit)
