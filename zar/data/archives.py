"""Safe extraction of zip, tar(.gz/.bz2/.xz) and rar archives.

Every member name is checked before anything is written: absolute names, ``..`` components,
links (symbolic or hard), devices and names with control characters make the whole archive
be rejected (``UnsafeArchiveError``), so nothing can land outside the target directory.
zip and tar members are written by this module one by one. RAR members are listed with
``rarfile`` (pure Python, no tool needed to list) and extracted in one pass by ``bsdtar``
(libarchive; apt ``libarchive-tools``, conda ``libarchive``), which refuses ``..`` and
absolute names itself; afterwards the extracted tree is checked again (no links, every path
inside the target, exactly the listed files).
"""
from __future__ import annotations

import os
import shutil
import stat
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from zar.data.media import last_line, require_tool, run_tool
from zar.utils import UserError

ARCHIVE_SUFFIXES = (".rar", ".zip", ".tar", ".tgz", ".tar.gz", ".tar.bz2", ".tar.xz")


class UnsafeArchiveError(UserError):
    """The archive holds a member that could write outside the target or is not a plain file."""


@dataclass(frozen=True)
class Member:
    name: str  # as stored in the archive
    kind: str  # "file", "dir", "link", "other"
    size: int


def archive_format(path: str | os.PathLike) -> str:
    """'rar', 'zip' or 'tar', from the content (not the name)."""
    with open(path, "rb") as f:
        head = f.read(8)
    if head.startswith(b"Rar!\x1a\x07"):
        return "rar"
    if head.startswith(b"PK\x03\x04") or head.startswith(b"PK\x05\x06"):
        return "zip"
    if tarfile.is_tarfile(path):
        return "tar"
    raise UserError(f"{path}: not a rar, zip or tar archive (starts with {head!r})")


def is_archive_name(name: str) -> bool:
    return name.lower().endswith(ARCHIVE_SUFFIXES)


def safe_name(archive: str | os.PathLike, name: str) -> PurePosixPath:
    """The member's relative path, or UnsafeArchiveError naming the archive and the member."""
    norm = name.replace("\\", "/")
    why = None
    if not norm.strip("/"):
        why = "empty name"
    elif norm.startswith("/") or (len(norm) > 1 and norm[1] == ":"):
        why = "absolute path"
    elif any(ord(c) < 32 or ord(c) == 127 for c in norm):
        why = "control character in name"
    else:
        parts = [p for p in norm.split("/") if p not in ("", ".")]
        if ".." in parts:
            why = "'..' in path (would land outside the target)"
    if why:
        raise UnsafeArchiveError(f"{archive}: refusing member {name!r}: {why}")
    return PurePosixPath(*[p for p in norm.split("/") if p not in ("", ".")])


def list_members(path: str | os.PathLike) -> list[Member]:
    fmt = archive_format(path)
    if fmt == "zip":
        with zipfile.ZipFile(path) as zf:
            return [_zip_member(i) for i in zf.infolist()]
    if fmt == "tar":
        with tarfile.open(path) as tf:
            return [_tar_member(m) for m in tf.getmembers()]
    import rarfile

    with rarfile.RarFile(path) as rf:
        if rf.needs_password():
            raise UserError(f"{path}: encrypted RAR archives are not supported")
        out = []
        for i in rf.infolist():
            if i.is_symlink() or i.file_redir:
                kind = "link"
            else:
                kind = "dir" if i.is_dir() else ("file" if i.is_file() else "other")
            out.append(Member(i.filename, kind, int(i.file_size or 0)))
        return out


def _zip_member(i: zipfile.ZipInfo) -> Member:
    mode = (i.external_attr >> 16) & 0xFFFF
    if mode and stat.S_ISLNK(mode):
        return Member(i.filename, "link", i.file_size)
    return Member(i.filename, "dir" if i.is_dir() else "file", i.file_size)


def _tar_member(m: tarfile.TarInfo) -> Member:
    kind = "file" if m.isreg() else "dir" if m.isdir() else "link" if (m.issym() or m.islnk()) else "other"
    return Member(m.name, kind, m.size)


def check_members(path: str | os.PathLike, members: list[Member]) -> dict[str, PurePosixPath]:
    """Validate every member; return file member name -> relative path."""
    files = {}
    for m in members:
        rel = safe_name(path, m.name)
        if m.kind in ("link", "other"):
            raise UnsafeArchiveError(f"{path}: refusing member {m.name!r}: {m.kind} entries "
                                     "are not extracted (only files and directories)")
        if m.kind == "file":
            files[m.name] = rel
    return files


def extract(path: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract every file of ``path`` under ``dest`` (created; must be empty); return the files.

    The whole archive is validated first: one unsafe member rejects it and writes nothing.
    """
    path, dest = Path(path), Path(dest)
    files = check_members(path, list_members(path))
    dest.mkdir(parents=True, exist_ok=True)
    if any(dest.iterdir()):
        raise ValueError(f"{dest}: extraction target must be empty")
    fmt = archive_format(path)
    if fmt == "rar":
        return _extract_rar(path, dest, files)
    written = []
    if fmt == "zip":
        with zipfile.ZipFile(path) as zf:
            for info in zf.infolist():
                if info.filename in files:
                    written.append(_write(dest, files[info.filename], zf.open(info)))
    else:
        with tarfile.open(path) as tf:
            for m in tf:
                if m.name in files and m.isreg():
                    written.append(_write(dest, files[m.name], tf.extractfile(m)))
    return written


def _write(dest: Path, rel: PurePosixPath, src) -> Path:
    out = dest.joinpath(*rel.parts)
    _inside(dest, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with src, open(out, "wb") as f:
        shutil.copyfileobj(src, f, 1 << 20)
    return out


def _inside(root: Path, p: Path) -> None:
    real_root, real = os.path.realpath(root), os.path.realpath(p)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UnsafeArchiveError(f"{p}: would land outside {root}")


def _extract_rar(path: Path, dest: Path, files: dict[str, PurePosixPath]) -> list[Path]:
    bsdtar = require_tool("bsdtar")
    res = run_tool([bsdtar, "-x", "-f", str(path.resolve()), "-C", str(dest.resolve()),
                    "--no-same-owner", "--no-same-permissions"], timeout=None)
    if res.returncode != 0:
        raise UserError(f"{path}: bsdtar failed ({last_line(res.stderr)})")
    expected = {dest.joinpath(*rel.parts) for rel in files.values()}
    found = set()
    for root, dirs, names in os.walk(dest):
        for n in dirs + names:
            p = Path(root, n)
            if p.is_symlink():
                raise UnsafeArchiveError(f"{path}: extraction produced a link {p}")
            _inside(dest, p)
            if n in names:
                found.add(p)
    if found != expected:
        extra = sorted(map(str, found - expected))[:3]
        lost = sorted(map(str, expected - found))[:3]
        raise UserError(f"{path}: extracted files differ from the listing (unexpected {extra}, "
                        f"absent {lost})")
    return sorted(found)


def extract_nested(path: str | os.PathLike, dest: str | os.PathLike, depth: int = 2) -> list[Path]:
    """Extract ``path`` into ``dest``, then archives found inside (e.g. HMDB51's per-class
    rars) each into a folder named after it, ``depth`` levels down; inner archives are removed."""
    files = extract(path, dest)
    out = []
    for f in files:
        if depth > 0 and is_archive_name(f.name):
            stem = f.name
            for suf in ARCHIVE_SUFFIXES:
                if stem.lower().endswith(suf):
                    stem = stem[: -len(suf)]
                    break
            sub = f.with_name(stem or "_")
            if sub.exists():
                sub = f.with_name(f"{stem}.extracted")
            out += extract_nested(f, sub, depth - 1)
            f.unlink()
        else:
            out.append(f)
    return out
