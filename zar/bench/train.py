"""Training speed figures: ``zar bench train-step|train-data ...`` prints clips/s.

- ``step``: one optimizer step of the fine-tuning loss on random clips (no decoding): the
  model's cost per clip at a micro-batch, frame count and class count.
- ``data``: decoding + augmentation of a video list through the DataLoader with N workers:
  what the input pipeline delivers per process.

Figures are medians over the timed repetitions after warm-up; nothing is asserted.
"""
from __future__ import annotations

import statistics
import time


def bench_step(backbone: str, micro: int, frames: int, classes: int, steps: int, device: str | None) -> dict:
    import open_clip
    import torch

    from zar.model.backbone import build_model, parse_spec, register_configs
    from zar.train.augment import soft_cross_entropy, soft_targets
    from zar.model.backbone import autocast
    from zar.train.loop import VideoCLIP, trainable_parameters

    dev = torch.device(device or ("cuda" if torch.cuda.is_available() else "cpu"))
    spec = parse_spec(backbone)
    clip, pre = build_model(spec, dev)
    clip.train()
    register_configs()
    tokens = open_clip.get_tokenizer(spec.arch)([f"a photo of a class number {i}." for i in range(classes)]).to(dev)
    net = VideoCLIP(clip)
    opt = torch.optim.AdamW(trainable_parameters(clip), lr=1e-6, betas=(0.9, 0.98), weight_decay=0.001)
    x = torch.randn(micro, frames, 3, pre.image_size, pre.image_size, device=dev)
    y = soft_targets(torch.randint(classes, (micro,), device=dev), classes, 0.1)
    times = []
    for i in range(steps + 2):
        if dev.type == "cuda":
            torch.cuda.synchronize()
        t0 = time.perf_counter()
        with autocast(dev, "bf16"):
            logits = net(x, tokens)
        soft_cross_entropy(logits, y).mean().backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if dev.type == "cuda":
            torch.cuda.synchronize()
        if i >= 2:
            times.append(time.perf_counter() - t0)
    dt = statistics.median(times)
    out = {"what": "step", "backbone": backbone, "device": str(dev), "micro_batch": micro, "frames": frames,
           "classes": classes, "seconds_per_step": dt, "clips_per_s": micro / dt}
    if dev.type == "cuda":
        out["max_memory_gib"] = torch.cuda.max_memory_allocated() / 2**30
        out["gpu"] = torch.cuda.get_device_name(dev)
    return out


def bench_data(videos: str, classes: str, root: str, ext: str | None, image_size: int, frames: int,
               workers: int, clips: int) -> dict:
    import dataclasses

    import torch

    from zar.model.backbone import CLIP_MEAN, CLIP_STD
    from zar.train.data import TrainClips, collate, load_training_list, worker_init
    from zar.train.recipe import make_recipe

    recipe = dataclasses.replace(make_recipe({}), frames=frames)
    _, items = load_training_list(videos, classes, root, ext)
    ds = TrainClips(items, recipe, image_size, CLIP_MEAN, CLIP_STD)
    keys = [[(0, i % len(items), 0)] for i in range(clips)]
    loader = torch.utils.data.DataLoader(ds, batch_sampler=keys, num_workers=workers, collate_fn=collate,
                                         worker_init_fn=worker_init)
    t0, n, first = time.perf_counter(), 0, None
    for batch in loader:
        n += batch["clips"].shape[0]
        if first is None:
            first = time.perf_counter()
    total = time.perf_counter() - t0
    steady = (time.perf_counter() - first) / max(n - 1, 1)
    return {"what": "data", "workers": workers, "frames": frames, "image_size": image_size, "clips": n,
            "clips_per_s": n / total, "clips_per_s_after_first": 1.0 / steady if steady > 0 else None}


def add_step_arguments(s) -> None:
    s.add_argument("--backbone", default="ViT-B-16:none", help="backbone spec (weights do not matter for speed)")
    s.add_argument("--micro-batch", type=int, default=8)
    s.add_argument("--frames", type=int, default=16)
    s.add_argument("--classes", type=int, default=400)
    s.add_argument("--steps", type=int, default=10)
    s.add_argument("--device", default=None)


def add_data_arguments(d) -> None:
    d.add_argument("--videos", required=True)
    d.add_argument("--classes", required=True)
    d.add_argument("--root", required=True)
    d.add_argument("--ext", default=None)
    d.add_argument("--image-size", type=int, default=224)
    d.add_argument("--frames", type=int, default=16)
    d.add_argument("--workers", type=int, default=4)
    d.add_argument("--clips", type=int, default=64)


def run_bench(a) -> int:
    """`zar bench train-step|train-data`: one JSON line of figures."""
    import json

    if a.what == "train-step":
        figures = bench_step(a.backbone, a.micro_batch, a.frames, a.classes, a.steps, a.device)
    else:
        figures = bench_data(a.videos, a.classes, a.root, a.ext, a.image_size, a.frames, a.workers, a.clips)
    print(json.dumps(figures))
    return 0
