"""Small pieces shared by the split builders: the result type and source-file parsing."""
from __future__ import annotations

import csv
import io
import re
from dataclasses import dataclass, field

from zar.splits.published import Sources, source
from zar.core.errors import UserError

_KINETICS_STEM = re.compile(r"^[A-Za-z0-9_-]{11}_\d{6}_\d{6}$")


@dataclass
class Part:
    """What one builder produced: files (path relative to splits/ -> text) and findings
    about the sources (markdown bullet lines for the README)."""

    files: dict[str, str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, other: "Part") -> None:
        clash = set(self.files) & set(other.files)
        if clash:
            raise ValueError(f"two builders write {sorted(clash)}")
        self.files.update(other.files)
        self.notes.extend(other.notes)


def where(key: str, path: str) -> str:
    """How a source file is named in messages: its mirror path."""
    return source(key, path).local


def fail(key: str, path: str, message: str) -> UserError:
    return UserError(f"{where(key, path)}: {message}")


def kinetics_stem(youtube_id: str, start: str | int, end: str | int) -> str:
    """Official Kinetics clip name: ``<youtube_id>_<start:06d>_<end:06d>``."""
    return f"{youtube_id}_{int(start):06d}_{int(end):06d}"


def is_kinetics_stem(stem: str) -> bool:
    return bool(_KINETICS_STEM.match(stem))


def read_dict_csv(src: Sources, key: str, path: str, columns: tuple[str, ...]) -> list[dict[str, str]]:
    rows = list(csv.DictReader(io.StringIO(src.text(key, path))))
    if not rows or any(c not in rows[0] for c in columns):
        raise fail(key, path, f"expected columns {', '.join(columns)}")
    return rows


def read_id_names(src: Sources, key: str, path: str) -> list[str]:
    """A ViFi-CLIP label file ``id,name`` whose ids must be 0..K-1 in order."""
    rows = read_dict_csv(src, key, path, ("id", "name"))
    for i, r in enumerate(rows):
        if r["id"].strip() != str(i):
            raise fail(key, path, f"line {i + 2}: id {r['id']!r}, expected {i}")
    return [r["name"].strip() for r in rows]


def read_label_list(src: Sources, key: str, path: str) -> list[tuple[str, int]]:
    """A ViFi-CLIP video list: ``<video> <label>`` per line."""
    out = []
    for n, line in enumerate(src.lines(key, path), start=1):
        parts = line.split()
        if len(parts) != 2 or not parts[1].isdigit():
            raise fail(key, path, f"line {n}: expected '<video> <label>', got {line!r}")
        out.append((parts[0], int(parts[1])))
    return out


def stem(filename: str) -> str:
    """File name without directory and extension."""
    name = filename.rsplit("/", 1)[-1]
    return name.rsplit(".", 1)[0] if "." in name else name
