"""Safe extraction: archives with members that would land outside the target are rejected
whole, before anything is written; zip, tar and rar (incl. nested rars) extract correctly."""
from __future__ import annotations

import io
import tarfile
import zipfile
from pathlib import Path

import pytest

from videos_fixtures import make_rar, tar_bytes
from zar.data.archives import (UnsafeArchiveError, archive_format, extract, extract_nested,
                               list_members, safe_name)

GOOD = {"UCF-101/ClassA/v_ClassA_g01_c01.avi": b"RIFF....AVI one", "UCF-101/ClassB/x.avi": b"two",
        "top.txt": b"three"}


def zip_bytes(members: dict[str, bytes], links: dict[str, str] | None = None) -> bytes:
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
        for name, target in (links or {}).items():
            info = zipfile.ZipInfo(name)
            info.external_attr = (0o120777 << 16)
            zf.writestr(info, target)
    return buf.getvalue()


def tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in root.rglob("*") if p.is_file()}


@pytest.mark.parametrize("fmt", ["zip", "tar", "rar"])
def test_extract_good_archive(tmp_path, fmt):
    a = tmp_path / f"a.{fmt}"
    if fmt == "zip":
        a.write_bytes(zip_bytes(GOOD))
    elif fmt == "tar":
        a.write_bytes(tar_bytes(GOOD))
    else:
        make_rar(a, {"UCF-101": None, "UCF-101/ClassA": None, **GOOD})
    assert archive_format(a) == fmt
    out = tmp_path / "out"
    files = extract(a, out)
    assert tree(out) == GOOD
    assert sorted(files) == sorted(out / k for k in GOOD)


def _evil_tar(kind: str) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tf:
        ok = tarfile.TarInfo("fine.txt")
        ok.size = 2
        tf.addfile(ok, io.BytesIO(b"ok"))
        if kind == "dotdot":
            bad = tarfile.TarInfo("sub/../../evil.txt")
            bad.size = 3
            tf.addfile(bad, io.BytesIO(b"bad"))
        elif kind == "absolute":
            bad = tarfile.TarInfo("/tmp/zar-evil.txt")
            bad.size = 3
            tf.addfile(bad, io.BytesIO(b"bad"))
        elif kind == "symlink":
            link = tarfile.TarInfo("link")
            link.type, link.linkname = tarfile.SYMTYPE, "/etc"
            tf.addfile(link)
        elif kind == "hardlink":
            link = tarfile.TarInfo("hard")
            link.type, link.linkname = tarfile.LNKTYPE, "../../outside"
            tf.addfile(link)
    return buf.getvalue()


@pytest.mark.parametrize("case", ["zip-dotdot", "zip-backslash", "zip-symlink", "tar-dotdot",
                                  "tar-absolute", "tar-symlink", "tar-hardlink", "rar-dotdot",
                                  "rar-absolute"])
def test_unsafe_archive_rejected_and_nothing_written(tmp_path, case):
    fmt, kind = case.split("-")
    work = tmp_path / "work"
    work.mkdir()
    a = work / f"evil.{fmt}"
    if fmt == "zip":
        if kind == "symlink":
            a.write_bytes(zip_bytes({"fine.txt": b"ok"}, links={"link": "/etc"}))
        else:
            name = "../evil.txt" if kind == "dotdot" else "..\\evil.txt"
            a.write_bytes(zip_bytes({"fine.txt": b"ok", name: b"bad"}))
    elif fmt == "tar":
        a.write_bytes(_evil_tar(kind))
    else:
        make_rar(a, {"fine.txt": b"ok", ("../evil.txt" if kind == "dotdot" else "/tmp/zar-evil.txt"): b"bad"})
    dest = work / "out"
    with pytest.raises(UnsafeArchiveError) as e:
        extract(a, dest)
    assert str(a) in str(e.value)
    assert not dest.exists() or not any(dest.iterdir())  # not even the harmless member
    assert not (work / "evil.txt").exists() and not (tmp_path / "evil.txt").exists()
    assert not Path("/tmp/zar-evil.txt").exists()


@pytest.mark.parametrize("name,ok", [
    ("a/b/c.avi", True), ("./a/b.avi", True), ("a//b.avi", True),
    ("../a", False), ("a/../../b", False), ("/abs", False), ("C:/x", False), ("a\\..\\..\\b", False),
    ("a/\x00b", False), ("", False),
])
def test_safe_name(name, ok):
    if ok:
        assert ".." not in safe_name("x.zip", name).parts
    else:
        with pytest.raises(UnsafeArchiveError):
            safe_name("x.zip", name)


def test_nested_rar_like_hmdb(tmp_path):
    inner_a = make_rar(tmp_path / "brush_hair.rar", {"brush_hair": None,
                                                     "brush_hair/v1.avi": b"one", "brush_hair/v2.avi": b"two"})
    inner_b = make_rar(tmp_path / "cartwheel.rar", {"cartwheel/v3.avi": b"three"})
    outer = make_rar(tmp_path / "hmdb51_org.rar", {"brush_hair.rar": inner_a.read_bytes(),
                                                   "cartwheel.rar": inner_b.read_bytes()})
    out = tmp_path / "out"
    files = extract_nested(outer, out)
    assert tree(out) == {"brush_hair/brush_hair/v1.avi": b"one", "brush_hair/brush_hair/v2.avi": b"two",
                         "cartwheel/cartwheel/v3.avi": b"three"}
    assert sorted(files) == sorted(out / k for k in tree(out))


def test_nested_unsafe_inner_archive_rejected(tmp_path):
    inner = make_rar(tmp_path / "inner.rar", {"../../escape.avi": b"bad"})
    outer = make_rar(tmp_path / "outer.rar", {"inner.rar": inner.read_bytes()})
    with pytest.raises(UnsafeArchiveError):
        extract_nested(outer, tmp_path / "out")
    assert not list(tmp_path.rglob("escape.avi"))


def test_list_members_kinds(tmp_path):
    a = tmp_path / "l.tar"
    a.write_bytes(_evil_tar("symlink"))
    kinds = {m.name: m.kind for m in list_members(a)}
    assert kinds == {"fine.txt": "file", "link": "link"}
