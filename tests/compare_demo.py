"""Compare two demo runs file by file: are they the same to the byte, but for time?

    python tests/compare_demo.py RUN_A/demo RUN_B/demo

Every file under data/, splits/ and results/ of both folders is compared byte for byte. A file
that differs is compared by content where it is a result (.json, .jsonl, .pt), leaving out the
fields that measure time (seconds, ms per video, peak memory, creation times, the video files'
modification times); any other difference is reported. The rendered tables' .md/.html/.tex and
the figures that show measured time are listed apart. Exit status 1 when anything differs
beyond time.
"""
from __future__ import annotations

import json
import sys
from pathlib import Path

# what measures time, and the sha256 of files that hold such fields (an embedding cache, as a
# result's input); the files a sha256 names are themselves compared here
TIME_KEYS = {"seconds", "created", "ms_per_video", "mean_seconds_per_video", "cost", "memory", "devices",
             "mtime_ns", "clips_per_s", "provenance", "sha256"}
SHOWS_TIME = ("results/table1.", "results/table6.", "results/figures/testtime_cost.")


def _is_time(key: str) -> bool:
    return key in TIME_KEYS or key.endswith("_seconds") or key.endswith("seconds_per_video")


def same(a, b, where: str, out: list[str]) -> None:
    """Append to ``out`` each place where ``a`` and ``b`` differ beyond time."""
    import torch

    if isinstance(a, torch.Tensor) or isinstance(b, torch.Tensor):
        if not (isinstance(a, torch.Tensor) and isinstance(b, torch.Tensor) and a.shape == b.shape
                and torch.equal(a, b)):
            out.append(f"{where}: tensors differ")
    elif isinstance(a, dict) and isinstance(b, dict):
        for k in sorted(set(a) | set(b), key=str):
            if not _is_time(str(k)):
                same(a.get(k), b.get(k), f"{where}.{k}", out)
    elif isinstance(a, (list, tuple)) and isinstance(b, (list, tuple)):
        if len(a) != len(b):
            out.append(f"{where}: {len(a)} != {len(b)} items")
        for i, (x, y) in enumerate(zip(a, b)):
            same(x, y, f"{where}[{i}]", out)
    elif a != b:
        out.append(f"{where}: {str(a)[:60]!r} != {str(b)[:60]!r}")


def load(path: Path):
    if path.suffix == ".pt":
        import torch

        return torch.load(path, weights_only=True)
    if path.suffix == ".jsonl":
        return [json.loads(line) for line in path.read_text().splitlines()]
    return json.loads(path.read_text())


def compare(a: Path, b: Path) -> int:
    files = {}
    for root in (a, b):
        for top in ("data", "splits", "results"):
            for p in (root / top).rglob("*"):
                if p.is_file():
                    files.setdefault(str(p.relative_to(root)), set()).add(root)
    only = sorted(f for f, roots in files.items() if len(roots) == 1)
    identical, timing, shows_time, real = 0, [], [], []
    for rel in sorted(set(files) - set(only)):
        x, y = a / rel, b / rel
        if x.read_bytes() == y.read_bytes():
            identical += 1
        elif x.suffix in (".json", ".jsonl", ".pt"):
            diffs: list[str] = []
            same(load(x), load(y), rel, diffs)
            (real if diffs else timing).append(rel if not diffs else f"{rel}: {diffs[0]}")
        elif rel.startswith(SHOWS_TIME):
            shows_time.append(rel)
        else:
            real.append(f"{rel}: bytes differ")
    print(f"{len(files)} files: {identical} byte-identical, {len(timing)} differ only in time fields, "
          f"{len(shows_time)} show measured time (Table 1's cost lines, Table 6, the cost figure), "
          f"{len(real)} differ otherwise, {len(only)} in one run only")
    for line in shows_time:
        print(f"  shows time: {line}")
    for line in only[:20] + real[:50]:
        print(f"  DIFFERS: {line}")
    return 1 if real or only else 0


if __name__ == "__main__":
    if len(sys.argv) != 3:
        sys.exit(__doc__)
    sys.exit(compare(Path(sys.argv[1]), Path(sys.argv[2])))
