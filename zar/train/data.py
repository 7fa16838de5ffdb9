"""Training data: the video list, the class prompts, the per-step batch plan, the Dataset.

The plan is a pure function of (seed, epoch): a permutation of the list; global step s
takes positions ``[s B, (s + 1) B)`` of it (the rest of an epoch is dropped, as with
``drop_last``); within a step, accumulation round a and process r read the contiguous
slice starting at ``(a * world + r) * micro``. Changing the number of processes or the
accumulation therefore changes which process reads a clip, never which clips form a step.
"""
from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import torch
from torch.utils.data import Dataset, Sampler

from zar.core.splitfiles import ClassList, read_classes, read_videos
from zar.train.augment import clip_generator, apply_clip_aug, sample_clip_aug, segment_indices
from zar.core.errors import UserError
from zar.core.files import stable_int
from zar.video import VideoDecodeError, read_video

log = logging.getLogger(__name__)

@dataclass(frozen=True)
class VideoItem:
    video_id: str
    path: str  # the file to read (root joined, suffix replaced)
    label: int


def load_training_list(videos: str | Path, classes: str | Path, root: str | Path,
                       ext: str | None = None) -> tuple[ClassList, list[VideoItem]]:
    """The class list and the labelled training videos (formats: zar.core.splitfiles)."""
    class_list = read_classes(classes)
    rows = read_videos(videos, class_list, root, ext)
    unlabelled = [r.video_id for r in rows if r.class_index < 0]
    if unlabelled:
        raise UserError(f"{videos}: {len(unlabelled)} rows have no class label (e.g. {unlabelled[0]!r})")
    if not rows:
        raise UserError(f"{videos}: no videos")
    return class_list, [VideoItem(r.video_id, r.path, r.class_index) for r in rows]


def class_prompts(classes: ClassList, template: str) -> list[str]:
    return [template.replace("{c}", t) for t in classes.texts]


# ----------------------------------------------------------------------------- plan
def epoch_order(n: int, seed: int, epoch: int) -> list[int]:
    g = torch.Generator().manual_seed(stable_int(seed, "order", epoch))
    return torch.randperm(n, generator=g).tolist()


@dataclass(frozen=True)
class Layout:
    batch_size: int  # global
    micro: int  # per process and forward pass
    world: int
    accum: int

    @classmethod
    def make(cls, batch_size: int, micro: int, world: int, mixing: bool) -> "Layout":
        if batch_size % (micro * world):
            raise UserError(
                f"global batch {batch_size} is not a multiple of micro-batch {micro} x {world} processes; "
                "choose a micro-batch that divides batch / processes")
        if mixing and micro % 2:
            raise UserError(f"mixup/cutmix pair clips within a micro-batch: micro-batch {micro} must be even")
        return cls(batch_size, micro, world, batch_size // (micro * world))


def steps_per_epoch(n_videos: int, batch_size: int) -> int:
    return n_videos // batch_size


class StepBatches(Sampler):
    """The micro-batches one process reads in one epoch, from ``start_step`` on.

    Each yields keys ``(epoch, video index, position in the step's global batch)``.
    """

    def __init__(self, n_videos: int, layout: Layout, rank: int, seed: int, epoch: int = 0, start_step: int = 0):
        self.n, self.layout, self.rank, self.seed = n_videos, layout, rank, seed
        self.steps = steps_per_epoch(n_videos, layout.batch_size)
        self.set_epoch(epoch, start_step)

    def set_epoch(self, epoch: int, start_step: int = 0) -> None:
        """Read ``epoch`` from ``start_step`` on at the next ``iter()``."""
        self.epoch, self.start = epoch, start_step

    def __len__(self) -> int:
        return max(self.steps - self.start, 0) * self.layout.accum

    def __iter__(self) -> Iterator[list[tuple[int, int, int]]]:
        order = epoch_order(self.n, self.seed, self.epoch)
        L = self.layout
        for s in range(self.start, self.steps):
            base = s * L.batch_size
            for a in range(L.accum):
                lo = (a * L.world + self.rank) * L.micro
                yield [(self.epoch, order[base + p], p) for p in range(lo, lo + L.micro)]


# ----------------------------------------------------------------------------- dataset
class TrainClips(Dataset):
    """Decodes and augments one training clip per key ``(epoch, index, position)``.

    A video that cannot be decoded is replaced by another one drawn deterministically from
    (seed, epoch, index, attempt); the sample carries the list of videos it skipped.
    """

    def __init__(self, items: list[VideoItem], recipe, image_size: int, mean, std, interpolation: str = "bicubic"):
        self.items, self.recipe = items, recipe
        self.image_size, self.mean, self.std, self.interpolation = image_size, mean, std, interpolation
        self._frames: dict[int, object] = {}  # recipe.cache_frames: video index -> all its frames

    def _read(self, j: int, seed: int):
        """The clip's frames: read just those, or (cache_frames) all once, then index them."""
        r = self.recipe
        item = self.items[j]
        if not r.cache_frames:
            frames, _ = read_video(item.path, lambda info: segment_indices(info.num_frames, r.frames, seed),
                                   backend=r.video_backend, timeout=r.decode_timeout)
            return frames
        if j not in self._frames:
            self._frames[j], _ = read_video(item.path, lambda info: range(info.num_frames),
                                            backend=r.video_backend, timeout=r.decode_timeout)
        every = self._frames[j]
        return every[segment_indices(len(every), r.frames, seed)]

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, key: tuple[int, int, int]) -> dict:
        epoch, index, position = key
        r = self.recipe
        skipped: list[tuple[str, str]] = []
        j = index
        for attempt in range(r.max_replacements + 1):
            item = self.items[j]
            frame_seed = stable_int(r.seed, "frames", epoch, index, attempt)
            try:
                frames = self._read(j, frame_seed)
            except VideoDecodeError as e:
                log.warning("skipping undecodable video %s (%s)", item.video_id, e.reason)
                skipped.append((item.video_id, e.reason))
                n = len(self.items)  # another video than the one that failed
                j = (j + 1 + stable_int(r.seed, "replace", epoch, index, attempt) % max(n - 1, 1)) % n
                continue
            g = clip_generator(r.seed, "aug", epoch, index, attempt)
            aug = sample_clip_aug(frames.shape[1], frames.shape[2], self.image_size, r, g)
            clip = apply_clip_aug(frames, aug, self.image_size, self.mean, self.std, self.interpolation)
            return {"clip": clip, "label": item.label, "position": position, "skipped": skipped}
        raise RuntimeError(
            f"{len(skipped)} videos in a row could not be decoded (last: {skipped[-1][0]}: {skipped[-1][1]}); "
            "check the video root and --ext")


def collate(batch: list[dict]) -> dict:
    return {
        "clips": torch.stack([b["clip"] for b in batch]),
        "labels": torch.tensor([b["label"] for b in batch], dtype=torch.long),
        "positions": torch.tensor([b["position"] for b in batch], dtype=torch.long),
        "skipped": [s for b in batch for s in b["skipped"]],
    }


def worker_init(_worker_id: int) -> None:
    """One thread per loader process; stop signals are for the training process, which
    shuts its loaders down itself after writing a state file."""
    import signal

    torch.set_num_threads(1)
    for sig in (signal.SIGTERM, signal.SIGUSR1):
        signal.signal(sig, signal.SIG_IGN)
