"""Facts about media files from the outside: container sniffing, ffprobe, bounded tool runs."""
from __future__ import annotations

import json
import os
import shutil
import signal
import stat
import subprocess
from pathlib import Path

from zar.core.errors import UserError

# extension -> container family; a file's first bytes must match its family
VIDEO_EXTENSIONS = {".mp4": "mp4", ".m4v": "mp4", ".mov": "mp4", ".avi": "avi", ".mkv": "mkv",
                    ".webm": "mkv"}
_MP4_BOXES = {b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"pnot"}


class ToolTimeout(Exception):
    def __init__(self, tool: str, seconds: float):
        super().__init__(f"{tool} timed out after {seconds:g} s (killed)")
        self.tool, self.seconds = tool, seconds


def sniff(head: bytes) -> str | None:
    """The container family a file's first bytes announce, or None."""
    if len(head) >= 12 and head[:4] == b"RIFF" and head[8:12] == b"AVI ":
        return "avi"
    if len(head) >= 8 and head[4:8] in _MP4_BOXES:
        return "mp4"
    if head[:4] == b"\x1a\x45\xdf\xa3":
        return "mkv"
    return None


def container_problem(path: str | os.PathLike) -> str | None:
    """Why ``path`` cannot be a video of the kind its name says, or None if it may be one.

    Cheap (a stat and 16 bytes); never blocks on pipes or devices.
    """
    path = Path(path)
    try:
        st = path.stat()
    except FileNotFoundError:
        return "file not found"
    if not stat.S_ISREG(st.st_mode):
        return "not a regular file"
    if st.st_size == 0:
        return "empty file (0 bytes)"
    family = VIDEO_EXTENSIONS.get(path.suffix.lower())
    if family is None:
        return f"not a video file extension ({path.suffix or 'none'})"
    with open(path, "rb") as f:
        head = f.read(16)
    found = sniff(head)
    if found is None:
        return f"content is not a video container (starts with {head[:8]!r})"
    if found != family:
        return f"content is {found} but the name says {path.suffix}"
    return None


def require_tool(name: str) -> str:
    found = shutil.which(name)
    if found is None:
        hint = {"ffmpeg": "apt-get install -y ffmpeg", "ffprobe": "apt-get install -y ffmpeg",
                "bsdtar": "apt-get install -y libarchive-tools (conda: libarchive)"}.get(name, "")
        raise UserError(f"{name} not found on PATH" + (f"; install it: {hint}" if hint else ""))
    return found


def run_tool(cmd: list[str], timeout: float | None) -> subprocess.CompletedProcess:
    """Run ``cmd`` (text output captured); on timeout kill its whole process group."""
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                            stderr=subprocess.PIPE, text=True, errors="replace",
                            start_new_session=True)
    try:
        out, err = proc.communicate(timeout=timeout)
    except subprocess.TimeoutExpired:
        _kill_group(proc)
        raise ToolTimeout(Path(cmd[0]).name, timeout or 0) from None
    except BaseException:
        _kill_group(proc)
        raise
    return subprocess.CompletedProcess(cmd, proc.returncode, out, err)


def _kill_group(proc: subprocess.Popen) -> None:
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    proc.kill()
    proc.communicate()


def last_line(text: str, limit: int = 200) -> str:
    lines = [ln.strip() for ln in (text or "").splitlines() if ln.strip()]
    return lines[-1][:limit] if lines else ""


def ffprobe_json(path: str | os.PathLike, args: list[str], *, timeout: float,
                 ffprobe: str = "ffprobe") -> dict:
    """``ffprobe -of json`` on ``path``; raises RuntimeError with ffprobe's message on failure."""
    cmd = [ffprobe, "-v", "error", "-of", "json", *args, os.path.abspath(path)]
    res = run_tool(cmd, timeout)
    if res.returncode != 0:
        raise RuntimeError(f"ffprobe: {last_line(res.stderr) or f'exit status {res.returncode}'}")
    try:
        return json.loads(res.stdout or "{}")
    except json.JSONDecodeError as e:
        raise RuntimeError(f"ffprobe printed no JSON ({e})") from None


class sigterm_as_interrupt:
    """Within the block, SIGTERM (what schedulers send) raises KeyboardInterrupt in the main
    thread, so long runs write their manifest before stopping. No-op outside the main thread."""

    def __enter__(self):
        import threading

        self._old = None
        if threading.current_thread() is threading.main_thread():
            self._old = signal.signal(signal.SIGTERM, self._raise)
        return self

    @staticmethod
    def _raise(signum, frame):
        raise KeyboardInterrupt(f"signal {signum}")

    def __exit__(self, *exc):
        if self._old is not None:
            signal.signal(signal.SIGTERM, self._old)
