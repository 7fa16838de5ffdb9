"""The demo's results, for the tests that read them (CI runs the demo before the tests)."""
from __future__ import annotations

from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
DEMO = ROOT / "demo"


def demo_config() -> dict:
    """The demo's config, checked against the schema and with its defaults filled in."""
    from snakemake.utils import validate

    cfg = yaml.safe_load((DEMO / "config/config.yaml").read_text())
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return cfg


def require(paths) -> None:
    """Fail, saying how to make them, when any of the demo's files ``paths`` (relative to demo/) is missing."""
    missing = [p for p in paths if not (DEMO / p).exists()]
    if missing:
        pytest.fail(f"the demo's results are missing ({len(missing)} files, e.g. demo/{missing[0]}): run the demo "
                    "first: snakemake --cores all --directory demo all  (or: make demo)")
