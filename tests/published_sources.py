"""Where the tests find the published split sources, and the skip when they are not complete.

ZAR_SPLITS_SOURCES, else the repository's cache (`zar splits build` fetches them there), else an
offline mirror beside the repository. A folder counts only when it holds every pinned file: an
audit without network may leave a partial cache, and a partial mirror is not a mirror.
"""
from __future__ import annotations

import os
from pathlib import Path

import pytest

from zar.splits.published import SOURCES

ROOT = Path(__file__).resolve().parents[1]
CANDIDATES = (ROOT / "resources" / "reference", ROOT.parent / "shared" / "reference")


def missing(folder: Path) -> list[str]:
    """The pinned source files that ``folder`` does not hold."""
    return [s.local for s in SOURCES if not (folder / s.local).is_file()]


MIRROR = Path(os.environ.get("ZAR_SPLITS_SOURCES") or next(
    (p for p in CANDIDATES if not missing(p)), CANDIDATES[0]))


def mirror_or_skip() -> Path:
    """The complete mirror, or skip the test saying what is missing."""
    gone = missing(MIRROR)
    if gone:
        pytest.skip(f"published split sources not complete in {MIRROR}: {len(gone)} of {len(SOURCES)} "
                    f"pinned files missing (e.g. {gone[0]}); set ZAR_SPLITS_SOURCES or run "
                    "`zar splits audit` with network")
    return MIRROR
