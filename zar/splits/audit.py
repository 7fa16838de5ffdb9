"""``zar splits audit``: check every invariant of a splits folder.

Each violation is one line ``<file>: <what is wrong>``. Checks: the layout; the file formats
(header, line ends, sorted rows, class_index 0..K-1, the text rule); class counts; list sizes;
no duplicated video; every video's class in the class list beside it; paths in the official
layout; the same video with the same class everywhere; disjointness (K600 test and validation
classes vs K400 including the renamed classes, base vs novel, training vs evaluation videos);
16 shots per base class; the checksum manifest; and, when the sources are available, that a
rebuild from them reproduces the folder byte for byte.
"""
from __future__ import annotations

import hashlib
import re
import tempfile
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

from zar.core.datasets import (DATASETS, SPLITS, b2n_list, b2n_train_list, class_list, class_text, expected_counts,
                               with_role, zeroshot_list)
from zar.splits.common import is_kinetics_stem
from zar.core.splitfiles import CLASS_HEADER, MANIFEST, VIDEO_HEADER, parse_csv
from zar.splits.kinetics_novel import RENAMED
from zar.core.errors import UserError

SHOTS = 16
MAX_ROW_MESSAGES = 5

# split file -> number of classes (class lists) or videos (video lists): zar.core.datasets
_CLASS_LISTS = ("classes.csv", "novel220.csv", "val_classes.csv")
CLASS_COUNTS: dict[str, int] = {p: n for p, n in expected_counts().items() if p.endswith(_CLASS_LISTS)}
VIDEO_COUNTS: dict[str, int] = {p: n for p, n in expected_counts().items() if not p.endswith(_CLASS_LISTS)}
# videos ViFi-CLIP evaluated (vifi_subset = 1)
VIFI_COUNTS = {zeroshot_list("k600", k, "test"): n for k, n in zip(SPLITS, (14084, 13978, 14136))}
LAYOUT = set(CLASS_COUNTS) | set(VIDEO_COUNTS) | {"README.md", MANIFEST}
_MANIFEST_LINE = re.compile(r"^([0-9a-f]{64})  (\S.*)$")


@dataclass
class Audit:
    root: Path
    violations: list[str] = field(default_factory=list)
    notes: list[str] = field(default_factory=list)
    classes: dict[str, list[str]] = field(default_factory=dict)
    videos: dict[str, list[tuple[str, str, str, int, tuple[str, ...]]]] = field(default_factory=dict)

    def fail(self, rel: str, message: str) -> None:
        self.violations.append(f"{self.root / rel}: {message}")

    def fail_rows(self, rel: str, messages: list[str]) -> None:
        for m in messages[:MAX_ROW_MESSAGES]:
            self.fail(rel, m)
        if len(messages) > MAX_ROW_MESSAGES:
            self.fail(rel, f"... and {len(messages) - MAX_ROW_MESSAGES} more such rows")


def _files(root: Path) -> set[str]:
    return {p.relative_to(root).as_posix() for p in root.rglob("*")
            if p.is_file() and not any(s.startswith(".") for s in p.relative_to(root).parts)}


def check_manifest(a: Audit) -> None:
    path = a.root / MANIFEST
    if not path.is_file():
        a.fail(MANIFEST, "missing")
        return
    listed: dict[str, str] = {}
    for n, line in enumerate(path.read_text(encoding="utf-8", errors="replace").split("\n")[:-1], 1):
        m = _MANIFEST_LINE.match(line)
        if not m or m[2] in listed:
            a.fail(MANIFEST, f"line {n}: not '<sha256>  <path>' or a path listed twice: {line[:80]!r}")
            continue
        listed[m[2]] = m[1]
    present = _files(a.root) - {MANIFEST}
    for rel in sorted(present - set(listed)):
        a.fail(rel, f"not listed in {MANIFEST}")
    for rel, digest in sorted(listed.items()):
        f = a.root / rel
        if not f.is_file():
            a.fail(rel, f"listed in {MANIFEST} but missing")
        elif hashlib.sha256(f.read_bytes()).hexdigest() != digest:
            a.fail(rel, f"sha256 does not match {MANIFEST} (file changed without updating the manifest)")


def _read(a: Audit, rel: str) -> tuple[list[str], list[list[str]]] | None:
    f = a.root / rel
    if not f.is_file():
        a.fail(rel, "missing")
        return None
    try:
        return parse_csv(f.read_bytes().decode("utf-8"), rel)
    except UnicodeDecodeError:
        a.fail(rel, "not UTF-8")
    except UserError as e:
        a.fail(rel, str(e).split(": ", 1)[-1])
    return None


def check_classes(a: Audit, rel: str, expected: int) -> None:
    got = _read(a, rel)
    if got is None:
        return
    header, rows = got
    if tuple(header) != CLASS_HEADER:
        a.fail(rel, f"header {','.join(header)!r}, expected {','.join(CLASS_HEADER)!r}")
        return
    ds = rel.split("/")[0]
    bad, names = [], []
    for i, r in enumerate(rows):
        if len(r) != 3 or r[0] != str(i) or not r[1]:
            bad.append(f"line {i + 2}: expected '{i},<name>,<text>', got {','.join(r)!r}")
            continue
        if r[2] != class_text(ds, r[1]):
            want = class_text(ds, r[1])
            bad.append(f"line {i + 2}: text {r[2]!r} for {r[1]!r}, the text rule gives {want!r}")
        names.append(r[1])
    for name, n in Counter(names).items():
        if n > 1:
            bad.append(f"class {name!r} listed {n} times")
    a.fail_rows(rel, bad)
    if len(rows) != expected:
        a.fail(rel, f"{len(rows)} classes, expected {expected}")
    a.classes[rel] = names


def _path_problem(ds: str, rel: str, vid: str, path: str, cls: str) -> str | None:
    if DATASETS[ds].kinetics:
        want = "test" if "/zeroshot/" in rel else "train" if "/train_s" in rel else "val"
        if not is_kinetics_stem(vid) or path != f"{want}/{vid}.mp4":
            return f"video {vid}: path {path!r}, expected '{want}/<youtube_id>_<start>_<end>.mp4' = video_id"
    elif path != f"{cls}/{vid}.avi":
        return f"video {vid}: path {path!r}, expected '{cls}/{vid}.avi'"
    return None


def check_videos(a: Audit, rel: str, expected: int | None, official: bool = True) -> None:
    """A video list: header, rows, classes, paths, sorting; ``expected`` videos (None: any, but
    some). ``official=False`` (any folder in the layout, e.g. the demo's): extra columns are
    free and a path only has to stay inside the video root."""
    got = _read(a, rel)
    if got is None:
        return
    header, rows = got
    extra = ["vifi_subset"] if official and rel.startswith("k600/") else header[4:]
    if header != list(VIDEO_HEADER) + extra:
        a.fail(rel, f"header {','.join(header)!r}, expected {','.join(list(VIDEO_HEADER) + extra)!r}")
        return
    ds = rel.split("/")[0]
    classes_rel = rel.rsplit("/", 1)[0] + "/classes.csv"
    classes = a.classes.get(classes_rel)
    if classes is None:
        a.fail(rel, f"no readable {classes_rel} to check the classes against")
        return
    bad, out, first_line = [], [], {}
    for n, r in enumerate(rows, start=2):
        if len(r) != len(header) or not r[3].isdigit() or not r[0] or not r[1]:
            bad.append(f"line {n}: malformed row {','.join(r)!r}")
            continue
        vid, path, cls, idx = r[0], r[1], r[2], int(r[3])
        if vid in first_line:
            bad.append(f"duplicate video {vid} (lines {first_line[vid]} and {n})")
        first_line.setdefault(vid, n)
        if cls not in classes:
            bad.append(f"line {n}: video {vid}: class {cls!r} is not in {classes_rel}")
        elif idx >= len(classes) or classes[idx] != cls:
            bad.append(f"line {n}: video {vid}: class_index {idx} is not {cls!r} in {classes_rel}")
        if official:
            problem = _path_problem(ds, rel, vid, path, cls)
        elif path.startswith("/") or ".." in path.split("/"):
            problem = f"video {vid}: path {path!r} must be relative, inside the video root"
        else:
            problem = None
        if problem:
            bad.append(f"line {n}: {problem}")
        if official and extra and r[4] not in ("0", "1"):
            bad.append(f"line {n}: vifi_subset {r[4]!r}, expected 0 or 1")
        out.append((vid, path, cls, idx, tuple(r[4:])))
    keys = [(x[3], x[0]) for x in out]
    if keys != sorted(keys):
        bad.append("rows are not sorted by (class_index, video_id)")
    a.fail_rows(rel, bad)
    if expected is not None and len(rows) != expected:
        a.fail(rel, f"{len(rows)} videos, expected {expected}")
    if not rows:
        a.fail(rel, "no videos")
    if rel in VIFI_COUNTS and official and not bad:
        n_vifi = sum(x[4][0] == "1" for x in out)
        if n_vifi != VIFI_COUNTS[rel]:
            a.fail(rel, f"{n_vifi} videos with vifi_subset = 1, expected {VIFI_COUNTS[rel]}")
    a.videos[rel] = out


def check_k600_classes(a: Audit) -> None:
    """No K400 class (by name, case-insensitively, or renamed) among the K600 zero-shot
    classes; per split, test and validation classes partition the novel pool."""
    cl = a.classes
    k400_fold = {c.casefold(): c for c in cl.get(class_list("k400"), [])}
    k600 = set(cl.get(class_list("k600"), []))
    pool = cl.get("k600/zeroshot/novel220.csv")
    lists = ["k600/zeroshot/novel220.csv"] + [
        zeroshot_list("k600", k, n) for k in SPLITS for n in ("classes", "val_classes")]
    for rel in lists:
        for c in cl.get(rel, []):
            if c.casefold() in k400_fold:
                a.fail(rel, f"class {c!r} is the Kinetics-400 class {k400_fold[c.casefold()]!r} "
                            "(seen class leaked into the zero-shot classes)")
            elif c in RENAMED:
                a.fail(rel, f"class {c!r} renames the Kinetics-400 class {RENAMED[c]!r} "
                            "(counted as seen; must not be a zero-shot class)")
            elif k600 and c not in k600:
                a.fail(rel, f"class {c!r} is not a Kinetics-600 class")
    for k in SPLITS:
        test_rel, val_rel = zeroshot_list("k600", k, "classes"), zeroshot_list("k600", k, "val_classes")
        test, val = cl.get(test_rel), cl.get(val_rel)
        if test is None or val is None or pool is None:
            continue
        both = sorted(set(test) & set(val))
        if both:
            a.fail(val_rel, f"validation classes that are also test classes: {both[:5]}")
        outside = sorted((set(test) | set(val)) ^ set(pool))
        if outside:
            a.fail(test_rel, f"test + validation classes differ from novel220.csv: {outside[:5]}")


def _ids(a: Audit, rel: str) -> set[str]:
    return {r[0] for r in a.videos.get(rel, [])}


def check_b2n(a: Audit, ds: str) -> None:
    """Base and novel classes partition the dataset; no video in two lists; 16 shots."""
    full = a.classes.get(class_list(ds))
    base, novel = a.classes.get(b2n_list(ds, "base", "classes")), a.classes.get(b2n_list(ds, "novel", "classes"))
    if full is None or base is None or novel is None:
        return
    if set(base) & set(novel):
        a.fail(b2n_list(ds, "novel", "classes"),
               f"classes also in base/classes.csv: {sorted(set(base) & set(novel))[:5]}")
    if set(base) | set(novel) != set(full):
        a.fail(b2n_list(ds, "base", "classes"), f"base + novel classes differ from {ds}/classes.csv: "
                                             f"{sorted((set(base) | set(novel)) ^ set(full))[:5]}")
    base_test, novel_test = _ids(a, b2n_list(ds, "base", "test")), _ids(a, b2n_list(ds, "novel", "test"))
    if base_test & novel_test:
        a.fail(b2n_list(ds, "novel", "test"),
               f"videos also in base/test.csv: {sorted(base_test & novel_test)[:5]}")
    for k in SPLITS:
        rel = b2n_train_list(ds, k)
        if rel not in a.videos:
            continue
        leak = sorted(_ids(a, rel) & (base_test | novel_test))
        if leak:
            a.fail(rel, f"training videos that are also evaluation videos: {leak[:5]}")
        per_class = Counter(r[3] for r in a.videos[rel])
        wrong = {base[i]: per_class.get(i, 0) for i in range(len(base)) if per_class.get(i, 0) != SHOTS}
        if wrong:
            a.fail(rel, f"{len(wrong)} base classes without exactly {SHOTS} shots, "
                        f"e.g. {dict(list(wrong.items())[:3])}")
    if not DATASETS[ds].kinetics:  # UCF101 / HMDB51: base_val + novel_val = the split-1 test set
        split1 = _ids(a, zeroshot_list(ds, 1, "test"))
        if split1 and (base_test | novel_test) != split1:
            a.fail(b2n_list(ds, "base", "test"), "base + novel test videos differ from zeroshot/split1/"
                                              f"test.csv ({len((base_test | novel_test) ^ split1)} videos)")


def check_zeroshot(a: Audit, ds: str) -> None:
    """UCF101 / HMDB51 zero-shot splits classify over all classes; a dataset with a fixed number
    of test videos per class (HMDB51: 30) has it in every split."""
    per_class = DATASETS[ds].test_per_class
    full = a.classes.get(class_list(ds))
    for k in SPLITS:
        rel = zeroshot_list(ds, k, "classes")
        if full is not None and a.classes.get(rel) not in (None, full):
            a.fail(rel, f"differs from {ds}/classes.csv (zero-shot splits classify over all classes)")
        per = Counter(r[2] for r in a.videos.get(zeroshot_list(ds, k, "test"), []))
        odd = {c: n for c, n in per.items() if n != per_class}
        if per_class and odd:
            a.fail(zeroshot_list(ds, k, "test"),
                   f"classes without {per_class} test videos: {dict(list(odd.items())[:3])}")


def check_same_video_same_label(a: Audit) -> None:
    seen: dict[tuple[str, str], tuple[str, str, str]] = {}
    for rel in sorted(a.videos):
        ds = rel.split("/")[0]
        for vid, path, cls, _, _ in a.videos[rel]:
            first = seen.setdefault((ds, vid), (path, cls, rel))
            if first[:2] != (path, cls):
                a.fail(rel, f"video {vid} is {path},{cls} here but {first[0]},{first[1]} in {first[2]}")


def check_rebuild(a: Audit, sources_dir: str | Path, fetch_dir: str | Path | None) -> None:
    from zar.splits.build import build_files, write_tree
    from zar.splits.published import SourcesUnavailable, resolve

    try:
        src = resolve(sources_dir, fetch_dir)
        with tempfile.TemporaryDirectory(prefix="zar-splits-") as tmp:
            write_tree(build_files(src), tmp)
            rebuilt = _files(Path(tmp))
            present = _files(a.root)
            for rel in sorted(rebuilt | present):
                if rel not in present:
                    a.fail(rel, "missing (a rebuild from the sources produces it)")
                elif rel not in rebuilt:
                    a.fail(rel, "not produced by a rebuild from the sources")
                elif (Path(tmp) / rel).read_bytes() != (a.root / rel).read_bytes():
                    a.fail(rel, f"differs from a rebuild from the sources in {sources_dir}")
            a.notes.append(f"rebuild from the sources in {sources_dir}: compared {len(rebuilt)} files")
    except SourcesUnavailable as e:
        a.notes.append(f"rebuild check skipped: the pinned sources cannot be had here ({e}); pass a mirror "
                       "with --sources to run it")
    except UserError as e:
        a.violations.append(f"sources: {e}")


def audit(root: str | Path, sources_dir: str | Path | None = None,
          fetch_dir: str | Path | None = None) -> Audit:
    """Run every check on the folder ``root``. The rebuild check runs when ``sources_dir``
    exists or ``fetch_dir`` is given; otherwise it is skipped and a note says so."""
    a = Audit(Path(root))
    if not a.root.is_dir():
        raise UserError(f"{root}: no such splits directory")
    check_manifest(a)
    for rel in sorted(_files(a.root) - LAYOUT):
        a.fail(rel, "not part of the split layout")
    for rel in ("README.md",):
        if not (a.root / rel).is_file():
            a.fail(rel, "missing")
    for rel, n in sorted(CLASS_COUNTS.items()):
        check_classes(a, rel, n)
    for rel, n in sorted(VIDEO_COUNTS.items()):
        check_videos(a, rel, n)
    check_k600_classes(a)
    for ds in with_role("b2n"):
        check_b2n(a, ds)
    for ds in with_role("zeroshot"):
        if not DATASETS[ds].kinetics:  # whole-dataset zero-shot splits (UCF101, HMDB51)
            check_zeroshot(a, ds)
    check_same_video_same_label(a)
    if sources_dir is not None and (Path(sources_dir).is_dir() or fetch_dir is not None):
        check_rebuild(a, sources_dir, fetch_dir)
    else:
        a.notes.append(f"rebuild check skipped: no sources directory {sources_dir}")
    return a


def audit_generic(root: str | Path) -> Audit:
    """The checks that hold for any folder in the split layout (e.g. the demo's synthetic
    splits): manifest, formats, sorted rows, no duplicates, every video's class in the class
    list beside it, the same video with the same class everywhere, base vs novel classes and
    training vs evaluation videos disjoint, and no zero-shot class among the fine-tuning
    classes (``k400/classes.csv``). No official counts and no rebuild."""
    a = Audit(Path(root))
    if not a.root.is_dir():
        raise UserError(f"{root}: no such splits directory")
    check_manifest(a)
    files = sorted(_files(a.root))
    csvs = [rel for rel in files if rel.endswith(".csv")]
    if not csvs:
        a.fail(".", "no split files")
    class_lists = [rel for rel in csvs if rel.rsplit("/", 1)[-1] in ("classes.csv", "novel220.csv", "val_classes.csv")]
    for rel in class_lists:
        ds = rel.split("/")[0]
        if ds not in DATASETS:
            a.fail(rel, f"unknown dataset folder {ds!r} (known: {', '.join(DATASETS)})")
            continue
        got = _read(a, rel)
        if got is not None:
            check_classes(a, rel, len(got[1]))
    for rel in csvs:
        if rel in class_lists:
            continue
        check_videos(a, rel, None, official=False)
    for ds in DATASETS:
        _check_b2n_generic(a, ds)
    check_same_video_same_label(a)
    seen = set(a.classes.get(class_list("k400"), []))
    for rel, names in sorted(a.classes.items()):
        if "/zeroshot/" in rel and not rel.startswith("k400/"):
            leak = sorted(set(names) & seen)
            if leak:
                a.fail(rel, f"zero-shot classes that are fine-tuning classes (k400/classes.csv): {leak[:5]}")
    return a


def _check_b2n_generic(a: Audit, ds: str) -> None:
    base, novel = a.classes.get(b2n_list(ds, "base", "classes")), a.classes.get(b2n_list(ds, "novel", "classes"))
    if base is None or novel is None:
        return
    if set(base) & set(novel):
        a.fail(b2n_list(ds, "novel", "classes"), f"classes also in base/classes.csv: {sorted(set(base) & set(novel))[:5]}")
    tests = _ids(a, b2n_list(ds, "base", "test")) | _ids(a, b2n_list(ds, "novel", "test"))
    for rel in sorted(r for r in a.videos if r.startswith(f"{ds}/b2n/base/train_s")):
        leak = sorted(_ids(a, rel) & tests)
        if leak:
            a.fail(rel, f"training videos that are also evaluation videos: {leak[:5]}")
        shots = Counter(r[3] for r in a.videos[rel])
        if len(set(shots.values())) > 1 or len(shots) != len(base):
            a.fail(rel, f"every base class needs the same number of shots; got {dict(list(shots.items())[:4])}")
