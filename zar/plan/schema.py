"""The parts of the workflow's config schema that zar generates from its own declarations:
the `method` section (every settings section, zar.method.settings.settings_schema()) and the
names of the test-time methods (``$defs.method_name``, zar.method.testtime). Adding a method
or a setting changes them; ``make schema`` (``python -m zar.plan.schema PATH``) rewrites them
in place and tests/test_workflow.py fails while the file is behind.
"""
from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path

import yaml

WIDTH = 110  # the dump's line width, as the rest of the file is written


def _method_block() -> list[str]:
    from zar.method.settings import settings_schema

    text = yaml.safe_dump(settings_schema(), sort_keys=False, width=WIDTH, allow_unicode=True)
    return ["      " + line for line in text.splitlines()]


def _method_names_line() -> str:
    from zar.method.testtime import METHODS

    return (f"  method_name: {{type: string, enum: [{', '.join(METHODS)}], "
            f"description: a test-time method (zar.method.testtime)}}")


def refresh(text: str, name: str = "config.schema.yaml") -> str:
    """``text`` with its generated parts as zar declares them now."""
    lines = text.splitlines()
    names = [i for i, line in enumerate(lines) if line.startswith("  method_name:")]
    start = [i for i, line in enumerate(lines) if line == "  method:"]
    if len(names) != 1 or len(start) != 1:
        raise ValueError(f"{name}: expected one `  method_name:` line under $defs and one `  method:` section")
    lines[names[0]] = _method_names_line()
    props = next((i for i in range(start[0] + 1, len(lines)) if lines[i] == "    properties:"), None)
    if props is None:
        raise ValueError(f"{name}: the `method` section has no `    properties:` line")
    end = props + 1
    while end < len(lines) and (not lines[end].strip() or re.match(r" {6}", lines[end])):
        end += 1
    while end > props + 1 and not lines[end - 1].strip():  # keep the blank line before the next section
        end -= 1
    lines[props + 1:end] = _method_block()
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m zar.plan.schema", description=__doc__.split("\n\n")[0])
    p.add_argument("path", help="workflow/schemas/config.schema.yaml")
    p.add_argument("--check", action="store_true", help="only say whether the file is up to date (exit 1 if not)")
    args = p.parse_args(argv)
    path = Path(args.path)
    old = path.read_text()
    new = refresh(old, str(path))
    if args.check:
        if new != old:
            print(f"{path}: the generated parts are out of date: run `make schema`", file=sys.stderr)
            return 1
        return 0
    if new != old:
        path.write_text(new)
        print(f"{path}: generated parts rewritten")
    return 0


if __name__ == "__main__":
    sys.exit(main())
