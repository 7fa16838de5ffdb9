"""The `zar` command line: one verb per workflow step.

Each verb lives in its own module, imported only when that verb runs, so `zar --help`
stays fast. A verb module provides ``add_arguments(parser)`` and ``run(args) -> int``.
"""
from __future__ import annotations

import argparse
import importlib
import logging
import sys

from zar.core.errors import UserError

# verb -> (module, one-line help)
VERBS: dict[str, tuple[str, str]] = {
    "evaluate": ("zar.jobs.evaluate", "run vanilla CLIP or ZAR over a list of videos"),
    "encode": ("zar.jobs.encode", "encode every view of every video once; cache the embeddings"),
    "tune": ("zar.jobs.tune", "test-time prompt tuning from cached embeddings (one method variant)"),
    "splits": ("zar.jobs.splits", "build or audit the committed split files"),
    "download": ("zar.jobs.download", "download a dataset (Kinetics, UCF101, HMDB51) with a manifest"),
    "decode": ("zar.jobs.decode", "re-encode videos to a uniform, fast-to-seek form"),
    "train": ("zar.jobs.train", "fine-tune CLIP on videos (K400 or 16-shot base classes)"),
    "import-vifi": ("zar.jobs.import_vifi", "import a ViFi-CLIP checkpoint as a zar backbone"),
    "tables": ("zar.jobs.tables", "render a paper table from result files"),
    "fetch-weights": ("zar.jobs.fetch_weights", "download backbone weights into the cache (needs network)"),
    "bench": ("zar.jobs.bench", "speed figures: zar's pipeline against a reference, training, the video reader"),
    "figures": ("zar.jobs.figures", "draw the report's figures (perclass, ablation, tsne, attention)"),
    "check": ("zar.jobs.check", "check that every rule fits the SLURM partition it is sent to (check cluster)"),
    "predict": ("zar.jobs.predict", "ZAR on one video with your own class names: top-5 before and after tuning"),
}
VERB_HELP = {k: v[1] for k, v in VERBS.items()}


def _entry(verb: str):
    mod = importlib.import_module(VERBS[verb][0])
    return mod.add_arguments, mod.run, getattr(mod, "outputs", _default_outputs)


def _default_outputs(args) -> list:
    """A verb's outputs, for the check against its inputs: its ``--out`` file, where it has one
    (a verb that writes more, or a folder, says so with its own ``outputs(args)``)."""
    from pathlib import Path

    out = getattr(args, "out", None)
    return [(Path(out), "file")] if isinstance(out, (str, Path)) else []


def _top_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="zar",
        description="ZAR benchmark: zero-shot action recognition with test-time prompt tuning.",
        formatter_class=argparse.RawDescriptionHelpFormatter,
        epilog="verbs:\n" + "\n".join(f"  {k:<14} {v}" for k, v in VERB_HELP.items()),
    )
    p.add_argument("verb", nargs="?", help="one of the verbs below")
    p.add_argument("--version", action="store_true", help="print the version and exit")
    return p


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in VERBS:
        args, _ = _top_parser().parse_known_args(argv)
        if args.version:
            from zar import __version__

            print(__version__)
            return 0
        _top_parser().print_help()
        if args.verb:
            print(f"\nzar: unknown verb {args.verb!r}", file=sys.stderr)
        return 2
    verb, rest = argv[0], argv[1:]
    add_arguments, run, outputs = _entry(verb)
    parser = argparse.ArgumentParser(prog=f"zar {verb}", description=VERB_HELP.get(verb))
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    add_arguments(parser)
    args = parser.parse_args(rest)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.WARNING,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
        datefmt="%H:%M:%S",
    )
    logging.getLogger("zar").setLevel(logging.DEBUG if args.verbose else logging.INFO)
    try:
        from zar.core.files import check_outputs, input_files

        from zar.core.splitfiles import check_ext

        check_ext(getattr(args, "ext", None))  # every verb with --ext: a suffix, never a path
        check_outputs(outputs(args), input_files(vars(args)))  # before any work
        return int(run(args) or 0)
    except KeyboardInterrupt:
        print("zar: interrupted", file=sys.stderr)
        return 130
    except UserError as e:  # expected, explained failures: no traceback
        print(f"zar {verb}: error: {e}", file=sys.stderr)
        return 2
    except OSError as e:
        line = storage_error(e)
        if line is None:
            raise
        print(f"zar {verb}: error: {line}", file=sys.stderr)
        return 2


def storage_error(e: OSError) -> str | None:
    """One line for what the machine refused (a full disk or quota, a read-only file system, a
    permission, a name too long), naming the file; None for an error that is a bug."""
    import errno

    kinds = {errno.ENOSPC: "no space left on device", errno.EDQUOT: "disk quota exceeded",
             errno.EROFS: "read-only file system", errno.EACCES: "permission denied",
             errno.EPERM: "operation not permitted", errno.ENAMETOOLONG: "file name too long"}
    if e.errno not in kinds:
        return None
    where = " -> ".join(str(f) for f in (e.filename, e.filename2) if f is not None)
    hint = " (free some space and run again: the run resumes where it stopped)" \
        if e.errno in (errno.ENOSPC, errno.EDQUOT) else ""
    return f"{kinds[e.errno]}{': ' + where if where else ''}{hint}"


def entry() -> None:
    """The console script: run, then leave without the interpreter's slow teardown.

    Tearing down torch and its CUDA libraries takes one to two seconds per process, which
    adds up over the hundreds of short jobs of a workflow. Exit handlers still run (they
    stop the video-reader workers and free their shared memory), streams are flushed.
    """
    import atexit
    import os

    try:
        rc = main()
    except SystemExit as e:  # argparse errors and --help
        rc = e.code if isinstance(e.code, int) else (0 if e.code is None else 2)
    logging.shutdown()
    atexit._run_exitfuncs()
    sys.stdout.flush()
    sys.stderr.flush()
    os._exit(rc)


if __name__ == "__main__":
    entry()
