"""`zar download`: fetch a dataset (Kinetics, UCF101, HMDB51, or the demo's synthetic videos) with a manifest (zar.data.download)."""
from __future__ import annotations

from pathlib import Path
import argparse

from zar.core.datasets import DATASETS
from zar.core.datasets import SOURCES
from zar.core.errors import UserError
from zar.data.download import Downloader, write_annotation_lists
from zar.data.fetch import FetchError
from zar.data.manifest import read_lists
from zar.data.manifest import summary_line
from zar.data.media import sigterm_as_interrupt
from zar.data.urls import LOCK_NAME
from zar.data.urls import SourceLock
from zar.data.urls import load_sources


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dataset", required=True, choices=list(DATASETS), help="which dataset")
    p.add_argument("--source", choices=SOURCES,
                   help="where videos come from: Kinetics 'cvdf' (default) or 'youtube'; "
                        "UCF101/HMDB51 'official' (default); 'synthetic': the demo's generated videos "
                        "(--demo-config), written straight in the normalised form of `zar decode`")
    p.add_argument("--demo-config", metavar="FILE",
                   help="synthetic source: YAML overriding the demo dataset settings (zar.data.demo.DemoConfig)")
    p.add_argument("--root", help="dataset folder (default data/<dataset>)")
    p.add_argument("--list", action="append", default=[], metavar="CSV",
                   help="video list(s) to fetch (shared video-list format; repeatable). "
                        "Kinetics needs one; UCF101/HMDB51 default to every video of the "
                        "official split files")
    p.add_argument("--annotations", action="store_true",
                   help="Kinetics: fetch the train/val annotation CSVs and write "
                        "<root>/lists/{train,val}.csv and classes.csv; fetch no videos")
    p.add_argument("--workers", type=int, default=4, help="parallel downloads (default 4)")
    p.add_argument("--rate-limit", type=float, default=10.0, metavar="N",
                   help="YouTube: start at most N clips per minute over all workers "
                        "(default 10; 0 = no limit)")
    p.add_argument("--retries", type=int, default=3,
                   help="retries of a failed transfer, with exponential backoff (default 3)")
    p.add_argument("--retry-gone", action="store_true",
                   help="YouTube: ask again for videos an earlier run found gone")
    p.add_argument("--keep-archives", action="store_true",
                   help="keep downloaded archives after extraction (default: delete them)")
    p.add_argument("--sources", metavar="FILE",
                   help="YAML/JSON overriding URLs and sha256 pins of zar/data/urls.py")
    p.add_argument("--lock", metavar="FILE",
                   help="lock file of the sha256 seen at each URL's first download, verified by later "
                        "runs (default <root>/sources.lock.json)")


def outputs(args) -> list:
    """The dataset folder it writes into, and the lock file (zar.cli checks them before any work)."""
    root = Path(args.root or f"data/{args.dataset}")
    outs = [(root, "dir")]
    lock = Path(args.lock) if args.lock else root / LOCK_NAME
    if not lock.is_file():  # an existing lock is read and written: not an output that replaces an input
        outs.append((lock, "file"))
    return outs


def run(args: argparse.Namespace) -> int:
    ds = args.dataset
    root = Path(args.root or f"data/{ds}")
    if args.source == "synthetic":
        from zar.data.demo import load_config, write_videos

        write_videos(load_config(args.demo_config), ds, root)
        print(f"{ds}: synthetic videos and manifest under {root}")
        return 0
    kinetic = DATASETS[ds].kinetics
    source = args.source or DATASETS[ds].sources[0]
    if source not in DATASETS[ds].sources:
        raise UserError(f"--source {source} does not apply to {ds} (it has {', '.join(DATASETS[ds].sources)})")
    sources = load_sources(args.sources)
    lock = SourceLock(args.lock or root / LOCK_NAME)
    if args.annotations:
        if not kinetic:
            raise UserError("--annotations is for Kinetics (k400, k600)")
        try:
            write_annotation_lists(ds, root, sources, retries=args.retries, lock=lock)
        except FetchError as e:
            raise UserError(f"download failed: {e.reason}") from None
        return 0
    entries = read_lists(args.list) if args.list else None
    if kinetic and entries is None:
        raise UserError(f"give --list CSV (e.g. splits/k600/zeroshot/split1/test.csv, or "
                        f"{root}/lists/train.csv made by --annotations)")
    if args.workers < 1 or args.retries < 0:
        raise UserError("--workers must be >= 1 and --retries >= 0")
    d = Downloader(ds, root, source, sources, workers=args.workers, rate_limit=args.rate_limit,
                   retries=args.retries, retry_gone=args.retry_gone, keep_archives=args.keep_archives,
                   lock=lock)
    try:
        with sigterm_as_interrupt():
            rows = d.run(entries)
    except FetchError as e:
        raise UserError(f"download failed: {e.reason}") from None
    listed = [rows[e.video_id] for e in d.entries]
    print(f"{ds}: {summary_line(listed)}; manifest {d.manifest_path}")
    return 0
