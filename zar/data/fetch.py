"""HTTP downloads that resume, retry with backoff, verify, and only then take their final name."""
from __future__ import annotations

import http.client
import logging
import os
import random
import threading
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from zar import __version__
from zar.core.errors import UserError
from zar.core.files import is_disk_full, sha256_file

log = logging.getLogger(__name__)

_PERMANENT_HTTP = {400, 401, 403, 404, 410, 451}
_CHUNK = 1 << 20


class FetchError(Exception):
    """A download failed; ``permanent`` when retrying cannot help (e.g. 404)."""

    def __init__(self, reason: str, permanent: bool = False):
        super().__init__(reason)
        self.reason, self.permanent = reason, permanent


@dataclass(frozen=True)
class Fetched:
    path: Path
    bytes: int
    sha256: str
    resumed_from: int  # bytes already on disk from an interrupted earlier attempt (0: none)


def backoff_delay(attempt: int, base: float) -> float:
    """Exponential backoff with jitter: base * 2**attempt * [0.5, 1.5)."""
    return base * (2 ** attempt) * (0.5 + random.random())


def warn_plain_http(url: str, pinned: bool) -> bool:
    """Say so, naming the URL, when a download goes over plain http to another machine (a
    mirror on this one, 127.0.0.1 or localhost, is not warned about); True when it does."""
    from urllib.parse import urlsplit

    if not url.startswith("http://") or urlsplit(url).hostname in ("127.0.0.1", "localhost", "::1"):
        return False
    log.warning("%s: plain http, not https: nothing protects it in transit%s", url,
                "; its sha256 pin is checked" if pinned else " and it has no sha256 pin")
    return True


def part_path(dest: Path) -> Path:
    return dest.with_name(dest.name + ".part")


def http_download(url: str, dest: str | os.PathLike, *, sha256: str | None = None, retries: int = 3,
                  backoff: float = 2.0, timeout: float = 60.0, pin_origin: str = "pinned") -> Fetched:
    """Download ``url`` to ``dest`` through ``dest.part``, resuming an interrupted ``.part``
    with an HTTP Range request; verify length and the sha256 pin (if any); then rename.
    ``pin_origin`` says where the expected sha256 comes from (for the mismatch message)."""
    dest = Path(dest)
    if not url.startswith(("http://", "https://", "file:")):
        raise UserError(f"{url}: only http(s) and file URLs are downloaded")
    warn_plain_http(url, pinned=sha256 is not None)
    dest.parent.mkdir(parents=True, exist_ok=True)
    part = part_path(dest)
    first_offset = part.stat().st_size if part.exists() else 0
    attempt = 0
    while True:
        try:
            _transfer(url, part, timeout)
            break
        except FetchError as e:
            if e.permanent or attempt >= retries:
                raise FetchError(f"{url}: {e.reason}", e.permanent) from None
            delay = backoff_delay(attempt, backoff)
            log.info("%s: %s; retrying in %.1f s", url, e.reason, delay)
            time.sleep(delay)
            attempt += 1
    observed = sha256_file(part)
    size = part.stat().st_size
    if sha256 is not None and observed != sha256:
        bad = dest.with_name(dest.name + ".bad")
        os.replace(part, bad)
        raise UserError(f"{url}: sha256 mismatch: expected {sha256} ({pin_origin}), downloaded {observed} "
                        f"(kept as {bad}; if the new file is right, update the pin)")
    os.replace(part, dest)
    return Fetched(dest, size, observed, first_offset)


def verified_download(url: str, dest: str | os.PathLike, pin: str | None, lock, **kw) -> Fetched:
    """``http_download`` verified against ``pin`` or else the lock file's entry for ``url``
    (``zar.data.urls.SourceLock``; None: pin only); the sha256 seen is recorded in the lock."""
    expected, origin = lock.expected(url, pin) if lock is not None else (pin, "pinned")
    fetched = http_download(url, dest, sha256=expected, pin_origin=origin, **kw)
    if lock is not None:
        lock.record(url, fetched.sha256, fetched.bytes)
    return fetched


def _transfer(url: str, part: Path, timeout: float) -> None:
    """One attempt: continue ``part`` where it stops; FetchError on any failure."""
    offset = part.stat().st_size if part.exists() else 0
    req = urllib.request.Request(url, headers={"User-Agent": f"zar/{__version__}"})
    if offset and url.startswith("http"):
        req.add_header("Range", f"bytes={offset}-")
    try:
        resp = urllib.request.urlopen(req, timeout=timeout)
    except urllib.error.HTTPError as e:
        if e.code == 416 and offset:  # our .part is longer than the file: start again
            part.unlink()
            raise FetchError("server refused the resume range; starting over") from None
        raise FetchError(f"HTTP {e.code} {e.reason}", permanent=e.code in _PERMANENT_HTTP) from None
    except (urllib.error.URLError, OSError, http.client.HTTPException) as e:
        raise FetchError(f"cannot connect: {getattr(e, 'reason', e)}") from None
    with resp:
        status = getattr(resp, "status", 200)
        if status == 206:
            crange = resp.headers.get("Content-Range", "")
            if not crange.startswith(f"bytes {offset}-"):
                part.unlink()
                raise FetchError(f"unexpected Content-Range {crange!r}; starting over")
            mode, expected_total = "ab", _total_from_range(crange)
        else:  # a full body: whatever we had is replaced
            mode, offset = "wb", 0
            length = resp.headers.get("Content-Length")
            expected_total = int(length) if length and length.isdigit() else None
        try:
            with open(part, mode) as f:
                while True:
                    chunk = resp.read(_CHUNK)
                    if not chunk:
                        break
                    f.write(chunk)
                f.flush()
                os.fsync(f.fileno())
        except (OSError, ValueError, http.client.HTTPException) as e:
            if is_disk_full(e):  # retrying cannot help
                raise UserError(f"no space left on device while writing {part}") from None
            raise FetchError(f"transfer broke off: {type(e).__name__}: {e}") from None
    got = part.stat().st_size
    if expected_total is not None and got != expected_total:
        raise FetchError(f"transfer broke off at {got} of {expected_total} bytes")


def _total_from_range(crange: str) -> int | None:
    total = crange.rsplit("/", 1)[-1]
    return int(total) if total.isdigit() else None


class RateLimiter:
    """At most ``per_minute`` starts per minute over all threads (0: no limit), evenly spaced;
    ``pause(s)`` holds every thread back (e.g. after the server says 'too many requests')."""

    def __init__(self, per_minute: float):
        self.interval = 60.0 / per_minute if per_minute and per_minute > 0 else 0.0
        self._next = 0.0
        self._lock = threading.Lock()

    def wait(self) -> None:
        with self._lock:
            now = time.monotonic()
            start = max(now, self._next)
            self._next = start + self.interval
        if start > now:
            time.sleep(start - now)

    def pause(self, seconds: float) -> None:
        with self._lock:
            self._next = max(self._next, time.monotonic() + seconds)
