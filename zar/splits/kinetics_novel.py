"""Kinetics: the K400 and K600 class lists and the K600 zero-shot splits.

- K400 / K600 classes: the unique labels of the official validation CSVs, sorted (checked
  against mmaction2's label maps and ViFi-CLIP's label files).
- The novel pool: K600 names not in K400 by exact string (232), minus the 12 K600 names that
  are renamed K400 classes (``RENAMED``) = 220; must equal ER-ZSAR's classes 400-619.
- Split i (1-3): ER-ZSAR's 160 test classes (``tst_class_idxs.json``) in ER-ZSAR's index
  order, its 60 validation classes, and its test videos of those classes; ``vifi_subset``
  marks the videos in ViFi-CLIP's ``ZS_split{i}_K600_eval.txt``.
"""
from __future__ import annotations

import json
from dataclasses import dataclass

from zar.splits.common import (
    Part, fail, is_kinetics_stem, kinetics_stem, read_dict_csv, read_id_names, read_label_list,
    stem, where,
)
from zar.core.datasets import classes_csv, zeroshot_list
from zar.core.splitfiles import VideoRow, videos_csv
from zar.splits.published import Sources

# K600 name -> the K400 class it renames (docs/protocol.md §5); these count as seen classes.
RENAMED: dict[str, str] = {
    "changing wheel (not on bike)": "changing wheel",
    "cooking sausages (not on barbeque)": "cooking sausages",
    "dyeing hair": "dying hair",
    "hugging (not baby)": "hugging",
    "inflating balloons": "balloon blowing",
    "making the bed": "making bed",
    "opening bottle (not wine)": "opening bottle",
    "passing american football (not in game)": "passing American football (not in game)",
    "person collecting garbage": "garbage collecting",
    "throwing ball (not baseball or American football)": "throwing ball",
    "tying necktie": "tying tie",
    "waking up": "baby waking up",
}
NOVEL_POOL_SIZE = 220
N_SPLITS = 3

K400_VAL = "Crawler/Kinetics/data/kinetics-400_val.csv"
K600_VAL = "Crawler/Kinetics/data/kinetics-600_val.csv"
K600_TEST = "Crawler/Kinetics/data/kinetics-600_test.csv"
ER = "datasets/Kinetics/zsl220/"


@dataclass
class KineticsFacts:
    k400: list[str]  # sorted official names
    k600: list[str]
    k400_val: dict[str, str]  # clip stem -> label
    k600_test: set[str]  # clip stems of the official K600 test list


def novel_pool(k400: list[str], k600: list[str], renamed: dict[str, str] = RENAMED) -> list[str]:
    """K600 classes that are neither K400 names nor renamed K400 classes, sorted."""
    k400_set = set(k400)
    for new, old in renamed.items():
        if new not in k600 or old not in k400_set or old in k600:
            raise ValueError(f"renamed pair {new!r} <- {old!r} does not fit the class lists")
    return sorted(c for c in k600 if c not in k400_set and c not in renamed)


def _compare(got: list[str], expected: list[str], key: str, path: str, what: str) -> None:
    if got != expected:
        diff = sorted(set(got) ^ set(expected))[:5]
        raise fail(key, path, f"{what} disagree with the official list "
                   f"({len(got)} vs {len(expected)} names; e.g. {diff})")


def read_official(src: Sources) -> KineticsFacts:
    k400_val: dict[str, str] = {}
    for r in read_dict_csv(src, "anet", K400_VAL, ("label", "youtube_id", "time_start", "time_end")):
        k400_val[kinetics_stem(r["youtube_id"], r["time_start"], r["time_end"])] = r["label"]
    k600_rows = read_dict_csv(src, "anet", K600_VAL, ("label", "youtube_id", "time_start", "time_end"))
    k400 = sorted(set(k400_val.values()))
    k600 = sorted({r["label"] for r in k600_rows})
    if len(k400) != 400 or len(k600) != 600:
        raise fail("anet", K400_VAL, f"{len(k400)} K400 / {len(k600)} K600 labels, expected 400 / 600")
    for n, names in (("400", k400), ("600", k600)):
        mm = f"tools/data/kinetics/label_map_k{n}.txt"
        _compare(src.lines("mmaction2", mm), names, "mmaction2", mm, f"K{n} names")
        p = f"labels/kinetics_{n}_labels.csv"
        _compare(read_id_names(src, "vifi", p), names, "vifi", p, f"K{n} names")
    test = {
        kinetics_stem(r["youtube_id"], r["time_start"], r["time_end"])
        for r in read_dict_csv(src, "anet", K600_TEST, ("youtube_id", "time_start", "time_end"))
    }
    return KineticsFacts(k400, k600, k400_val, test)


def _idx_lists(src: Sources, name: str, size: int, lo: int, hi: int) -> list[list[int]]:
    data = json.loads(src.text("er", ER + name))
    if len(data) != N_SPLITS or any(len(x) != size or not all(lo <= j < hi for j in x) for x in data):
        raise fail("er", ER + name, f"expected {N_SPLITS} lists of {size} indices in {lo}..{hi - 1}")
    return data


def build(src: Sources, kin: KineticsFacts) -> Part:
    part = Part()
    part.files["k400/classes.csv"] = classes_csv("k400", kin.k400)
    part.files["k600/classes.csv"] = classes_csv("k600", kin.k600)
    k400_set = set(kin.k400)
    by_string = [c for c in kin.k600 if c not in k400_set]
    try:
        pool = novel_pool(kin.k400, kin.k600)
    except ValueError as e:
        raise fail("anet", K600_VAL, str(e)) from None
    c620_path = ER + "classes620_label_defn.json"
    c620 = [d["word"] for d in json.loads(src.text("er", c620_path))]
    if len(c620) != 620 or c620[:400] != kin.k400:
        raise fail("er", c620_path, "classes 0-399 are not the sorted K400 classes")
    if len(pool) != NOVEL_POOL_SIZE or c620[400:] != pool:
        raise fail("er", c620_path, f"classes 400-619 differ from the derived novel pool "
                   f"({len(pool)} classes; e.g. {sorted(set(pool) ^ set(c620[400:]))[:5]})")
    part.files["k600/zeroshot/novel220.csv"] = classes_csv("k600", pool)

    trn = _idx_lists(src, "trn_class_idxs.json", 400, 0, 620)
    if any(sorted(x) != list(range(400)) for x in trn):
        raise fail("er", ER + "trn_class_idxs.json", "training classes are not K400 (0-399)")
    tst = _idx_lists(src, "tst_class_idxs.json", 160, 400, 620)
    val = _idx_lists(src, "val_class_idxs.json", 60, 400, 620)

    metas_path = ER + "tst_video_metas.jsonl"
    labels: dict[str, int] = {}
    for n, line in enumerate(src.lines("er", metas_path), start=1):
        m = json.loads(line)
        vid = stem(m["videoname"])
        if vid in labels or not is_kinetics_stem(vid) or not 0 <= int(m["label"]) < 620:
            raise fail("er", metas_path, f"line {n}: bad or duplicated entry {line[:80]!r}")
        if vid not in kin.k600_test:
            raise fail("er", metas_path, f"line {n}: {vid} is not in the official K600 test list")
        labels[vid] = int(m["label"])

    in_no_split = [c620[j] for j in range(400, 620) if not any(j in t for t in tst)]
    part.notes += [
        f"K600 has {len(by_string)} class names that are not K400 names; {len(RENAMED)} of them "
        f"are renamed K400 classes (counted as seen), leaving {len(pool)}, identical to ER-ZSAR's "
        f"classes 400-619 (`{where('er', c620_path)}`).",
        f"All {len(labels):,} videos of ER-ZSAR's `tst_video_metas.jsonl` are in the official K600 "
        f"test list ({len(kin.k600_test):,} clips), so their path is `test/<clip>.mp4`; the labels "
        f"come from ER-ZSAR's metas (the official test list has none). "
        f"{sum(1 for j in labels.values() if j >= 400):,} of them carry a novel-class label, the "
        "others a K400 class.",
        "Novel classes in no test split (they are validation classes in all three): "
        + ", ".join(f"`{c}`" for c in in_no_split) + ".",
    ]
    for i in range(N_SPLITS):
        part.add(_split(src, i + 1, c620, tst[i], val[i], labels, pool))
    return part


def _split(src, k: int, c620, tst_idx, val_idx, labels, pool) -> Part:
    part = Part()
    test_names = [c620[j] for j in tst_idx]
    val_names = [c620[j] for j in val_idx]
    if set(test_names) & set(val_names) or set(test_names) | set(val_names) != set(pool):
        raise fail("er", ER + "val_class_idxs.json",
                   f"split {k}: validation and test classes do not partition the novel pool")
    zs_csv = f"labels/ZS_split{k}_K600.csv"
    if read_id_names(src, "vifi", zs_csv) != test_names:
        raise fail("vifi", zs_csv, f"differs from ER-ZSAR's split {k} test classes")
    index = {c620[j]: i for i, j in enumerate(tst_idx)}
    eval_path = f"datasets_splits/k600_splits/ZS_split{k}_K600_eval.txt"
    vifi = {}
    dirs: dict[str, int] = {}
    for entry, lab in read_label_list(src, "vifi", eval_path):
        vid = stem(entry)
        if lab >= len(test_names) or vid not in labels or c620[labels[vid]] != test_names[lab]:
            raise fail("vifi", eval_path, f"{entry} {lab}: not an ER-ZSAR test video of that class")
        if vid in vifi:
            raise fail("vifi", eval_path, f"{entry}: listed twice")
        vifi[vid] = lab
        d = entry.split("/")[0] if "/" in entry else ""
        dirs[d] = dirs.get(d, 0) + 1
    rows = [
        VideoRow(vid, f"test/{vid}.mp4", c620[j], index[c620[j]], ("1" if vid in vifi else "0",))
        for vid, j in labels.items() if c620[j] in index
    ]
    part.files[zeroshot_list("k600", k, "classes")] = classes_csv("k600", test_names)
    part.files[zeroshot_list("k600", k, "val_classes")] = classes_csv("k600", val_names)
    part.files[zeroshot_list("k600", k, "test")] = videos_csv(rows, ("vifi_subset",))
    part.notes.append(
        f"K600 split {k}: {len(rows):,} ER-ZSAR test videos of the 160 classes; ViFi-CLIP "
        f"evaluated {len(vifi):,} of them (`vifi_subset` = 1), {len(rows) - len(vifi)} are absent "
        f"from its list. ViFi-CLIP's list names them under its own directories ("
        + ", ".join(f"`{d}/` {n:,}" for d, n in sorted(dirs.items())) + "); we use `test/`."
    )
    return part
