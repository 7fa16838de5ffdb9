"""The demo's split files (the real layout and format) and its videos, written to disk."""
from __future__ import annotations

import logging
from pathlib import Path

import numpy as np

from zar.core import datasets
from zar.data.demo.settings import DemoConfig
from zar.data.layout import NORMALISED_COLUMNS, NORMALISED_MANIFEST, output_path
from zar.data.demo.design import Combo, Video, class_name, design_classes, plan_videos
from zar.data.demo.render import render_clip, video_seed, write_video
from zar.core import splitfiles
from zar.core.files import atomic_write_text, sha256_file, stable_int
from zar.core.progress import progress

log = logging.getLogger(__name__)

def _class_list(ds: str, combos: list[Combo]) -> list[Combo]:
    return sorted(combos, key=lambda c: class_name(ds, c))


def _classes_csv(ds: str, classes: list[Combo]) -> str:
    """The real format; its text rule turns each role's raw name back into ``combo_text``."""
    return datasets.classes_csv(ds, [class_name(ds, c) for c in classes])


def _videos_csv(ds: str, classes: list[Combo], videos: list[Video]) -> str:
    index = {c: i for i, c in enumerate(classes)}
    return splitfiles.videos_csv(splitfiles.VideoRow(v.video_id, v.path, class_name(ds, v.combo), index[v.combo])
                              for v in videos if v.combo in index)


def _shots(cfg: DemoConfig, ds: str, classes: list[Combo], train: list[Video], s: int) -> list[Video]:
    """``cfg.shots`` training videos per class, a different seeded draw for each shot list s."""
    out = []
    for c in classes:
        pool = sorted((v for v in train if v.combo == c), key=lambda v: v.video_id)
        rng = np.random.default_rng(stable_int(cfg.seed, ds, "shots", s, class_name(ds, c)))
        out += [pool[i] for i in sorted(rng.choice(len(pool), cfg.shots, replace=False))]
    return out


def build_split_files(cfg: DemoConfig) -> dict[str, str]:
    """Every split file of every role: relative path -> text. Pure; deterministic."""
    design = design_classes(cfg)
    plan = plan_videos(cfg, design)
    files: dict[str, str] = {}
    for ds, d in datasets.DATASETS.items():
        train = [v for v in plan[ds] if v.part == "train"]
        test = [v for v in plan[ds] if v.part == "test"]
        if "finetune" in d.roles:
            full = _class_list(ds, design["finetune"])
        elif d.novel_pool:  # like Kinetics-600: the fine-tuning classes plus the novel pool
            full = _class_list(ds, design["finetune"] + design["pools"][ds])
        else:
            full = _class_list(ds, design["pools"][ds])
        files[datasets.class_list(ds)] = _classes_csv(ds, full)
        if "finetune" in d.roles:
            files[f"{ds}/train.csv"] = _videos_csv(ds, full, train)
        if "b2n" in d.roles:
            base = _class_list(ds, design["base"][ds])
            novel = [c for c in full if c not in set(base)]
            files[datasets.b2n_list(ds, "base", "classes")] = _classes_csv(ds, base)
            files[datasets.b2n_list(ds, "base", "test")] = _videos_csv(ds, base, test)
            for s in datasets.SPLITS:
                files[datasets.b2n_train_list(ds, s)] = _videos_csv(ds, base, _shots(cfg, ds, base, train, s))
            files[datasets.b2n_list(ds, "novel", "classes")] = _classes_csv(ds, novel)
            files[datasets.b2n_list(ds, "novel", "test")] = _videos_csv(ds, novel, test)
        if "zeroshot" in d.roles:
            if d.novel_pool:  # the real layout's file name for the pool
                files[d.novel_pool] = _classes_csv(ds, _class_list(ds, design["pools"][ds]))
            for s in datasets.SPLITS:
                classes = _class_list(ds, design["splits"][ds][s - 1])
                files[datasets.zeroshot_list(ds, s, "classes")] = _classes_csv(ds, classes)
                files[datasets.zeroshot_list(ds, s, "test")] = _videos_csv(ds, classes, test)
    files["README.md"] = _readme(cfg, files)
    return files


def _readme(cfg: DemoConfig, files: dict[str, str]) -> str:
    import yaml

    counts = "\n".join(f"| `{p}` | {t.count(chr(10)) - 1} |" for p, t in sorted(files.items()))
    settings = yaml.safe_dump(cfg.to_dict(), sort_keys=False, default_flow_style=None)
    return f"""# Synthetic demo splits (not real data)

Written by `zar splits build --builder demo`. Every video is SYNTHETIC: a coloured shape gliding over a
noisy background with a fading trail behind it. A class names its colour, shape, direction
and speed ("red circle moving left quickly"). The roles mirror the paper's datasets in the
same file layout as the real `splits/`:

- `k400`: the fine-tuning classes (`train.csv`) and a base-to-novel split of them;
- `hmdb51`, `ucf101`, `k600`: zero-shot test sets of classes that are not fine-tuning
  classes but new combinations of the same words; each `zeroshot/split{{1,2,3}}` is a
  different subset of the role's class pool (`k600/zeroshot/novel220.csv` holds the demo's
  pool under the real file's name); `hmdb51` and `ucf101` also have base-to-novel lists.

The videos themselves are rendered by `zar download --dataset DS --source synthetic --root DIR`
with the same settings. Same settings, same files: rerunning reproduces these bytes.
`MANIFEST.sha256` checks every file here (`sha256sum -c MANIFEST.sha256`).

| file | rows |
|---|---|
{counts}

Settings:
```yaml
{settings}```
"""


def write_splits(cfg: DemoConfig, out: Path) -> dict[str, str]:
    files = build_split_files(cfg)
    for rel, text in files.items():
        atomic_write_text(out / rel, text)
    manifest = splitfiles.manifest_text({rel: text.encode("utf-8") for rel, text in files.items()})
    atomic_write_text(out / splitfiles.MANIFEST, manifest)
    return files


# ----------------------------------------------------------------------------- videos
def write_videos(cfg: DemoConfig, dataset: str, root: Path) -> Path:
    """Render the role's videos straight in the normalised form `zar decode` writes (h264 mp4
    at ``<root>/videos/<path>.mp4``), skipping those already written, with the download
    manifest a real download leaves and ``demo_videos.csv`` (what `zar decode` records for them).

    Returns the path of ``demo_videos.csv``.
    """

    videos = plan_videos(cfg)[dataset]
    made = 0
    for v in progress(videos, total=len(videos), desc=f"demo videos {dataset}"):
        path = output_path(root, v.path)
        if path.is_file() and path.stat().st_size > 0:  # written atomically: complete
            continue
        train = v.part == "train"
        write_video(render_clip(cfg, v.combo, v.num_frames, video_seed(cfg, v),
                                tuple(cfg.train_visible if train else cfg.test_visible),
                                cfg.train_edge if train else cfg.test_edge), path, cfg.fps)
        made += 1
    log.info("%s: %d videos written, %d already there, under %s", dataset, made, len(videos) - made,
             root / "videos")
    rows = [(v.video_id, v.path, output_path(root, v.path).relative_to(root).as_posix(), v.num_frames, cfg.width,
             cfg.height, cfg.fps, sha256_file(output_path(root, v.path))) for v in videos]
    manifest = root / NORMALISED_MANIFEST
    atomic_write_text(manifest, splitfiles.csv_text(NORMALISED_COLUMNS, rows))
    # the same download manifest a real download writes, so the workflow's later rules run unchanged
    from zar.data.manifest import DOWNLOAD_COLUMNS, write_manifest

    write_manifest(root / "download_manifest.csv",
                   {v.video_id: {"video_id": v.video_id, "path": v.path, "status": "ok", "reason": "",
                                 "source": "synthetic", "bytes": output_path(root, v.path).stat().st_size}
                    for v in videos},
                   DOWNLOAD_COLUMNS)
    return manifest



