"""What every result records about where it came from: git commit, package versions, host, device."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path
from typing import Any, Iterable


def git_commit(start: str | os.PathLike | None = None) -> str | None:
    """The commit of the repository holding ``start`` (default: this package), '+dirty' if changed."""
    start = Path(start) if start else Path(__file__).resolve().parent
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=start, capture_output=True, text=True, timeout=10
        )
        if sha.returncode != 0:
            return None
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=start, capture_output=True, text=True, timeout=10,
        )
        return sha.stdout.strip() + ("+dirty" if dirty.stdout.strip() else "")
    except (OSError, subprocess.TimeoutExpired):
        return None


_VERSION_PACKAGES = ("zar", "torch", "torchvision", "open_clip_torch", "decord", "av", "numpy", "pandas")


def package_versions(names: Iterable[str] = _VERSION_PACKAGES) -> dict[str, str | None]:
    from importlib import metadata

    out: dict[str, str | None] = {"python": sys.version.split()[0]}
    for n in names:
        try:
            out[n] = metadata.version(n)
        except metadata.PackageNotFoundError:
            out[n] = None
    return out


def provenance() -> dict[str, Any]:
    """What every result file records about where it came from."""
    import datetime
    import platform

    info: dict[str, Any] = {
        "git_commit": git_commit(),
        "versions": package_versions(),
        "host": platform.node(),
        "created": datetime.datetime.now(datetime.timezone.utc).isoformat(timespec="seconds"),
    }
    try:
        import torch

        info["device"] = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "cpu"
        info["torch_threads"] = torch.get_num_threads()  # CPU sums are reordered with the thread count
    except Exception:  # pragma: no cover - torch missing is reported by the versions
        info["device"] = None
    return info
