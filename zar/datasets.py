"""The datasets zar knows: one entry each, read by everything that names a dataset.

Download and decode (which datasets and sources there are), the split files (how a class
name becomes the text the text encoder reads, where a video's file lives), the audit (how
many classes and videos each split file must hold), the demo (which synthetic role stands in
for which dataset) and the workflow's config check all read :data:`DATASETS`. Adding a
dataset is one entry here plus its source files (a split builder in ``zar/splits`` and, for
a new kind of download, a source in ``zar/data``).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

# "ApplyEyeMakeup" -> "Apply Eye Makeup": a space before an upper-case letter that follows a
# lower-case letter or digit, and before the last capital of a run of capitals followed by a
# lower-case letter ("ABCDef" -> "ABC Def"; UCF101 has no such run today).
_CAMEL = re.compile(r"(?<=[a-z0-9])(?=[A-Z])|(?<=[A-Z])(?=[A-Z][a-z])")
_SPLITS = (1, 2, 3)
_SHOTS = 16


@dataclass(frozen=True)
class Dataset:
    key: str
    title: str
    sources: tuple[str, ...]  # where `zar download` gets its videos; the first is the default
    naming: str  # how class names are written: "words" (Kinetics), "snake" (HMDB51), "camel" (UCF101)
    layout: str  # "kinetics": <split>/<youtube id>_<start>_<end>.mp4; "class_folders": <class>/<video id>.avi
    roles: tuple[str, ...]  # of "finetune", "zeroshot", "b2n": what the paper uses it for
    expected: dict[str, int] = field(default_factory=dict)  # split file -> classes or videos it holds (audit)
    test_per_class: int | None = None  # test videos per class in every zero-shot split, where fixed

    def class_text(self, name: str) -> str:
        """The text the text encoder reads for a class name: underscores become spaces, runs of
        white space one space; CamelCase names are split into lower-case words ("ApplyEyeMakeup"
        -> "apply eye makeup", "YoYo" -> "yo yo"); other names keep their case."""
        text = name.replace("_", " ")
        if self.naming == "camel":
            text = _CAMEL.sub(" ", text).lower()
        return " ".join(text.split())

    def class_name(self, words: list[str]) -> str:
        """A class name in this dataset's convention, from its words (the demo's classes)."""
        if self.naming == "snake":
            return "_".join(words)
        if self.naming == "camel":
            return "".join(w.capitalize() for w in words)
        return " ".join(words)

    @property
    def kinetics(self) -> bool:
        return self.layout == "kinetics"


def _per_split(path: str, counts) -> dict[str, int]:
    counts = counts if isinstance(counts, (tuple, list)) else [counts] * len(_SPLITS)
    return {path.format(k=k): n for k, n in zip(_SPLITS, counts)}


def _b2n(dataset: str, base: int, novel: int, base_test: int, novel_test: int) -> dict[str, int]:
    return {f"{dataset}/b2n/base/classes.csv": base, f"{dataset}/b2n/novel/classes.csv": novel,
            f"{dataset}/b2n/base/test.csv": base_test, f"{dataset}/b2n/novel/test.csv": novel_test,
            **_per_split(f"{dataset}/b2n/base/train_s{{k}}.csv", base * _SHOTS)}


DATASETS: dict[str, Dataset] = {d.key: d for d in (
    Dataset("k400", "K400", ("cvdf", "youtube"), "words", "kinetics", ("finetune", "b2n"),
            {"k400/classes.csv": 400, **_b2n("k400", 200, 200, 9944, 9933)}),
    Dataset("k600", "K600", ("cvdf", "youtube"), "words", "kinetics", ("zeroshot",),
            {"k600/classes.csv": 600, "k600/zeroshot/novel220.csv": 220,
             **_per_split("k600/zeroshot/split{k}/classes.csv", 160),
             **_per_split("k600/zeroshot/split{k}/val_classes.csv", 60),
             **_per_split("k600/zeroshot/split{k}/test.csv", (14131, 14078, 14167))}),
    Dataset("ucf101", "UCF101", ("official",), "camel", "class_folders", ("zeroshot", "b2n"),
            {"ucf101/classes.csv": 101, **_per_split("ucf101/zeroshot/split{k}/classes.csv", 101),
             **_per_split("ucf101/zeroshot/split{k}/test.csv", (3783, 3734, 3696)),
             **_b2n("ucf101", 51, 50, 2088, 1695)}),
    Dataset("hmdb51", "HMDB-51", ("official",), "snake", "class_folders", ("zeroshot", "b2n"),
            {"hmdb51/classes.csv": 51, **_per_split("hmdb51/zeroshot/split{k}/classes.csv", 51),
             **_per_split("hmdb51/zeroshot/split{k}/test.csv", 1530),
             **_b2n("hmdb51", 26, 25, 780, 750)}, test_per_class=30),
)}

SOURCES = ("cvdf", "youtube", "official", "synthetic")  # every kind of download; "synthetic" = the demo


def get(key: str) -> Dataset:
    from zar.utils import UserError

    try:
        return DATASETS[key]
    except KeyError:
        raise UserError(f"unknown dataset {key!r} (known: {', '.join(DATASETS)})") from None


def with_role(role: str) -> tuple[str, ...]:
    return tuple(k for k, d in DATASETS.items() if role in d.roles)


def expected_counts() -> dict[str, int]:
    """Every split file the audit checks, with its number of classes or videos."""
    return {path: n for d in DATASETS.values() for path, n in d.expected.items()}
