"""Progress of long loops: tqdm on a terminal, log lines otherwise."""
from __future__ import annotations

import logging
import sys
from typing import Iterable


log = logging.getLogger(__name__)


def progress(iterable: Iterable, total: int | None = None, desc: str = "", every: int = 50):
    """tqdm on a terminal; plain log lines (every ``every`` items) otherwise (e.g. rule logs)."""
    if sys.stderr.isatty():
        from tqdm import tqdm

        yield from tqdm(iterable, total=total, desc=desc, dynamic_ncols=True)
        return
    n = 0
    for item in iterable:
        yield item
        n += 1
        if n % every == 0 or (total is not None and n == total):
            log.info("%s %d/%s", desc, n, total if total is not None else "?")
