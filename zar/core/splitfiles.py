"""The split file formats, in one place: record types, headers, the strict reader, the writer,
the class-name text rule and where each split file lives.

Class list CSV (``classes.csv``): header ``class_index,class_name,text``; ``class_index`` is
0..K-1 in file order, ``class_name`` the raw official name, ``text`` what the text encoder reads
for ``{c}`` in "a video of a {c}.". A plain text file with one class name per line is read too
(command-line input; the text then follows the generic rule).

Video list CSV (``test.csv``, ``train_s1.csv``, ...): header ``video_id,path,class_name,
class_index`` and optional extra columns; ``class_index`` indexes the ``classes.csv`` beside the
list. Rows sorted by (class_index, video_id). UTF-8, ``\\n`` line ends, no quoting unless a
field needs it (none does today). Lists given on the command line may carry fewer columns:
``path`` is required, ``video_id`` defaults to the file stem, the label may be ``class_name``,
``class_index`` or ``label``.
"""
from __future__ import annotations

import csv
import hashlib
import io
import os
import re
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from zar.core.errors import UserError

CLASS_HEADER = ("class_index", "class_name", "text")
VIDEO_HEADER = ("video_id", "path", "class_name", "class_index")
MANIFEST = "MANIFEST.sha256"
# "ApplyEyeMakeup" -> "Apply Eye Makeup": a space before an upper-case letter that follows a
# lower-case letter or digit, and before the last capital of a run of capitals followed by a
# lower-case letter ("ABCDef" -> "ABC Def"; UCF101 has no such run today).
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")


# ----------------------------------------------------------------------------- class names
def class_text(class_name: str, naming: str | None = None) -> str:
    """The text the text encoder reads for a class: underscores become spaces, runs of white
    space one space; names written in CamelCase (``naming="camel"``, a dataset's convention in
    zar.core.datasets) are split into lower-case words ("ApplyEyeMakeup" -> "apply eye
    makeup", "YoYo" -> "yo yo"); other names keep their case (``naming`` None: the generic
    rule, for class lists given on the command line)."""
    text = class_name.replace("_", " ")
    if naming == "camel":
        text = _CAMEL.sub(" ", text).lower()
    return " ".join(text.split())


# ----------------------------------------------------------------------------- records
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
    """One row of a video list, fields in file order. ``class_index`` -1: not labelled (or
    labels not read); ``path`` as written, or resolved when read with a root or suffix."""
    video_id: str
    path: str
    class_name: str = ""
    class_index: int = -1
    extra: tuple[str, ...] = ()

    def sort_key(self) -> tuple[int, str]:
        return (self.class_index, self.video_id)


# ----------------------------------------------------------------------------- writing
def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def classes_csv(names: Sequence[str], naming: str | None = None) -> str:
    """A class list file for ``names`` in the given order (texts by the ``naming`` rule)."""
    if len(set(names)) != len(names):
        raise ValueError("duplicate class names")
    return csv_text(CLASS_HEADER, ((i, n, class_text(n, naming)) for i, n in enumerate(names)))


def videos_csv(rows: Iterable[VideoRow], extra_columns: Sequence[str] = ()) -> str:
    """A video list file; rows are sorted by (class_index, video_id)."""
    rows = sorted(rows, key=VideoRow.sort_key)
    for r in rows:
        if len(r.extra) != len(extra_columns):
            raise ValueError(f"{r.video_id}: {len(r.extra)} extra fields, expected {len(extra_columns)}")
    return csv_text(
        VIDEO_HEADER + tuple(extra_columns),
        ((r.video_id, r.path, r.class_name, r.class_index, *r.extra) for r in rows),
    )


# ----------------------------------------------------------------------------- reading
def parse_csv(text: str, where: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a split CSV, checked byte-wise (the audit); ``where`` names the file."""
    if "\r" in text:
        raise UserError(f"{where}: carriage return found (line ends must be \\n)")
    if text and not text.endswith("\n"):
        raise UserError(f"{where}: last line does not end with \\n")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise UserError(f"{where}: empty file")
    return rows[0], rows[1:]


def _read_text(path: Path) -> str:
    """The file as text; a UTF-8 byte-order mark (spreadsheets write one) is not part of the
    first column's name."""
    try:
        return path.read_bytes().decode("utf-8").removeprefix("\ufeff")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except IsADirectoryError:
        raise UserError(f"{path}: is a folder, not a file") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 ({e})") from None


def _read_dicts(path: Path) -> tuple[list[str], list[dict[str, str]]]:
    try:
        reader = csv.DictReader(io.StringIO(_read_text(path)))
        rows = list(reader)
        return list(reader.fieldnames or []), rows
    except csv.Error as e:
        raise UserError(f"{path}: not a readable CSV ({e})") from None


def read_classes(path: str | os.PathLike, naming: str | None = None) -> ClassList:
    """A class list: ``classes.csv`` (``class_index,class_name,text``; ``text`` optional, filled
    by the ``naming`` rule of :func:`class_text`) or a text file with one name per line. Rows out of index
    order, duplicates and an empty list are errors naming the file."""
    path = Path(path)
    if path.suffix.lower() != ".csv":
        names = [ln.strip() for ln in _read_text(path).splitlines() if ln.strip()]
        texts = [class_text(n, naming) for n in names]
    else:
        fields, rows = _read_dicts(path)
        if "class_name" not in fields:
            raise UserError(f"{path}: no 'class_name' column (columns: {fields})")
        names, texts = [], []
        for i, r in enumerate(rows):
            if "class_index" in fields and (r["class_index"] or "").strip() != str(i):
                raise UserError(f"{path}: row {i + 2}: class_index {r['class_index']!r}, expected {i} (rows in index order)")
            name = (r["class_name"] or "").strip()
            if not name:
                raise UserError(f"{path}: row {i + 2}: empty class name")
            names.append(name)
            texts.append((r.get("text") or "").strip() or class_text(name, naming))
    if not names:
        raise UserError(f"{path}: no classes")
    check_classifier(path, names, texts)
    return ClassList(tuple(names), tuple(texts))


def check_classifier(path, names: Sequence[str], texts: Sequence[str]) -> None:
    """Refuse a class list no classifier can be right on: a repeated name, or two classes whose
    prompt texts are the same once spaces and case are normalised (``run_fast`` and ``run fast``:
    identical text features, so one of them can never win)."""
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise UserError(f"{path}: duplicate class names {dup[:5]}")
    seen: dict[str, str] = {}
    for name, text in zip(names, texts):
        key = " ".join(text.lower().split())
        if not key:
            raise UserError(f"{path}: class {name!r} has an empty text")
        if key in seen:
            raise UserError(f"{path}: classes {seen[key]!r} and {name!r} have the same text {text!r}: their prompts "
                            "are identical and one of them can never be predicted; give them distinct texts")
        seen[key] = name


def check_ext(ext: str | None) -> None:
    """A file suffix (``--ext``) is letters, digits, ``_``, ``+`` or ``-`` after one optional dot:
    ``.mp4``, ``mp4``; never a path (``../x``, ``.a/b``) or a bare dot."""
    if ext is not None and not re.fullmatch(r"\.?[A-Za-z0-9][A-Za-z0-9_+-]*", ext):
        raise UserError(f"--ext {ext!r}: not a file suffix (give one like .mp4: a dot, then letters and digits)")


def resolve_path(listed: str, root: str | os.PathLike | None = None, ext: str | None = None) -> str:
    """A listed video path with its suffix replaced by ``ext`` and, when relative, under ``root``."""
    p = listed
    if ext:
        p = str(Path(p).with_suffix(ext if ext.startswith(".") else "." + ext))
    if root is not None and not Path(p).is_absolute():
        p = str(Path(root) / p)
    return p


def read_videos(path: str | os.PathLike, classes: ClassList | None = None, root: str | os.PathLike | None = None,
                ext: str | None = None) -> list[VideoRow]:
    """A video list: ``path`` plus, optionally, ``video_id`` and a label (``class_index``,
    ``class_name`` or ``label``); other columns are kept in ``extra``.

    With ``classes``, every row needs a label in that class list (a blank or unknown label is
    an error naming the line); without, the label columns are kept as written (``class_index``
    -1 where blank). ``root`` is joined to relative paths; ``ext`` (e.g. ``.mp4``) replaces the
    file suffix, for the normalised copies of the videos. ``video_id`` defaults to the file
    stem. An empty path, a repeated video id and a list without any video are errors.
    """
    path = Path(path)
    check_ext(ext)
    fields, rows = _read_dicts(path)
    if "path" not in fields:
        raise UserError(f"{path}: no 'path' column (columns: {fields})")
    extra_columns = [c for c in fields if c not in VIDEO_HEADER and c != "label"]
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
        ci, cname = _label(path, line, r, classes, index) if classes is not None else _raw_label(path, line, r)
        out.append(VideoRow(vid, resolve_path(rel, root, ext), cname, ci,
                            tuple((r.get(c) or "") for c in extra_columns)))
    if not out:
        raise UserError(f"{path}: no videos listed (only a header)")
    return out


def _raw_label(path, line: int, r: dict[str, str]) -> tuple[int, str]:
    raw_idx = (r.get("class_index") or "").strip()
    if not raw_idx:
        return -1, (r.get("class_name") or "").strip()
    try:
        return int(raw_idx), (r.get("class_name") or "").strip()
    except ValueError:
        raise UserError(f"{path}: line {line}: class_index {raw_idx!r} is not an integer") from None


def _label(path, line: int, r: dict[str, str], classes: ClassList, index: dict[str, int]) -> tuple[int, str]:
    raw_idx = (r.get("class_index") or "").strip()
    raw_name = (r.get("class_name") or "").strip()
    raw_label = (r.get("label") or "").strip()
    if not raw_idx and not raw_name and raw_label:
        numeric = raw_label.lstrip("-").isdigit()
        if raw_label in index and numeric and 0 <= int(raw_label) < len(classes) and index[raw_label] != int(raw_label):
            raise UserError(f"{path}: line {line}: label {raw_label!r} is both the name of class {index[raw_label]} "
                            f"and the index of class {classes.names[int(raw_label)]!r}; use a class_name or "
                            "class_index column")
        if raw_label in index or not numeric:
            raw_name = raw_label
        else:
            raw_idx = raw_label
    if raw_name:
        if raw_name not in index:
            raise UserError(f"{path}: line {line}: class {raw_name!r} is not in the class list")
        ci = index[raw_name]
        if raw_idx and raw_idx != str(ci):
            raise UserError(f"{path}: line {line}: class_index {raw_idx} disagrees with class {raw_name!r} (index {ci})")
        return ci, raw_name
    if raw_idx:
        try:
            ci = int(raw_idx)
        except ValueError:
            raise UserError(f"{path}: line {line}: class_index {raw_idx!r} is not an integer") from None
        if not 0 <= ci < len(classes):
            raise UserError(f"{path}: line {line}: class_index {ci} outside 0..{len(classes) - 1}")
        return ci, classes.names[ci]
    raise UserError(f"{path}: line {line}: no label (give class_name, class_index or label)")


def manifest_text(files: dict[str, bytes]) -> str:
    """sha256sum-format manifest of ``files`` (relative path -> content), sorted by path."""
    return "".join(
        f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files) if p != MANIFEST
    )
