"""The published files the split builder reads, and where to find them.

Every source is pinned by repository, commit, path and sha256 (``pins.py``). A mirror folder
holds them as ``<owner>__<name>/<path>``; the default is the repository's own cache,
``resources/reference`` (relative to the current directory, i.e. the repository root), where
missing files are downloaded from ``https://raw.githubusercontent.com/<repo>/<commit>/<path>``
(same layout), each checked against its pinned sha256 before it is kept. Pass another mirror
(e.g. an offline copy) with ``--sources``.
"""
from __future__ import annotations

import hashlib
import logging
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from zar.splits.pins import PINS, REPOS
from zar.core.errors import UserError
from zar.core.files import atomic_path, sha256_file
from zar.core.progress import progress

log = logging.getLogger(__name__)

RAW_BASE_URL = "https://raw.githubusercontent.com"
DEFAULT_SOURCES = "resources/reference"
DEFAULT_FETCH_DIR = DEFAULT_SOURCES


class SourcesUnavailable(UserError):
    """The pinned source files are neither in the mirror nor downloadable (e.g. no network)."""


@dataclass(frozen=True)
class Source:
    key: str  # short repository key, see pins.REPOS
    repo: str  # GitHub owner/name
    commit: str
    path: str  # path inside the repository
    sha256: str
    size: int

    @property
    def local(self) -> str:
        """Path of the file inside a mirror directory."""
        return f"{self.repo.replace('/', '__')}/{self.path}"

    def url(self, base_url: str = RAW_BASE_URL) -> str:
        return f"{base_url.rstrip('/')}/{self.repo}/{self.commit}/{self.path}"


def _parse_pins(text: str) -> tuple[Source, ...]:
    out = []
    for line in text.strip().splitlines():
        key, sha, size, path = line.split(None, 3)
        repo, commit = REPOS[key]
        out.append(Source(key, repo, commit, path, sha, int(size)))
    return tuple(out)


SOURCES: tuple[Source, ...] = _parse_pins(PINS)
_BY_KEY = {(s.key, s.path): s for s in SOURCES}


def source(key: str, path: str) -> Source:
    try:
        return _BY_KEY[(key, path)]
    except KeyError:
        raise KeyError(f"no pinned source {key}:{path}") from None


class Sources:
    """Resolved, verified source files."""

    def __init__(self, files: dict[Source, Path]):
        self.files = dict(files)

    def path(self, key: str, path: str) -> Path:
        return self.files[source(key, path)]

    def text(self, key: str, path: str) -> str:
        p = self.path(key, path)
        try:
            return p.read_bytes().decode("utf-8")
        except UnicodeDecodeError as e:
            raise UserError(f"{p}: not UTF-8 ({e})") from None

    def lines(self, key: str, path: str) -> list[str]:
        """Non-empty lines, stripped of surrounding white space (CRLF files included)."""
        return [ln.strip() for ln in self.text(key, path).splitlines() if ln.strip()]


def fetch_one(src: Source, dest: Path, base_url: str = RAW_BASE_URL, timeout: float = 60.0) -> None:
    """Download ``src`` to ``dest``; keep it only if its sha256 is the pinned one."""
    url = src.url(base_url)
    h = hashlib.sha256()
    with atomic_path(dest) as tmp:
        try:
            with urllib.request.urlopen(url, timeout=timeout) as resp, open(tmp, "wb") as f:
                while chunk := resp.read(1 << 20):
                    h.update(chunk)
                    f.write(chunk)
        except (urllib.error.URLError, OSError) as e:
            raise SourcesUnavailable(f"{url}: download failed ({e})") from None
        if h.hexdigest() != src.sha256:
            raise UserError(
                f"{url}: sha256 {h.hexdigest()} does not match the pinned {src.sha256}; not kept"
            )


def _fetch_all(missing: list[Source], fetch: Path, base_url: str, found: dict[Source, Path]) -> None:
    """Fetch ``missing`` into ``fetch``; a failure (no network) leaves no folder it created empty
    behind, so a partial cache is never mistaken for a mirror."""
    made: set[Path] = set()  # folders that do not exist yet, up to the first that does
    for s in missing:
        d = (fetch / s.local).parent
        while not d.exists() and d != d.parent:
            made.add(d)
            d = d.parent
    try:
        for s in progress(missing, total=len(missing), desc="fetching sources", every=10):
            fetch_one(s, fetch / s.local, base_url)
            found[s] = fetch / s.local
    except BaseException:
        for d in sorted(made, key=lambda d: len(d.parts), reverse=True):  # a folder with a fetched file stays
            try:
                d.rmdir()
            except OSError:
                pass
        raise


def resolve(
    sources_dir: str | Path,
    fetch_dir: str | Path | None = None,
    base_url: str = RAW_BASE_URL,
) -> Sources:
    """Find every pinned source in ``sources_dir`` (then ``fetch_dir``), fetching what is missing
    into ``fetch_dir`` when one is given. Every file's sha256 is checked.

    Raises ``UserError`` listing the missing and mismatching files.
    """
    sources_dir = Path(sources_dir)
    fetch = Path(fetch_dir) if fetch_dir is not None else None
    if fetch is None and not sources_dir.is_dir():
        raise UserError(f"{sources_dir}: no such sources directory (give the mirror with --sources "
                        f"DIR, or pass --fetch to download the {len(SOURCES)} source files)")
    found: dict[Source, Path] = {}
    missing: list[Source] = []
    problems: list[str] = []
    for s in SOURCES:
        for base in (sources_dir, fetch):
            if base is not None and (base / s.local).is_file():
                found[s] = base / s.local
                break
        else:
            missing.append(s)
    if missing and fetch is not None:
        _fetch_all(missing, fetch, base_url, found)
        missing = []
    for s in missing:
        problems.append(f"{sources_dir / s.local}: missing (source {s.url()})")
    for s, p in found.items():
        digest = sha256_file(p)
        if digest != s.sha256:
            problems.append(
                f"{p}: sha256 {digest} does not match the pinned {s.sha256} "
                f"({s.repo}@{s.commit[:12]}:{s.path})"
            )
    if problems:
        more = f"\n  ... and {len(problems) - 20} more" if len(problems) > 20 else ""
        hint = "" if fetch is not None else "\n(pass --fetch to download missing files)"
        raise UserError(
            f"{len(problems)} source file problem(s):\n  " + "\n  ".join(problems[:20]) + more + hint
        )
    return Sources(found)
