"""Safe extraction of zip, tar(.gz/.bz2/.xz) and rar archives.

Every member name is checked before anything is written: absolute names, ``..`` components,
links (symbolic or hard), devices, fifos, names with control characters, and names that are
both a file and a folder (``a`` then ``a/b``) or appear twice make the whole archive be
rejected (``UnsafeArchiveError``), so nothing can land outside the target directory.

Each archive is listed by the same parser that extracts it. zip and tar members are listed
and written by Python's ``zipfile``/``tarfile``, one by one. RAR archives are listed with
``bsdtar -tvf`` and extracted in one pass by ``bsdtar -x`` (libarchive; apt
``libarchive-tools``, conda ``libarchive``): a file that starts with the RAR signature but
that libarchive reads as another format (a RAR/tar polyglot) is refused, since a RAR-only
listing would not show what bsdtar writes. After any extraction the tree is checked again
(only regular files and folders, every path inside the target, exactly the listed files).
On ANY failure the target folder is removed, so nothing half-extracted remains.
"""
from __future__ import annotations

import os
import shutil
import stat
import subprocess
import tarfile
import zipfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from zar.data.media import last_line, require_tool, run_tool
from zar.core.errors import UserError
from zar.core.files import is_disk_full

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
    """Every member, as the parser that will extract the archive sees it."""
    fmt = archive_format(path)
    if fmt == "zip":
        with zipfile.ZipFile(path) as zf:
            return [_zip_member(i) for i in zf.infolist()]
    if fmt == "tar":
        with tarfile.open(path) as tf:
            return [_tar_member(m) for m in tf.getmembers()]
    return _bsdtar_members(path, expect="RAR")


_BSDTAR_KINDS = {"-": "file", "d": "dir", "l": "link", "h": "link"}


def _bsdtar(args: list[str], path) -> str:
    env = {**os.environ, "LC_ALL": "C.UTF-8"}  # names printed as UTF-8, non-printables escaped
    res = subprocess.run([require_tool("bsdtar"), *args], stdin=subprocess.DEVNULL, capture_output=True,
                         text=True, errors="replace", env=env)
    if res.returncode != 0:
        raise UserError(f"{path}: bsdtar cannot read it ({last_line(res.stderr)})")
    return res.stdout


def _bsdtar_members(path: str | os.PathLike, expect: str) -> list[Member]:
    """Members from ``bsdtar -tf`` (names, one per line) and ``bsdtar -tvvf`` (kinds, sizes,
    and the format libarchive recognised, which must be ``expect``)."""
    target = str(Path(path).resolve())
    names = _bsdtar(["-t", "-f", target], path).splitlines()
    long = _bsdtar(["-t", "-vv", "-f", target], path).splitlines()
    formats = [ln for ln in long if ln.startswith("Archive Format:")]
    long = [ln for ln in long if not ln.startswith("Archive Format:")]
    found = formats[-1].split(":", 1)[1].split(",")[0].strip() if formats else "unknown"
    if expect.lower() not in found.lower():
        raise UnsafeArchiveError(f"{path}: starts like a {expect} archive, but bsdtar reads it as {found}; "
                                 "refusing a file that is two formats at once")
    if len(names) != len(long):
        raise UnsafeArchiveError(f"{path}: bsdtar's listings disagree ({len(names)} names, {len(long)} entries)")
    out = []
    for name, line in zip(names, long):
        if "\\" in name:  # bsdtar escapes backslashes and unprintable bytes: the listing is not the name
            raise UnsafeArchiveError(f"{path}: refusing member {name!r}: backslash or unprintable "
                                     "character in name")
        fields = line.split()
        size = int(fields[4]) if len(fields) > 4 and fields[4].isdigit() else 0
        out.append(Member(name, _BSDTAR_KINDS.get(line[:1], "other"), size))
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
    files: dict[str, PurePosixPath] = {}
    file_paths: dict[PurePosixPath, str] = {}
    folders: dict[PurePosixPath, str] = {}
    for m in members:
        rel = safe_name(path, m.name)
        if m.kind in ("link", "other"):
            raise UnsafeArchiveError(f"{path}: refusing member {m.name!r}: {m.kind} entries "
                                     "are not extracted (only files and directories)")
        if m.kind == "file":
            if rel in file_paths:
                raise UnsafeArchiveError(f"{path}: refusing member {m.name!r}: {rel} appears twice")
            files[m.name], file_paths[rel] = rel, m.name
        else:
            folders.setdefault(rel, m.name)
        for parent in rel.parents:
            if parent != PurePosixPath("."):
                folders.setdefault(parent, m.name)
    for rel, name in file_paths.items():
        if rel in folders:
            raise UnsafeArchiveError(f"{path}: refusing member {name!r}: {rel} is a file, but "
                                     f"{folders[rel]!r} needs it as a folder")
    return files


def extract(path: str | os.PathLike, dest: str | os.PathLike) -> list[Path]:
    """Extract every file of ``path`` under ``dest`` (created; must be empty); return the files.

    The whole archive is validated first: one unsafe member rejects it and writes nothing.
    On any failure during extraction ``dest`` is removed (emptied if it existed before).
    """
    path, dest = Path(path), Path(dest)
    fmt = archive_format(path)
    files = check_members(path, list_members(path))
    created = not dest.exists()
    dest.mkdir(parents=True, exist_ok=True)
    if not created and any(dest.iterdir()):
        raise ValueError(f"{dest}: extraction target must be empty")
    try:
        if fmt == "rar":
            _bsdtar_extract(path, dest)
        elif fmt == "zip":
            with zipfile.ZipFile(path) as zf:
                for info in zf.infolist():
                    if info.filename in files:
                        _write(dest, files[info.filename], zf.open(info))
        else:
            with tarfile.open(path) as tf:
                for m in tf:
                    if m.name in files and m.isreg():
                        _write(dest, files[m.name], tf.extractfile(m))
        return _check_tree(path, dest, files)
    except BaseException as e:
        _remove(dest, created)
        if is_disk_full(e):
            raise UserError(f"no space left on device while extracting {path} into {dest}") from None
        if isinstance(e, Exception) and not isinstance(e, UserError):  # damaged data: zipfile, tarfile, zlib...
            raise UserError(f"{path}: extraction failed ({type(e).__name__}: {e}); nothing kept") from None
        raise


def _remove(dest: Path, created: bool) -> None:
    shutil.rmtree(dest, ignore_errors=True)
    if not created:
        dest.mkdir(parents=True, exist_ok=True)


def _write(dest: Path, rel: PurePosixPath, src) -> Path:
    out = dest.joinpath(*rel.parts)
    _inside(dest, out)
    out.parent.mkdir(parents=True, exist_ok=True)
    with src, open(out, "xb") as f:  # "x": never through something already there
        shutil.copyfileobj(src, f, 1 << 20)
    return out


def _inside(root: Path, p: Path) -> None:
    real_root, real = os.path.realpath(root), os.path.realpath(p)
    if real != real_root and not real.startswith(real_root + os.sep):
        raise UnsafeArchiveError(f"{p}: would land outside {root}")


def _bsdtar_extract(path: Path, dest: Path) -> None:
    res = run_tool([require_tool("bsdtar"), "-x", "-f", str(path.resolve()), "-C", str(dest.resolve()),
                    "--no-same-owner", "--no-same-permissions", "--no-acls", "--no-xattrs", "--no-fflags"],
                   timeout=None)
    if res.returncode != 0:
        raise UserError(f"{path}: bsdtar failed ({last_line(res.stderr)})")


def _check_tree(path: Path, dest: Path, files: dict[str, PurePosixPath]) -> list[Path]:
    """The extracted tree holds exactly the listed files (plus folders), nothing else."""
    expected = {dest.joinpath(*rel.parts) for rel in files.values()}
    found = set()
    for root, dirs, names in os.walk(dest):
        for n in dirs + names:
            p = Path(root, n)
            st = os.lstat(p)
            if stat.S_ISLNK(st.st_mode):
                raise UnsafeArchiveError(f"{path}: extraction produced a link {p}")
            if not (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode)):
                raise UnsafeArchiveError(f"{path}: extraction produced {p}, neither a file nor a folder")
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
    rars) each into a folder named after it, ``depth`` levels down; inner archives are removed.
    On any failure (an inner archive's too) ``dest`` is removed."""
    dest = Path(dest)
    created = not dest.exists()
    files = extract(path, dest)
    out = []
    try:
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
    except BaseException:
        _remove(dest, created)
        raise
    return out
