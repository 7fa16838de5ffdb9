"""`zar decode`: re-encode a dataset's videos to the normalised form (zar.data.decode, zar.data.layout)."""
from __future__ import annotations

import logging
from pathlib import Path
import argparse
import os

from zar.core.datasets import DATASETS
from zar.core.errors import UserError
from zar.core.splitfiles import VideoRow
from zar.data.decode import decode_all
from zar.data.manifest import read_lists
from zar.data.manifest import read_manifest
from zar.data.manifest import summary_line
from zar.data.media import sigterm_as_interrupt

log = logging.getLogger(__name__)


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=list(DATASETS),
                   help="which dataset")
    p.add_argument("--root", help="dataset folder (default data/<dataset>)")
    p.add_argument("--list", action="append", default=[], metavar="CSV",
                   help="video list(s) to normalise (default: every video of the download manifest)")
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1,
                   help="videos in parallel (default: number of cores)")
    p.add_argument("--short-side", type=int, default=256,
                   help="scale the shorter side down to this many pixels, never up (default 256, "
                        "what ViT-B/16 views resize to; smaller only for smaller models)")
    p.add_argument("--timeout", type=float, default=600.0,
                   help="seconds one video may take in all; past it the video is corrupt (default 600)")


def outputs(args) -> list:
    """The dataset folder it writes into (zar.cli checks them before any work)."""
    root = Path(args.root or f"data/{args.dataset}")
    outs = [(root, "dir")]
    return outs


def run(args: argparse.Namespace) -> int:
    root = Path(args.root or f"data/{args.dataset}")
    if args.short_side < 16:
        raise UserError("--short-side must be >= 16 pixels")
    if args.short_side < 256:
        log.warning("--short-side %d: smaller than the 256 pixels ViT-B/16 views resize to; "
                    "fine only for smaller models (e.g. the demo's)", args.short_side)
    if args.workers < 1 or args.timeout <= 0:
        raise UserError("--workers must be >= 1 and --timeout > 0")
    if args.list:
        entries = read_lists(args.list)
    else:
        dl = read_manifest(root / "download_manifest.csv")
        if not dl:
            raise UserError(f"{root / 'download_manifest.csv'}: not found; run zar download "
                            "first or give --list")
        entries = [VideoRow(r["video_id"], r["path"]) for r in dl.values()]
    with sigterm_as_interrupt():
        rows = decode_all(entries, root, short_side=args.short_side, workers=args.workers,
                          timeout=args.timeout)
    print(f"{args.dataset}: {summary_line([rows[e.video_id] for e in entries])}; "
          f"manifest {root / 'decode_manifest.csv'}")
    return 0
