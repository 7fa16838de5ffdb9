"""Base-to-novel splits (ViFi-CLIP's published lists) for K400, HMDB51 and UCF101.

ViFi-CLIP's lists give ``<video> <label id>``; its label files give the names of the ids. The
names are not taken on trust: every id's name is derived from the official class of the videos
that carry it in ``base_val.txt`` / ``novel_val.txt`` (all of one class, or the build stops),
and compared with ViFi-CLIP's label file; disagreements are recorded and the official names
used. ``class_index`` keeps ViFi-CLIP's ids (so our index = its label id). The 16-shot training
lists use the same id->name map and are checked against the official lists where one exists.
"""
from __future__ import annotations

from typing import Callable, Optional

from zar.splits.common import Part, fail, is_kinetics_stem, read_id_names, read_label_list, stem, where
from zar.core.datasets import b2n_list, b2n_train_list, classes_csv
from zar.core.splitfiles import VideoRow, videos_csv
from zar.splits.kinetics_novel import KineticsFacts
from zar.splits.published import Sources
from zar.splits.ucf_hmdb import Official, normalise

B2N = "datasets_splits/base2novel_splits/"
LABELS = {"k400": "kinetics_400", "ucf101": "ucf_101", "hmdb51": "hmdb_51"}
LISTS = {"k400": "k400_splits", "ucf101": "ucf_splits", "hmdb51": "hmdb_splits"}
SHOTS = 16
SEEDS = (1, 2, 3)

# entry of a ViFi-CLIP list -> (video_id, path, official class or None when no official source)
Locate = Callable[[str], tuple[str, str, Optional[str]]]


def k400_locator(kin: KineticsFacts) -> Locate:
    def locate(entry: str):
        d, _, name = entry.partition("/")
        vid = stem(name)
        if d not in ("train", "val") or not name.endswith(".mp4") or not is_kinetics_stem(vid):
            raise ValueError(f"{entry!r} is not '<train|val>/<youtube_id>_<start>_<end>.mp4'")
        if d == "val" and vid not in kin.k400_val:
            raise ValueError(f"{entry} is not in the official K400 val list")
        return vid, f"{d}/{vid}.mp4", kin.k400_val.get(vid) if d == "val" else None

    return locate


def official_locator(off: Official) -> Locate:
    def locate(entry: str):
        if entry not in off.class_of:
            raise ValueError(f"{entry} is in no official {off.dataset} split list")
        return stem(entry), off.path_of[entry], off.class_of[entry]

    return locate


def _located(src: Sources, path: str, locate: Locate) -> list[tuple[str, str, Optional[str], int]]:
    out = []
    for entry, lab in read_label_list(src, "vifi", path):
        try:
            out.append((*locate(entry), lab))
        except ValueError as e:
            raise fail("vifi", path, str(e)) from None
    return out


def _derive_names(src: Sources, ds: str, side: str, rows, val_path: str) -> tuple[list[str], list[str]]:
    """Names of ViFi-CLIP's label ids from the official classes of their val videos."""
    lab_path = f"labels/{LABELS[ds]}_{side}_labels.csv"
    vifi_names = read_id_names(src, "vifi", lab_path)
    seen: dict[int, set[str]] = {}
    for vid, _, cls, lab in rows:
        if cls is None:
            raise fail("vifi", val_path, f"{vid}: no official class to check it against")
        seen.setdefault(lab, set()).add(cls)
    if sorted(seen) != list(range(len(vifi_names))):
        raise fail("vifi", val_path, f"label ids are not 0..{len(vifi_names) - 1} of `{lab_path}`")
    mixed = {lab: sorted(c) for lab, c in seen.items() if len(c) > 1}
    if mixed:
        lab, c = next(iter(mixed.items()))
        raise fail("vifi", val_path, f"label id {lab} holds videos of several classes: {c}")
    names = [next(iter(seen[i])) for i in range(len(vifi_names))]
    notes = [f"id {i}: `{vifi_names[i]}` where the videos are `{names[i]}`"
             for i in range(len(names)) if normalise(vifi_names[i]) != normalise(names[i])]
    if notes:
        notes = [f"`{where('vifi', lab_path)}` disagrees with its own lists: " + "; ".join(notes)
                 + ". We use the official names."]
    return names, notes


def build(src: Sources, ds: str, official_classes: list[str], locate: Locate,
          eval_videos: set[str], eval_name: str) -> Part:
    """B2N files for dataset ``ds``; ``eval_videos`` is the official set that base_val and
    novel_val together are expected to cover (named ``eval_name`` in the notes)."""
    part = Part()
    names: dict[str, list[str]] = {}
    covered: set[str] = set()
    for side in ("base", "novel"):
        val_path = B2N + f"{LISTS[ds]}/{side}_val.txt"
        rows = _located(src, val_path, locate)
        names[side], notes = _derive_names(src, ds, side, rows, val_path)
        part.notes += notes
        vids = [r[0] for r in rows]
        if len(set(vids)) != len(vids) or covered & set(vids):
            raise fail("vifi", val_path, "a video is listed twice")
        covered |= set(vids)
        part.files[b2n_list(ds, side, "classes")] = classes_csv(ds, names[side])
        part.files[b2n_list(ds, side, "test")] = videos_csv(
            VideoRow(v, p, names[side][lab], lab) for v, p, _, lab in rows)
    base, novel = names["base"], names["novel"]
    if set(base) & set(novel) or set(base) | set(novel) != set(official_classes):
        raise fail("vifi", f"labels/{LABELS[ds]}_base_labels.csv",
                   "base and novel classes do not partition the official class list")
    missing = sorted(eval_videos - covered)
    extra = sorted(covered - eval_videos)
    if extra:
        raise fail("vifi", B2N + f"{LISTS[ds]}/base_val.txt", f"{len(extra)} videos outside the {eval_name}")
    part.notes.append(
        f"{ds} base-to-novel: `base_val` + `novel_val` = {len(covered):,} videos"
        + (f", the whole {eval_name}." if not missing else
           f" of the {len(eval_videos):,} of the {eval_name}; missing from ViFi-CLIP's lists: "
           + ", ".join(f"`{m}`" for m in missing) + ".")
    )
    unchecked = 0
    train_sets = []
    for k in SEEDS:
        path = B2N + f"{LISTS[ds]}/fs_base_s{k}_train.txt"
        rows = []
        for vid, p, cls, lab in _located(src, path, locate):
            if lab >= len(base):
                raise fail("vifi", path, f"{vid}: label id {lab} is not a base class")
            if cls is None:
                unchecked += 1
            elif cls != base[lab]:
                raise fail("vifi", path, f"{vid}: label id {lab} = {base[lab]!r}, official class {cls!r}")
            if vid in covered:
                raise fail("vifi", path, f"{vid} is also an evaluation video")
            rows.append(VideoRow(vid, p, base[lab], lab))
        train_sets.append({r.video_id for r in rows})
        part.files[b2n_train_list(ds, k)] = videos_csv(rows)
    overlaps = ", ".join(f"s{a + 1}/s{b + 1} {len(train_sets[a] & train_sets[b])}"
                         for a, b in ((0, 1), (0, 2), (1, 2)))
    part.notes.append(
        f"{ds} 16-shot lists: videos shared between shot lists: {overlaps}."
        + (f" The classes of the {unchecked:,} training rows cannot be checked against an "
           f"official list here (no official training list among the sources); they use the id->"
           f"name map verified on the validation lists." if unchecked else
           " Every training video's class was checked against the official split lists.")
    )
    return part
