"""`zar train`: the command line of the fine-tuning (see :mod:`zar.train`)."""
from __future__ import annotations

import argparse
import dataclasses
from pathlib import Path


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--videos", required=True, type=Path, help="training list (video-list CSV)")
    p.add_argument("--classes", required=True, type=Path,
                   help="classes.csv the list's class_index refers to; every class's prompt is in the loss")
    p.add_argument("--root", required=True, type=Path, help="video root; the list's paths are relative to it")
    p.add_argument("--ext", default=None,
                   help="replace each path's suffix by this one, e.g. .mp4 for the normalised copies")
    p.add_argument("--out", required=True, type=Path, help="output directory of the run")
    p.add_argument("--backbone", default="vitb16_openai",
                   help="initial weights: a backbone name, ARCH:PRETRAINED, or a zar checkpoint (default vitb16_openai)")
    p.add_argument("--recipe", default="k400",
                   help="hyper-parameters: preset k400, b2n or tiny, or a YAML file of overrides (default k400)")
    p.add_argument("--resume", action="store_true",
                   help="continue from the newest state file in OUT/state (start afresh if there is none)")
    p.add_argument("--micro-batch", type=int, default=None,
                   help="clips per process per forward pass (overrides the recipe; changes only the float summation order)")
    p.add_argument("--frames", type=int, default=None,
                   help="frames per training clip (overrides the recipe; the K400 and b2n recipes use 16)")
    p.add_argument("--workers", type=int, default=None, help="data-loading worker processes per process")
    p.add_argument("--device", default=None, help="cpu or cuda (default: cuda when available)")
    p.add_argument("--stop-after-epoch", type=int, default=None,
                   help="write a state file and stop after this many epochs (continue later with --resume)")


def outputs(args) -> list:
    return [(args.out, "dir"), (args.out / "model.safetensors", "file"), (args.out / "model.json", "file")]


def run(args: argparse.Namespace) -> int:
    from zar.train.loop import TrainJob, train
    from zar.train.recipe import load_recipe

    recipe = load_recipe(args.recipe)
    changes = {}
    if args.micro_batch is not None:
        changes["micro_batch"] = args.micro_batch
    if args.workers is not None:
        changes["num_workers"] = args.workers
    if args.frames is not None:
        changes["frames"] = args.frames
    if changes:
        recipe = dataclasses.replace(recipe, **changes)
    job = TrainJob(videos=args.videos, classes=args.classes, root=args.root, out=args.out, recipe=recipe,
                   backbone=args.backbone, ext=args.ext, resume=args.resume, device=args.device,
                   stop_after_epoch=args.stop_after_epoch)
    return train(job)
