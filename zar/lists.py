"""Reading the class lists and video lists (formats in splits/README.md)."""
from __future__ import annotations

import csv
import os
from dataclasses import dataclass
from pathlib import Path

from zar.prompt import class_text
from zar.utils import UserError


@dataclass(frozen=True)
class ClassList:
    names: tuple[str, ...]  # raw official names
    texts: tuple[str, ...]  # what the text encoder reads

    def __len__(self) -> int:
        return len(self.names)

    def index(self) -> dict[str, int]:
        return {n: i for i, n in enumerate(self.names)}


@dataclass(frozen=True)
class VideoRow:
    video_id: str
    path: str  # as resolved (root joined, suffix replaced)
    class_index: int  # -1 when unlabelled
    class_name: str


def _read_csv(path: str | os.PathLike) -> tuple[list[str], list[dict[str, str]]]:
    try:
        with open(path, newline="", encoding="utf-8") as f:
            reader = csv.DictReader(f)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except (UnicodeDecodeError, csv.Error) as e:
        raise UserError(f"{path}: not a readable CSV ({e})") from None


def read_classes(path: str | os.PathLike) -> ClassList:
    """A classes.csv (``class_index,class_name,text``) or a text file with one name per line."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        try:
            names = [ln.strip() for ln in path.read_text(encoding="utf-8").splitlines() if ln.strip()]
        except FileNotFoundError:
            raise UserError(f"{path}: file not found") from None
        texts = [class_text(n) for n in names]
    else:
        fields, rows = _read_csv(path)
        if "class_name" not in fields:
            raise UserError(f"{path}: no 'class_name' column (columns: {fields})")
        names, texts = [], []
        for i, r in enumerate(rows):
            if "class_index" in fields and r["class_index"].strip() != str(i):
                raise UserError(f"{path}: row {i + 2}: class_index {r['class_index']!r}, expected {i} (rows in index order)")
            name = r["class_name"].strip()
            names.append(name)
            texts.append((r.get("text") or "").strip() or class_text(name))
    if not names:
        raise UserError(f"{path}: no classes")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"{path}: duplicate class names {dup[:5]}")
    return ClassList(tuple(names), tuple(texts))


def read_videos(path: str | os.PathLike, classes: ClassList | None = None, root: str | os.PathLike | None = None,
                ext: str | None = None) -> list[VideoRow]:
    """A video list CSV: ``path`` plus a label (``class_index``, ``class_name`` or ``label``).

    With ``classes``, every row needs a label in that class list (a blank or unknown label is
    an error naming the line); without, labels are not read (``class_index`` -1). ``root`` is
    joined to relative paths; ``ext`` (e.g. ``.mp4``) replaces the file suffix, for the
    normalised copies of the videos. ``video_id`` defaults to the file stem. A list without
    any video is an error.
    """
    fields, rows = _read_csv(path)
    if "path" not in fields:
        raise UserError(f"{path}: no 'path' column (columns: {fields})")
    index = classes.index() if classes else {}
    out: list[VideoRow] = []
    seen: dict[str, int] = {}
    for line, r in enumerate(rows, start=2):
        rel = (r.get("path") or "").strip()
        if not rel:
            raise UserError(f"{path}: line {line}: empty path")
        vid = (r.get("video_id") or "").strip() or Path(rel).stem
        if vid in seen:
            raise UserError(f"{path}: line {line}: video_id {vid!r} repeats line {seen[vid]}")
        seen[vid] = line
        ci, cname = _label(path, line, r, classes, index) if classes is not None else (-1, "")
        p = Path(rel)
        if ext:
            p = p.with_suffix(ext if ext.startswith(".") else "." + ext)
        if root is not None and not p.is_absolute():
            p = Path(root) / p
        out.append(VideoRow(vid, str(p), ci, cname))
    if not out:
        raise UserError(f"{path}: no videos listed (only a header)")
    return out


def _label(path, line: int, r: dict[str, str], classes: ClassList | None, index: dict[str, int]) -> tuple[int, str]:
    raw_idx = (r.get("class_index") or "").strip()
    raw_name = (r.get("class_name") or "").strip()
    raw_label = (r.get("label") or "").strip()
    if not raw_idx and not raw_name and raw_label:
        if raw_label.lstrip("-").isdigit():
            raw_idx = raw_label
        else:
            raw_name = raw_label
    if raw_name and classes is not None:
        if raw_name not in index:
            raise UserError(f"{path}: line {line}: class {raw_name!r} is not in the class list")
        ci = index[raw_name]
        if raw_idx and int(raw_idx) != ci:
            raise UserError(f"{path}: line {line}: class_index {raw_idx} disagrees with class {raw_name!r} (index {ci})")
        return ci, raw_name
    if raw_idx:
        try:
            ci = int(raw_idx)
        except ValueError:
            raise UserError(f"{path}: line {line}: class_index {raw_idx!r} is not an integer") from None
        if classes is not None and not 0 <= ci < len(classes):
            raise UserError(f"{path}: line {line}: class_index {ci} outside 0..{len(classes) - 1}")
        return ci, (classes.names[ci] if classes is not None else raw_name)
    raise UserError(f"{path}: line {line}: no label (give class_name, class_index or label)")
