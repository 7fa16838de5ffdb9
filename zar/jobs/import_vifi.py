"""`zar import-vifi`: a ViFi-CLIP checkpoint as a zar backbone (zar.train.vifi)."""
from __future__ import annotations

from pathlib import Path
import argparse

from zar.train.vifi import import_vifi


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("checkpoint", type=Path, help="ViFi-CLIP checkpoint (.pth) of the K400-fine-tuned ViT-B/16")
    p.add_argument("--out", required=True, type=Path, help="output directory: model.safetensors + model.json")
    p.add_argument("--base", default="vitb16_openai",
                   help="architecture and the weights of keys the checkpoint lacks (default vitb16_openai)")


def outputs(args) -> list:
    return [(args.out, "dir"), (args.out / "model.safetensors", "file"), (args.out / "model.json", "file")]


def run(args: argparse.Namespace) -> int:
    report = import_vifi(args.checkpoint, args.out, args.base)
    print(f"wrote {args.out / 'model.safetensors'}: {len(report['filled_from_base'])} keys from the base, "
          f"{len(report['ignored_extras'])} prompt buffers ignored, {len(report['unused'])} keys unused")
    return 0
