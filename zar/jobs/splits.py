"""``zar splits build|audit``: build the split files from the published sources, or audit them."""
from __future__ import annotations

import argparse
import sys

from zar.splits.published import DEFAULT_FETCH_DIR, DEFAULT_SOURCES


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="action", required=True, metavar="{build,audit}")
    for name, help_text in (
        ("build", "derive splits/ from the pinned source files (deterministic, byte-stable)"),
        ("audit", "check every invariant of a splits folder; exit 1 on any violation"),
    ):
        p = sub.add_parser(name, help=help_text, description=help_text)
        p.add_argument("--splits", default="splits", metavar="DIR",
                       help="the splits folder to write (build) or check (audit) (default: splits)")
        p.add_argument("--sources", default=DEFAULT_SOURCES, metavar="DIR",
                       help="mirror of the source files as <owner>__<name>/<path> (default: the "
                            f"repository's cache {DEFAULT_SOURCES}, relative to the current directory, "
                            "where missing files are downloaded at their pinned commits). The audit "
                            "rebuilds from the sources and compares byte for byte")
        p.add_argument("--fetch", nargs="?", const=DEFAULT_FETCH_DIR, default=None, metavar="CACHE",
                       help="download source files missing from --sources into CACHE (default: "
                            f"{DEFAULT_FETCH_DIR}; on by default when --sources is left at its default) "
                            "from raw.githubusercontent.com; each must match its pinned sha256")
        p.add_argument("--no-fetch", action="store_true", help="never download: use --sources as it is")
        if name == "build":
            p.add_argument("--builder", choices=("reference", "demo"), default="reference",
                           help="reference (default): the published files; demo: the synthetic demo's "
                                "splits (--demo-config)")
            p.add_argument("--demo-config", default=None, metavar="FILE",
                           help="demo builder: YAML overriding the demo dataset settings")
        if name == "audit":
            p.add_argument("--expect", choices=("reference", "demo"), default="reference",
                           help="reference (default): the published splits with their official counts "
                                "and a rebuild from the sources; demo: only the checks that hold for any "
                                "folder in the split layout (the demo's synthetic splits)")


def run(args: argparse.Namespace) -> int:
    if args.fetch is None and args.sources == DEFAULT_SOURCES:
        args.fetch = DEFAULT_FETCH_DIR  # a plain clone: fetch the pinned files into the repository's cache
    if args.no_fetch:
        args.fetch = None
    if args.action == "build":
        if args.builder == "demo":
            from pathlib import Path

            from zar.data.demo import load_config, write_splits

            files = write_splits(load_config(args.demo_config), Path(args.splits))
        else:
            from zar.splits.build import build

            files = build(args.sources, args.splits, args.fetch)
        print(f"zar splits build: {len(files)} files in {args.splits}")
        return 0
    from zar.splits.audit import audit, audit_generic

    a = audit_generic(args.splits) if args.expect == "demo" else audit(args.splits, args.sources, args.fetch)
    for n in a.notes:
        print(f"note: {n}")
    if a.violations:
        for v in a.violations:
            print(f"FAIL {v}", file=sys.stderr)
        print(f"zar splits audit: {len(a.violations)} violation(s) in {args.splits}", file=sys.stderr)
        return 1
    print(f"zar splits audit: {args.splits} OK ({len(a.classes)} class lists, "
          f"{len(a.videos)} video lists, {sum(map(len, a.videos.values())):,} rows)")
    return 0
