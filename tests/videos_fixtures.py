"""Fixtures made on the fly for the data tests: tiny videos (ffmpeg), archives, a local HTTP server.

Nothing here touches the network beyond 127.0.0.1.
"""
from __future__ import annotations

import http.server
import io
import os
import shutil
import struct
import subprocess
import threading
import time
import zipfile
import zlib
from pathlib import Path

FFMPEG = shutil.which("ffmpeg")


def have_encoder(name: str) -> bool:
    if FFMPEG is None:
        return False
    out = subprocess.run([FFMPEG, "-hide_banner", "-encoders"], capture_output=True, text=True).stdout
    return any(line.split()[1:2] == [name] for line in out.splitlines() if line.strip())


# UCF101 and HMDB51 ship Xvid (MPEG-4 part 2) in AVI; ffmpeg's own mpeg4 encoder is the fallback
XVID = "libxvid" if have_encoder("libxvid") else "mpeg4"


def make_video(path: str | os.PathLike, *, seconds: float = 2.0, fps: int = 10, size: str = "64x48",
               codec: str = "libx264", bframes: int | None = None, marker: bool = False) -> Path:
    """A small synthetic video. ``marker``: each frame's luma is ``4 * frame_number`` (mod 256),
    so the frame a cut starts at can be read back from its brightness."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    if marker:
        src = (f"color=c=black:s={size}:r={fps}:d={seconds},"
               f"geq=lum='mod(N*4,256)':cb=128:cr=128")
    else:
        src = f"testsrc=size={size}:rate={fps}:duration={seconds}"
    cmd = [FFMPEG, "-v", "error", "-nostdin", "-y", "-f", "lavfi", "-i", src]
    if codec == "libx264":
        cmd += ["-c:v", "libx264", "-pix_fmt", "yuv420p", "-g", str(fps), "-crf", "10"]
    else:  # mpeg4 part 2 (xvid), as UCF101 and HMDB51 ship
        cmd += ["-c:v", codec, "-q:v", "3"]
        if codec == "mpeg4":
            cmd += ["-vtag", "XVID"]
    if bframes is not None:
        cmd += ["-bf", str(bframes)]
    cmd.append(str(path))
    subprocess.run(cmd, check=True)
    return path


# ----------------------------------------------------------------------------- RAR 4 (stored)
def _rar_block(head_type: int, flags: int, body: bytes, add: bytes = b"") -> bytes:
    size = 7 + len(body)
    head = struct.pack("<BHH", head_type, flags, size) + body
    crc = zlib.crc32(head) & 0xFFFF
    return struct.pack("<H", crc) + head + add


def make_rar(path: str | os.PathLike, members: dict[str, bytes | None]) -> Path:
    """A RAR 4 archive with stored (uncompressed) members; ``None`` makes a directory.

    Written here from the format description because no free tool creates RAR files."""
    dos_time = ((2020 - 1980) << 25) | (1 << 21) | (1 << 16)
    out = bytearray(b"Rar!\x1a\x07\x00")
    out += _rar_block(0x73, 0, struct.pack("<HI", 0, 0))
    for name, data in members.items():
        raw = name.encode("utf-8")
        is_dir = data is None
        data = b"" if is_dir else data
        flags = 0x8000 | (0x00E0 if is_dir else 0)
        attr = 0o40755 if is_dir else 0o100644
        body = struct.pack("<IIBIIBBHI", len(data), len(data), 3, zlib.crc32(data), dos_time,
                           20, 0x30, len(raw), attr) + raw
        out += _rar_block(0x74, flags, body, data)
    out += _rar_block(0x7B, 0, b"")
    path = Path(path)
    path.write_bytes(bytes(out))
    return path


# ----------------------------------------------------------------------------- HTTP server
class _Handler(http.server.BaseHTTPRequestHandler):
    server_version = "zar-test"

    def log_message(self, *args):  # keep test output quiet
        pass

    def do_HEAD(self):
        self._serve(head=True)

    def do_GET(self):
        self._serve(head=False)

    def _serve(self, head: bool):
        srv = self.server
        path = self.path.split("?")[0]
        srv.requests.append((self.command, path, self.headers.get("Range")))
        fails = srv.fail_next.get(path)
        if fails:
            self.send_error(fails.pop(0))
            return
        body = srv.files.get(path)
        if body is None:
            self.send_error(404)
            return
        start, status = 0, 200
        rng = self.headers.get("Range")
        if rng and rng.startswith("bytes=") and srv.ranges:
            first = rng[6:].split("-")[0]
            start = int(first or 0)
            if start >= len(body):
                self.send_response(416)
                self.send_header("Content-Range", f"bytes */{len(body)}")
                self.end_headers()
                return
            status = 206
        chunk = body[start:]
        self.send_response(status)
        ctype = "video/mp4" if path.endswith(".mp4") else "application/octet-stream"
        self.send_header("Content-Type", ctype)
        self.send_header("Content-Length", str(len(chunk)))
        self.send_header("Accept-Ranges", "bytes" if srv.ranges else "none")
        if status == 206:
            self.send_header("Content-Range", f"bytes {start}-{len(body) - 1}/{len(body)}")
        self.end_headers()
        if head:
            return
        cut = srv.cut_once.pop(path, None)  # send only part of the body, then drop the connection
        if cut is not None:
            self.wfile.write(chunk[:cut])
            self.wfile.flush()
            self.close_connection = True
            return
        self.wfile.write(chunk)


class LocalServer:
    """A threaded HTTP server on 127.0.0.1 serving ``files`` (url path -> bytes), with Range
    support, a request log, ``cut_once[path] = n`` to break the next transfer after n bytes,
    and ``fail_next[path] = [503, ...]`` to answer the next requests with errors."""

    def __init__(self, ranges: bool = True):
        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
        self.httpd.daemon_threads = True
        self.httpd.files, self.httpd.requests, self.httpd.cut_once = {}, [], {}
        self.httpd.fail_next = {}
        self.httpd.ranges = ranges
        self.thread = threading.Thread(target=self.httpd.serve_forever, daemon=True)

    @property
    def files(self) -> dict[str, bytes]:
        return self.httpd.files

    @property
    def requests(self) -> list[tuple[str, str, str | None]]:
        return self.httpd.requests

    @property
    def cut_once(self) -> dict[str, int]:
        return self.httpd.cut_once

    @property
    def fail_next(self) -> dict[str, list[int]]:
        """url path -> HTTP status codes to answer the next requests with, one each."""
        return self.httpd.fail_next

    def url(self, path: str) -> str:
        return f"http://127.0.0.1:{self.httpd.server_address[1]}{path}"

    def gets(self, path: str | None = None) -> list[tuple[str, str, str | None]]:
        return [r for r in self.requests if r[0] == "GET" and (path is None or r[1] == path)]

    def __enter__(self):
        self.thread.start()
        return self

    def __exit__(self, *exc):
        self.httpd.shutdown()
        self.httpd.server_close()


def wait_until(cond, timeout: float = 10.0) -> bool:
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if cond():
            return True
        time.sleep(0.05)
    return cond()


def tar_bytes(members: dict[str, bytes], gz: bool = True) -> bytes:
    import tarfile

    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz" if gz else "w") as tf:
        for name, data in members.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def ucf_archives(tmp_path: Path) -> tuple[bytes, bytes]:
    good = make_video(tmp_path / "good.avi", seconds=1, fps=10, codec=XVID).read_bytes()
    videos = make_rar(tmp_path / "UCF101.rar", {
        "UCF-101": None, "UCF-101/ClassA": None, "UCF-101/ClassB": None,
        "UCF-101/ClassA/v_ClassA_g01_c01.avi": good,
        "UCF-101/ClassA/v_ClassA_g01_c02.avi": b"",                          # zero bytes
        "UCF-101/ClassA/v_ClassA_g02_c01.avi": good,
        "UCF-101/ClassB/v_ClassB_g01_c01.avi": b"<html>not found</html>\n",  # not a video
    }).read_bytes()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        zf.writestr("ucfTrainTestlist/classInd.txt", "1 ClassA\n2 ClassB\n")
        zf.writestr("ucfTrainTestlist/testlist01.txt",
                    "ClassA/v_ClassA_g01_c01.avi\nClassA/v_ClassA_g01_c02.avi\n"
                    "ClassB/v_ClassB_g01_c01.avi\nClassB/v_ClassB_g02_c01.avi\n")
        zf.writestr("ucfTrainTestlist/trainlist01.txt", "ClassA/v_ClassA_g02_c01.avi 1\n")
    return videos, buf.getvalue()
