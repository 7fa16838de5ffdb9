"""``zar splits build``: derive every split file from the pinned sources.

The build is deterministic: the same sources give the same bytes (sorted rows, no dates, no
machine names), which is what lets the audit compare a rebuild with the committed files.
"""
from __future__ import annotations

import logging
from pathlib import Path

from zar.splits import b2n, readme, ucf_hmdb
from zar.splits import kinetics_novel as kinetics
from zar.splits.common import Part, stem
from zar.core.splitfiles import MANIFEST, manifest_text
from zar.splits.published import RAW_BASE_URL, Sources, resolve
from zar.core.files import atomic_write_bytes

log = logging.getLogger(__name__)


def build_files(src: Sources) -> dict[str, bytes]:
    """Every file of ``splits/`` (relative path -> bytes), README and manifest included."""
    log.info("reading Kinetics class lists and ER-ZSAR / ViFi-CLIP K600 files")
    kin = kinetics.read_official(src)
    part = Part()
    part.add(kinetics.build(src, kin))
    log.info("reading UCF101 and HMDB51 official split lists")
    ucf = ucf_hmdb.read_ucf(src)
    hmdb = ucf_hmdb.read_hmdb(src)
    part.add(ucf_hmdb.build_zeroshot(src, ucf))
    part.add(ucf_hmdb.build_zeroshot(src, hmdb))
    log.info("reading ViFi-CLIP base-to-novel lists")
    part.add(b2n.build(src, "k400", kin.k400, b2n.k400_locator(kin), set(kin.k400_val),
                       "official K400 val list"))
    for off in (hmdb, ucf):
        part.add(b2n.build(src, off.dataset, off.classes, b2n.official_locator(off),
                           {stem(v) for v in off.test[1]}, "official split-1 test set"))
    files = {p: t.encode("utf-8") for p, t in sorted(part.files.items())}
    files["README.md"] = readme.render(part.files, part.notes).encode("utf-8")
    files[MANIFEST] = manifest_text(files).encode("utf-8")
    return files


def existing_files(root: Path) -> set[str]:
    """Files under ``root`` (relative, '/'-separated), ignoring hidden files."""
    if not root.is_dir():
        return set()
    return {
        p.relative_to(root).as_posix()
        for p in root.rglob("*")
        if p.is_file() and not any(part.startswith(".") for part in p.relative_to(root).parts)
    }


def write_tree(files: dict[str, bytes], out_dir: str | Path) -> tuple[int, list[str]]:
    """Write ``files`` under ``out_dir`` (atomically, only those whose bytes change).

    Returns the number written and the files present that the build does not produce."""
    out = Path(out_dir)
    written = 0
    for rel, data in sorted(files.items()):
        p = out / rel
        if p.is_file() and p.read_bytes() == data:
            continue
        atomic_write_bytes(p, data)
        written += 1
    return written, sorted(existing_files(out) - set(files))


def build(sources_dir: str | Path, out_dir: str | Path, fetch_dir: str | Path | None = None,
          base_url: str = RAW_BASE_URL) -> dict[str, bytes]:
    src = resolve(sources_dir, fetch_dir, base_url)
    files = build_files(src)
    written, extra = write_tree(files, out_dir)
    log.info("%s: %d files, %d written, %d unchanged", out_dir, len(files), written, len(files) - written)
    for rel in extra:
        log.warning("%s: not produced by the build (remove it, or the audit fails)", Path(out_dir) / rel)
    return files
