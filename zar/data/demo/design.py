"""Which word combinations play which role, and every video of every role (pure functions
of the config). The roles are the datasets of zar.core.datasets: the fine-tuning role, the
zero-shot roles (a class pool each, three splits of it) and the base-to-novel roles; names,
file layout and naming convention follow each dataset's registry entry."""
from __future__ import annotations

import dataclasses
import hashlib
from dataclasses import dataclass
from typing import Any

import numpy as np

from zar.core import datasets
from zar.data.demo.settings import DemoConfig, finetune_role, zeroshot_roles
from zar.core.errors import UserError
from zar.core.files import stable_int

YT_ALPHABET = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"


def b2n_zeroshot_roles() -> tuple[str, ...]:
    """The zero-shot roles that also have a base-to-novel split, in pool order."""
    return tuple(ds for ds in zeroshot_roles() if "b2n" in datasets.get(ds).roles)

Combo = tuple[str, str, str, str]  # colour, shape, direction, speed


def combo_text(combo: Combo) -> str:
    """The words of a class: "red circle moving left quickly"."""
    c, s, d, p = combo
    return f"{c} {s} moving {d} {p}".strip()  # a single speed may be unnamed ("")


def class_name(dataset: str, combo: Combo) -> str:
    """The raw class name in the role's own convention (zar.core.datasets: Kinetics words, HMDB
    snake case, UCF CamelCase)."""
    return datasets.get(dataset).class_name(combo_text(combo).split())


def pick_balanced(candidates: list[Combo], n: int, rng: np.random.Generator,
                  factors: tuple[int, ...] = (0, 1, 2, 3)) -> list[Combo]:
    """``n`` combos chosen so every value of the ``factors`` (indices into a combo: colour,
    shape, direction, speed) is used as evenly as possible.

    Greedy: visit candidates in a seeded random order and repeatedly take the one whose
    factor values have been used least so far (ties: the earlier in that order).
    """
    order = [candidates[i] for i in rng.permutation(len(candidates))]
    counts: dict[tuple[int, str], int] = {}
    chosen: list[Combo] = []
    for _ in range(min(n, len(order))):
        best = min(range(len(order)), key=lambda i: (sum(counts.get((k, order[i][k]), 0) for k in factors), i))
        combo = order.pop(best)
        chosen.append(combo)
        for k in factors:
            counts[(k, combo[k])] = counts.get((k, combo[k]), 0) + 1
    return chosen


def spread_colours(pool: list[Combo], n: int, rng: np.random.Generator) -> list[Combo]:
    """``n`` classes of ``pool`` whose colours repeat as little as possible (:func:`pick_balanced`
    on the colour alone), in pool order. With as many classes as colours, every colour once:
    the tiny model tells colours apart, not shapes or motions."""
    chosen = set(pick_balanced(pool, n, rng, factors=(0,)))
    return [c for c in pool if c in chosen]


def _words(combos: list[Combo]) -> set[str]:
    return {w for c in combos for w in combo_text(c).split()}


def design_classes(cfg: DemoConfig) -> dict[str, Any]:
    """Which combos play which part. Pure; deterministic in the config."""
    rng = np.random.default_rng(stable_int(cfg.seed, "demo-classes"))
    combos = cfg.combos()
    finetune = pick_balanced(combos, cfg.finetune_classes, rng)
    rest = [c for c in combos if c not in set(finetune)]
    pools: dict[str, list[Combo]] = {}
    for ds in zeroshot_roles():
        pools[ds] = pick_balanced(rest, cfg.pool_classes, rng)
        rest = [c for c in rest if c not in set(pools[ds])]
    base = {finetune_role(): pick_balanced(finetune, cfg.finetune_classes // 2, rng)}
    for ds in b2n_zeroshot_roles():
        base[ds] = pick_balanced(pools[ds], cfg.pool_classes // 2 + cfg.pool_classes % 2, rng)
    words = _words(finetune)
    for part, combos_ in [("fine-tuning", finetune), *((f"{ds} b2n base", b) for ds, b in base.items())]:
        if _words(combos_) != words:
            raise UserError(f"the {part} classes do not use every word ({sorted(words - _words(combos_))} "
                            "missing); give more classes or change the seed")
    splits = {ds: [spread_colours(pools[ds], cfg.split_classes, rng) for _ in range(3)] for ds in zeroshot_roles()}
    return {"finetune": finetune, "pools": pools, "base": base, "splits": splits}


# ----------------------------------------------------------------------------- video plan
@dataclass(frozen=True)
class Video:
    dataset: str
    video_id: str
    path: str          # relative to <data_root>/<dataset>/raw
    part: str          # "train" or "test"
    combo: Combo
    num_frames: int


def _youtube_like_id(*parts: Any) -> str:
    """11 characters of the YouTube id alphabet (letters, digits, '-', '_'), from a hash."""
    digest = hashlib.sha256("\x1f".join(map(str, parts)).encode("utf-8")).digest()
    return "".join(YT_ALPHABET[b & 63] for b in digest[:11])


def plan_videos(cfg: DemoConfig, design: dict[str, Any] | None = None) -> dict[str, list[Video]]:
    """Every video of every role, sorted by path. Pure; deterministic in the config."""
    design = design or design_classes(cfg)
    per_role: dict[str, list[tuple[Combo, str, int]]] = {ds: [] for ds in datasets.DATASETS}
    for combo in design["finetune"]:
        per_role[finetune_role()] += [(combo, "train", n) for n in range(cfg.finetune_train_videos)]
        per_role[finetune_role()] += [(combo, "test", n) for n in range(cfg.finetune_val_videos)]
    for ds in zeroshot_roles():
        for combo in design["pools"][ds]:
            per_role[ds] += [(combo, "test", n) for n in range(cfg.test_videos)]
            if "b2n" in datasets.get(ds).roles:
                per_role[ds] += [(combo, "train", n) for n in range(cfg.b2n_train_videos)]
    out: dict[str, list[Video]] = {}
    for ds, items in per_role.items():
        out[ds] = _videos(cfg, ds, items)
    return out


def _video_path(cfg: DemoConfig, ds: str, name: str, part: str, n: int) -> tuple[str, str]:
    """(video id, path) in the dataset's layout and naming (zar.core.datasets)."""
    d = datasets.get(ds)
    if d.kinetics:  # <split>/<YouTube id>_<start>_<end>.mp4; a fine-tuning set's test videos are its val/
        start = stable_int(cfg.seed, ds, name, part, n, "start") % 290
        vid = f"{_youtube_like_id(cfg.seed, ds, name, part, n)}_{start:06d}_{start + 10:06d}"
        folder = "train" if part == "train" else "val" if "finetune" in d.roles else "test"
        return vid, f"{folder}/{vid}.mp4"
    if d.naming == "camel":  # UCF101: v_<Class>_gGG_cCC, test clips in the low groups like UCF's lists
        k = n if part == "test" else cfg.test_videos + n
        vid = f"v_{name}_g{k // 3 + 1:02d}_c{k % 3 + 1:02d}"
    else:
        vid = f"{name}_synth_{part}_{n:02d}"
    return vid, f"{name}/{vid}.avi"


def _videos(cfg: DemoConfig, ds: str, items: list[tuple[Combo, str, int]]) -> list[Video]:
    videos = []
    for combo, part, n in items:
        name = class_name(ds, combo)
        vid, path = _video_path(cfg, ds, name, part, n)
        lo, hi = cfg.min_frames, cfg.max_frames
        frames = lo + stable_int(cfg.seed, ds, vid, "frames") % (hi - lo + 1)
        videos.append(Video(ds, vid, path, part, combo, frames))
    videos.sort(key=lambda v: v.path)
    first_test = min((v for v in videos if v.part == "test"), key=lambda v: v.video_id)
    videos = [dataclasses.replace(v, num_frames=cfg.short_clip_frames) if v is first_test else v
              for v in videos]
    ids = [v.video_id for v in videos]
    if len(set(ids)) != len(ids):
        raise UserError(f"{ds}: two demo videos got the same id; change the seed")
    return videos


