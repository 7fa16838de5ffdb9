"""The split file formats: class lists, video lists, the class-name text rule, the manifest.

Class list CSV (``classes.csv``): header ``class_index,class_name,text``; ``class_index`` is
0..K-1 in file order, ``class_name`` the raw official name, ``text`` what the text encoder reads
for ``{c}`` in "a video of a {c}.".

Video list CSV (``test.csv``, ``train_s1.csv``, ...): header ``video_id,path,class_name,
class_index`` and optional extra columns; ``class_index`` indexes the ``classes.csv`` beside the
list. Rows sorted by (class_index, video_id). UTF-8, ``\\n`` line ends, no quoting unless a
field needs it (none does today).
"""
from __future__ import annotations

import csv
import hashlib
import io
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Sequence

from zar.utils import UserError

CLASS_HEADER = ("class_index", "class_name", "text")
VIDEO_HEADER = ("video_id", "path", "class_name", "class_index")
MANIFEST = "MANIFEST.sha256"


def class_text(dataset: str, class_name: str) -> str:
    """The text the text encoder reads for a class of ``dataset`` (its rule: zar.datasets)."""
    from zar.datasets import get

    return get(dataset).class_text(class_name)


@dataclass(frozen=True)
class VideoRow:
    video_id: str
    path: str
    class_name: str
    class_index: int
    extra: tuple[str, ...] = ()

    def sort_key(self) -> tuple[int, str]:
        return (self.class_index, self.video_id)


def csv_text(header: Sequence[str], rows: Iterable[Sequence[object]]) -> str:
    buf = io.StringIO()
    w = csv.writer(buf, lineterminator="\n")
    w.writerow(header)
    for r in rows:
        w.writerow(r)
    return buf.getvalue()


def classes_csv(dataset: str, names: Sequence[str]) -> str:
    """A class list file for ``names`` in the given order."""
    if len(set(names)) != len(names):
        raise ValueError("duplicate class names")
    return csv_text(CLASS_HEADER, ((i, n, class_text(dataset, n)) for i, n in enumerate(names)))


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


def parse_csv(text: str, where: str) -> tuple[list[str], list[list[str]]]:
    """Header and rows of a split CSV; ``where`` names the file in error messages."""
    if "\r" in text:
        raise UserError(f"{where}: carriage return found (line ends must be \\n)")
    if text and not text.endswith("\n"):
        raise UserError(f"{where}: last line does not end with \\n")
    rows = list(csv.reader(io.StringIO(text)))
    if not rows:
        raise UserError(f"{where}: empty file")
    return rows[0], rows[1:]


def read_classes(path: str | Path) -> list[str]:
    """Class names of a ``classes.csv`` in class_index order (checks the header and indices)."""
    path = Path(path)
    header, rows = parse_csv(_read_text(path), str(path))
    if tuple(header) != CLASS_HEADER:
        raise UserError(f"{path}: header {','.join(header)!r}, expected {','.join(CLASS_HEADER)!r}")
    names = []
    for i, r in enumerate(rows):
        if len(r) != 3 or r[0] != str(i):
            raise UserError(f"{path}: line {i + 2}: expected '{i},<name>,<text>'")
        names.append(r[1])
    return names


def read_videos(path: str | Path) -> tuple[list[str], list[VideoRow]]:
    """Extra column names and rows of a video list file."""
    path = Path(path)
    header, rows = parse_csv(_read_text(path), str(path))
    if tuple(header[:4]) != VIDEO_HEADER:
        raise UserError(f"{path}: header must start with {','.join(VIDEO_HEADER)}")
    out = []
    for n, r in enumerate(rows, start=2):
        if len(r) != len(header) or not r[3].isdigit():
            raise UserError(f"{path}: line {n}: malformed row {','.join(r)!r}")
        out.append(VideoRow(r[0], r[1], r[2], int(r[3]), tuple(r[4:])))
    return header[4:], out


def _read_text(path: Path) -> str:
    try:
        return path.read_bytes().decode("utf-8")
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except UnicodeDecodeError as e:
        raise UserError(f"{path}: not UTF-8 ({e})") from None


def manifest_text(files: dict[str, bytes]) -> str:
    """sha256sum-format manifest of ``files`` (relative path -> content), sorted by path."""
    return "".join(
        f"{hashlib.sha256(files[p]).hexdigest()}  {p}\n" for p in sorted(files) if p != MANIFEST
    )
