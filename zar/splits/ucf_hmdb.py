"""UCF101 and HMDB51: official class lists, official split lists, zero-shot test splits.

- UCF101: classes in ``classInd.txt`` order; test split k = ``testlist0k.txt``.
- HMDB51: classes = the names of the official per-class split files, sorted; test split k =
  the videos marked 2 in ``<class>_test_split<k>.txt``. The class of every video is the file it
  is listed in, never ViFi-CLIP's ``hmdb_51_labels.csv`` (which swaps two pairs of names).
- ViFi-CLIP's test lists (``val<k>.txt``) are checked to hold the same videos with the same
  label ids; where its label-name file disagrees with the official names, that is recorded.
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field

from zar.splits.common import Part, fail, read_id_names, read_label_list, stem, where
from zar.core.datasets import class_list, classes_csv, zeroshot_list
from zar.core.splitfiles import VideoRow, videos_csv
from zar.splits.published import SOURCES, Sources
from zar.core.errors import UserError

UCF = "data/ucf101_splits/"
HMDB = "data/hmdb51_splits/"
_HMDB_FILE = re.compile(r"^(?P<cls>.+)_test_split(?P<k>[123])\.txt$")
SPLITS = (1, 2, 3)


@dataclass
class Official:
    dataset: str
    classes: list[str]
    class_of: dict[str, str] = field(default_factory=dict)  # video file name -> class
    path_of: dict[str, str] = field(default_factory=dict)  # video file name -> "<class>/<file>"
    test: dict[int, list[str]] = field(default_factory=dict)  # split -> video file names
    train1: set[str] = field(default_factory=set)  # training videos of split 1
    vifi_name: str = ""  # ViFi-CLIP's name of the dataset in its file names

    def record(self, video: str, cls: str, key: str, path: str) -> None:
        if cls not in self._index:
            raise fail(key, path, f"{video}: unknown class {cls!r}")
        if self.class_of.setdefault(video, cls) != cls:
            raise fail(key, path, f"{video} is listed under {cls!r} and {self.class_of[video]!r}")
        self.path_of[video] = f"{cls}/{video}"

    def __post_init__(self):
        self._index = {c: i for i, c in enumerate(self.classes)}

    def index(self, cls: str) -> int:
        return self._index[cls]


def normalise(name: str) -> str:
    """Comparison key for names written differently by different sources."""
    return " ".join(name.replace("_", " ").split()).lower()


def read_ucf(src: Sources) -> Official:
    classes = []
    for n, line in enumerate(src.lines("tsn", UCF + "classInd.txt"), start=1):
        parts = line.split()
        if len(parts) != 2 or parts[0] != str(n):
            raise fail("tsn", UCF + "classInd.txt", f"line {n}: expected '{n} <name>', got {line!r}")
        classes.append(parts[1])
    mm = "tools/data/ucf101/label_map.txt"
    if src.lines("mmaction2", mm) != classes:
        raise fail("mmaction2", mm, "differs from classInd.txt")
    off = Official("ucf101", classes, vifi_name="ucf")
    for k in SPLITS:
        p = UCF + f"testlist0{k}.txt"
        off.test[k] = []
        for line in src.lines("tsn", p):
            cls, _, video = line.partition("/")
            off.record(video, cls, "tsn", p)
            off.test[k].append(video)
    p = UCF + "trainlist01.txt"
    for line in src.lines("tsn", p):
        rel, _, idx = line.partition(" ")
        cls, _, video = rel.partition("/")
        off.record(video, cls, "tsn", p)
        if not idx.strip().isdigit() or classes[int(idx) - 1] != cls:
            raise fail("tsn", p, f"{line!r}: class id does not match the directory")
        off.train1.add(video)
    return off


def read_hmdb(src: Sources) -> Official:
    files: dict[str, dict[int, str]] = {}
    for s in SOURCES:
        m = _HMDB_FILE.match(s.path[len(HMDB):]) if s.key == "tsn" and s.path.startswith(HMDB) else None
        if m:
            files.setdefault(m["cls"], {})[int(m["k"])] = s.path
    classes = sorted(files)
    mm = "tools/data/hmdb51/label_map.txt"
    if src.lines("mmaction2", mm) != classes:
        raise fail("mmaction2", mm, "differs from the class names of the official split files")
    off = Official("hmdb51", classes, vifi_name="hmdb")
    for k in SPLITS:
        off.test[k] = []
        for cls in classes:
            p = files[cls].get(k)
            if p is None:
                raise fail("tsn", files[cls][min(files[cls])], f"no split-{k} file for class {cls!r}")
            for line in src.lines("tsn", p):
                parts = line.split()
                if len(parts) != 2 or parts[1] not in ("0", "1", "2"):
                    raise fail("tsn", p, f"expected '<video> <0|1|2>', got {line!r}")
                off.record(parts[0], cls, "tsn", p)
                if parts[1] == "2":
                    off.test[k].append(parts[0])
                elif parts[1] == "1" and k == 1:
                    off.train1.add(parts[0])
    return off


def label_file_notes(src: Sources, path: str, official: list[str]) -> tuple[list[str], set[int]]:
    """Compare a ViFi-CLIP label-name file with the official names at the same ids.

    Returns markdown descriptions of the disagreements and the ids concerned."""
    names = read_id_names(src, "vifi", path)
    if sorted(map(normalise, names)) != sorted(map(normalise, official)):
        raise fail("vifi", path, "does not hold the same class names as the official list")
    bad = {i for i, (a, b) in enumerate(zip(names, official)) if normalise(a) != normalise(b)}
    notes = [f"id {i}: `{names[i]}` where the videos are `{official[i]}`" for i in sorted(bad)]
    return notes, bad


def build_zeroshot(src: Sources, off: Official) -> Part:
    """Full class list and the three official test splits of UCF101 or HMDB51."""
    part = Part()
    ds = off.dataset
    part.files[f"{ds}/classes.csv"] = classes_csv(ds, off.classes)
    labels_path = f"labels/{'hmdb_51' if ds == 'hmdb51' else 'ucf_101'}_labels.csv"
    bad_notes, bad_ids = label_file_notes(src, labels_path, off.classes)
    affected = []
    for k in SPLITS:
        videos = off.test[k]
        if len(set(videos)) != len(videos):
            raise UserError(f"{ds} split {k}: a test video is listed twice in the official split lists")
        rows = [VideoRow(stem(v), off.path_of[v], off.class_of[v], off.index(off.class_of[v]))
                for v in videos]
        vifi_path = f"datasets_splits/{off.vifi_name}_splits/val{k}.txt"
        vifi = read_label_list(src, "vifi", vifi_path)
        if sorted(v for v, _ in vifi) != sorted(videos):
            raise fail("vifi", vifi_path, f"does not list the official split-{k} test videos")
        for v, lab in vifi:
            if lab >= len(off.classes) or off.classes[lab] != off.class_of[v]:
                raise fail("vifi", vifi_path, f"{v} {lab}: label id is not the official class")
        affected.append(sum(1 for _, lab in vifi if lab in bad_ids))
        part.files[zeroshot_list(ds, k, "classes")] = part.files[class_list(ds)]
        part.files[zeroshot_list(ds, k, "test")] = videos_csv(rows)
    odd = sorted({off.class_of[v] for v in off.class_of if not v.startswith(f"v_{off.class_of[v]}_")})
    if ds == "ucf101" and odd:
        part.notes.append(
            "UCF101 video files whose name spells the class differently from its directory: "
            + ", ".join(f"`{c}` (e.g. `{min(v for v in off.class_of if off.class_of[v] == c)}`)" for c in odd)
            + "; class name and text follow `classInd.txt`, `video_id` keeps the file name."
        )
    if bad_notes:
        part.notes.append(
            f"`{where('vifi', labels_path)}` disagrees with the official class order: "
            + "; ".join(bad_notes)
            + f". ViFi-CLIP's own list files use the official ids, so with that name file "
            f"{' / '.join(map(str, affected))} test videos of splits 1/2/3 get the other class's "
            f"text. We take the names from the official split files."
        )
    return part
