"""`zar tables`: render a paper table from result files (zar.report.tables)."""
from __future__ import annotations

from pathlib import Path
import json

from zar.core.errors import UserError
from zar.core.files import atomic_write_text
from zar.core.files import read_json
from zar.report.tables import compute, render_csv, render_html, render_md, render_tex


def add_arguments(p) -> None:
    p.add_argument("--spec", required=True, help="the table spec as JSON text or a .json file (the workflow writes it)")
    p.add_argument("--out", required=True,
                   help="output prefix: writes PREFIX.md, PREFIX.tex, PREFIX.csv and PREFIX.html (for the report)")


def outputs(args) -> list:
    return [(Path(args.out).with_suffix(ext), "file") for ext in (".csv", ".tex", ".md", ".html")]


def read_spec(text: str) -> dict:
    """``--spec``: a .json file, or the JSON text itself; anything else is a one-line error."""
    if not text.lstrip().startswith(("{", "[")):
        spec = read_json(text, "table spec")
    else:
        try:
            spec = json.loads(text)
        except json.JSONDecodeError as e:
            raise UserError(f"--spec: neither a .json file nor JSON text ({e})") from None
    if not isinstance(spec, dict) or not {"table", "columns", "rows"} <= set(spec):
        raise UserError(f"--spec {text[:60]!r}: not a table spec (a JSON object with table, columns and rows)")
    return spec


def run(args) -> int:
    spec = read_spec(args.spec)
    records = compute(spec)
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".csv"), render_csv(records))
    atomic_write_text(out.with_suffix(".tex"), render_tex(spec, records))
    md = render_md(spec, records)
    atomic_write_text(out.with_suffix(".md"), md)
    atomic_write_text(out.with_suffix(".html"), render_html(spec, md))
    print(md)
    return 0
