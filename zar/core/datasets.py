"""The datasets zar knows: one entry each, read by everything that names a dataset.

Download and decode (which datasets and sources there are), the split files (how a class
name becomes the text the text encoder reads, where a video's file lives), the audit (how
many classes and videos each split file must hold), the demo (which synthetic role stands in
for which dataset) and the workflow's config check all read :data:`DATASETS`. Adding a
dataset is one entry here plus its source files (a split builder in ``zar/splits`` and, for
a new kind of download, a source in ``zar/data``).
"""
from __future__ import annotations

from dataclasses import dataclass, field

from zar.core import splitfiles

_SHOTS = 16
SPLITS = (1, 2, 3)  # the three zero-shot splits and the three shot draws


# ----------------------------------------------------------------------------- where each split file lives
# (paths relative to the splits folder)
def class_list(dataset: str) -> str:
    """A dataset's full class list, relative to the splits folder."""
    return f"{dataset}/classes.csv"


def zeroshot_list(dataset: str, k: int, name: str = "test") -> str:
    """``classes``, ``val_classes`` or ``test`` of zero-shot split ``k``."""
    return f"{dataset}/zeroshot/split{k}/{name}.csv"


def b2n_list(dataset: str, side: str, name: str = "test") -> str:
    """``classes`` or ``test`` of the ``base`` or ``novel`` side of the base-to-novel split."""
    if side not in ("base", "novel"):
        raise ValueError(f"base-to-novel side {side!r}")
    return f"{dataset}/b2n/{side}/{name}.csv"


def b2n_train_list(dataset: str, k: int) -> str:
    """The ``k``-th draw of training shots on the base classes."""
    return b2n_list(dataset, "base", f"train_s{k}")


@dataclass(frozen=True)
class Dataset:
    key: str
    title: str
    sources: tuple[str, ...]  # where `zar download` gets its videos; the first is the default
    naming: str  # how class names are written: "words" (Kinetics), "snake" (HMDB51), "camel" (UCF101);
    # the text the text encoder reads follows from it (class_text below)
    layout: str  # "kinetics": <split>/<youtube id>_<start>_<end>.mp4; "class_folders": <class>/<video id>.avi
    roles: tuple[str, ...]  # of "finetune", "zeroshot", "b2n": what the paper uses it for
    expected: dict[str, int] = field(default_factory=dict)  # split file -> classes or videos it holds (audit)
    test_per_class: int | None = None  # test videos per class in every zero-shot split, where fixed
    # the split file listing the zero-shot class pool, where the zero-shot splits draw from a pool
    # of classes novel to the fine-tuning set and the full class list also holds those (K600)
    novel_pool: str | None = None

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


def _per_split(path, counts) -> dict[str, int]:
    """``path(k)`` for each split k -> its count (one count for all, or one per split)."""
    counts = counts if isinstance(counts, (tuple, list)) else [counts] * len(SPLITS)
    return {path(k): n for k, n in zip(SPLITS, counts)}


def _zeroshot(dataset: str, classes: int, test, val_classes: int | None = None) -> dict[str, int]:
    out = {**_per_split(lambda k: zeroshot_list(dataset, k, "classes"), classes),
           **_per_split(lambda k: zeroshot_list(dataset, k, "test"), test)}
    if val_classes is not None:
        out.update(_per_split(lambda k: zeroshot_list(dataset, k, "val_classes"), val_classes))
    return out


def _b2n(dataset: str, base: int, novel: int, base_test: int, novel_test: int) -> dict[str, int]:
    return {b2n_list(dataset, "base", "classes"): base, b2n_list(dataset, "novel", "classes"): novel,
            b2n_list(dataset, "base"): base_test, b2n_list(dataset, "novel"): novel_test,
            **_per_split(lambda k: b2n_train_list(dataset, k), base * _SHOTS)}


DATASETS: dict[str, Dataset] = {d.key: d for d in (
    Dataset("k400", "K400", ("cvdf", "youtube"), "words", "kinetics", ("finetune", "b2n"),
            {class_list("k400"): 400, **_b2n("k400", 200, 200, 9944, 9933)}),
    Dataset("k600", "K600", ("cvdf", "youtube"), "words", "kinetics", ("zeroshot",),
            {class_list("k600"): 600, "k600/zeroshot/novel220.csv": 220,
             **_zeroshot("k600", 160, (14131, 14078, 14167), val_classes=60)},
            novel_pool="k600/zeroshot/novel220.csv"),
    Dataset("ucf101", "UCF101", ("official",), "camel", "class_folders", ("zeroshot", "b2n"),
            {class_list("ucf101"): 101, **_zeroshot("ucf101", 101, (3783, 3734, 3696)),
             **_b2n("ucf101", 51, 50, 2088, 1695)}),
    Dataset("hmdb51", "HMDB-51", ("official",), "snake", "class_folders", ("zeroshot", "b2n"),
            {class_list("hmdb51"): 51, **_zeroshot("hmdb51", 51, 1530),
             **_b2n("hmdb51", 26, 25, 780, 750)}, test_per_class=30),
)}

SOURCES = ("cvdf", "youtube", "official", "synthetic")  # every kind of download; "synthetic" = the demo


def get(key: str) -> Dataset:
    from zar.core.errors import UserError

    try:
        return DATASETS[key]
    except KeyError:
        raise UserError(f"unknown dataset {key!r} (known: {', '.join(DATASETS)})") from None


def with_role(role: str) -> tuple[str, ...]:
    return tuple(k for k, d in DATASETS.items() if role in d.roles)


def expected_counts() -> dict[str, int]:
    """Every split file the audit checks, with its number of classes or videos."""
    return {path: n for d in DATASETS.values() for path, n in d.expected.items()}


def class_text(dataset: str | None, class_name: str) -> str:
    """The text the text encoder reads for a class of ``dataset`` (its naming rule;
    ``dataset`` None: the generic rule)."""
    return splitfiles.class_text(class_name, get(dataset).naming if dataset is not None else None)


def classes_csv(dataset: str | None, names) -> str:
    """A class list file of ``dataset`` for ``names`` in the given order."""
    return splitfiles.classes_csv(names, get(dataset).naming if dataset is not None else None)
