"""The worker process that runs a decoder, bounded in time, and hands frames back through
shared memory (zar.video)."""
from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

from zar.video.common import VideoDecodeError, ShortRead, Untrusted
from zar.video.backends import BACKEND_MODULES, BACKEND_READERS, last_line


def _attach_shm(name: str):
    from multiprocessing import resource_tracker, shared_memory

    if sys.version_info >= (3, 13):
        return shared_memory.SharedMemory(name=name, track=False)
    # the reader process owns (and unlinks) the block; keep this process's tracker out of it
    register = resource_tracker.register
    resource_tracker.register = lambda *a, **k: None
    try:
        return shared_memory.SharedMemory(name=name)
    finally:
        resource_tracker.register = register


def worker_main(fd: int) -> None:
    """Serve open/read requests on the socket ``fd`` until it closes."""
    from multiprocessing.connection import Connection

    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the reader process decides when to stop
    signal.signal(signal.SIGALRM, signal.SIG_DFL)  # kernel-level kill, works while C code spins
    conn = Connection(fd)
    source, held, shms = None, None, {}
    while True:
        try:
            msg = conn.recv()
        except (EOFError, OSError):
            break
        op = msg[0]
        limit = msg[-1] if op in ("open", "read", "load") else 0
        signal.alarm(int(min(float(limit), 86400)) + 30 if limit else 0)
        try:
            if op == "open":
                _, path, backend, threads, short_side, max_short_side, _limit = msg
                if source is not None:
                    source.close()
                source, held = None, None
                source = BACKEND_READERS[backend](path, threads, short_side, max_short_side)
                reply = ("info", source.info)
            elif op in ("read", "put"):
                if op == "read":
                    held = np.ascontiguousarray(source.read(msg[1]), dtype=np.uint8)
                name, capacity = msg[2], msg[3]
                if held.nbytes > capacity:
                    reply = ("need", held.nbytes)
                else:
                    if name not in shms:
                        for old in shms.values():
                            old.close()
                        shms = {name: _attach_shm(name)}
                    view = np.ndarray(held.shape, np.uint8, buffer=shms[name].buf)
                    view[...] = held
                    del view
                    reply = ("frames", held.shape)
                    held = None
                    source.close()
                    source = None
            elif op == "load":  # import a backend (seconds on a cold disk)
                __import__(BACKEND_MODULES[msg[1]])
                reply = ("loaded", msg[1])
            else:  # "ping"
                reply = ("pong", os.getpid())
        except Untrusted as e:
            reply = ("error", f"not used: {e}")
        except ShortRead as e:
            reply = ("short", int(e.args[0]))
        except VideoDecodeError as e:
            reply = ("error", e.reason)
        except Exception as e:  # decoders raise many types; all mean "cannot decode"
            reply = ("error", f"{type(e).__name__}: {last_line(e)}")
        signal.alarm(0)
        try:
            conn.send(reply)
        except (OSError, EOFError):
            break


class WorkerTimeout(Exception):
    pass


class Worker:
    """One decoder process and the socket to it."""

    def __init__(self):
        from multiprocessing.connection import Connection

        ours, theirs = socket.socketpair()
        env = dict(os.environ)
        root = str(Path(__file__).resolve().parents[2])  # the folder holding the zar package
        env["PYTHONPATH"] = root + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
        code = "import sys; from zar.video.worker import worker_main; worker_main(int(sys.argv[1]))"
        self.proc = subprocess.Popen(
            [sys.executable, "-c", code, str(theirs.fileno())],
            pass_fds=(theirs.fileno(),), env=env, stdin=subprocess.DEVNULL,
        )
        theirs.close()
        self.conn = Connection(ours.detach())
        self.owner = os.getpid()
        self.reads = 0
        self.loaded: set[str] = set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def alive(self) -> bool:
        return self.proc.poll() is None

    def call(self, msg: tuple, deadline: float):
        self.conn.send(msg)
        remaining = deadline - time.monotonic()
        if remaining <= 0 or not self.conn.poll(remaining):
            raise WorkerTimeout()
        return self.conn.recv()

    def kill(self) -> None:
        if self.owner != os.getpid():
            return  # inherited through fork: the parent process owns it
        try:
            self.proc.kill()
        except OSError:
            pass
        self.proc.wait()
        self.conn.close()


