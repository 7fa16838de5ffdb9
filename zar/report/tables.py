"""`zar tables`: render one of the paper's tables from result files, beside the paper's numbers.

What a table holds (title, paper numbers, derived columns, digits) is its declaration in
zar.report.table_registry; the spec the workflow writes (zar.plan.table_spec) names its rows,
columns and the result file behind each cell. Nothing here depends on which table it is.

Writes ``<out>.md``, ``<out>.tex``, the ``<out>.csv`` they are rendered from and an HTML
page of the table (``<out>.html``, for the Snakemake report). Every cell is
the mean ± sample std (ddof=1) over splits (or shot lists) of a top-1 % (each row says which:
after tuning, before it, or the views' ensemble), with the number of videos evaluated of
those listed. The paper's number and the difference sit beside a row only where the row was
measured the way the paper measured it (``paper`` in the row); a demo table (synthetic
data) shows ours, chance level and the videos evaluated only. Rows of other methods are
marked as quoted from the paper. Table 1 ends with the cost of each run per video.
"""
from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from zar.core.metrics import harmonic_mean, mean_std
from zar.report.table_registry import CITATION, Table, get
from zar.core.errors import UserError
from zar.core.files import read_json


def _decl(spec: dict) -> Table:
    return get(spec["table"])


def title(spec: dict) -> str:
    """The table's title, with the number of runs (splits or shot lists) behind each cell."""
    first = spec["columns"][0] if spec["columns"] else None  # a column of the table's own runs (not a derived one)
    n = max((len(row["cells"][first]) for row in spec["rows"] if first in row["cells"]), default=0)
    return _decl(spec).title.format(n=n)


def _fmt(mean: float | None, std: float | None = None, digits: int = 1, *, none: str = "—",
         pm: str = " ± ") -> str:
    if mean is None:
        return none
    return f"{mean:.{digits}f}" + (f"{pm}{std:.{digits}f}" if std is not None else "")


def _diff(ours: float | None, ref: float | None, digits: int = 1) -> str:
    if ours is None or ref is None:
        return "—"
    return f"{ours - ref:+.{digits}f}"


def load_cell(files: list[str], metric: str = "top1") -> dict[str, Any]:
    top1, n_eval, n_list, n_classes = [], 0, 0, set()
    for f in files:
        s = read_json(f)
        if metric not in s:
            raise UserError(f"{f}: not a zar result summary with {metric} (re-run its tuning job)")
        top1.append(s[metric])
        n_eval += int(s["n_evaluated"])
        n_list += int(s["n_listed"])
        if s.get("classes"):
            n_classes.add(len(s["classes"]))
    m, sd = mean_std(top1)
    return {"mean": m, "std": sd, "values": top1, "n_evaluated": n_eval, "n_listed": n_list, "files": files,
            "n_classes": n_classes.pop() if len(n_classes) == 1 else None}


def _paper_value(spec: dict, row: dict, col: str) -> tuple[float | None, float | None]:
    if spec.get("demo") or not row.get("paper", row.get("key")):
        return None, None  # synthetic data, or a row the paper has no number for measured alike
    return _decl(spec).paper(row, col)


def compute(spec: dict) -> list[dict[str, Any]]:
    """One record per (row, column): ours, the paper's, the difference, the video counts."""
    out, derived, decl = [], _decl(spec).derived, _decl(spec)
    for row in spec["rows"]:
        cells = {col: load_cell(files, decl.column_metrics.get(col.split(":")[-1], row.get("metric", "top1")))
                 for col, files in row["cells"].items()}
        for col, (a, b) in derived.items():  # the harmonic mean of two columns' means
            cells[col] = {"mean": harmonic_mean(cells[a]["mean"], cells[b]["mean"]), "std": None, "values": [],
                          "n_evaluated": cells[a]["n_evaluated"] + cells[b]["n_evaluated"],
                          "n_listed": cells[a]["n_listed"] + cells[b]["n_listed"], "files": [],
                          "n_runs": len(row["cells"][a])}
        for col in spec["columns"]:
            c = cells[col]
            p_mean, p_std = _paper_value(spec, row, col)
            metric = decl.column_metrics.get(col.split(":")[-1], row.get("metric", "top1"))
            out.append({"row": row["label"], "row_key": row["key"], "metric": metric,
                        "column": col, "ours_mean": c["mean"],
                        "ours_std": c["std"], "n_runs": len(c["values"]) or c.get("n_runs", 0),
                        "paper_mean": p_mean, "paper_std": p_std,
                        "diff": None if c["mean"] is None or p_mean is None else c["mean"] - p_mean,
                        "n_evaluated": c["n_evaluated"], "n_listed": c["n_listed"], "files": " ".join(c["files"]),
                        "n_classes": c.get("n_classes")})
    return out


def _col_title(spec: dict, col: str) -> str:
    return _decl(spec).column_title(col, spec["dataset_titles"])


def render_csv(records: list[dict]) -> str:
    buf = io.StringIO()
    fields = ["row", "row_key", "metric", "column", "ours_mean", "ours_std", "n_runs", "paper_mean", "paper_std",
              "diff", "n_evaluated", "n_listed", "n_classes", "files"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _notes(spec: dict, records: list[dict]) -> list[str]:
    derived = _decl(spec).derived
    n_eval = sum(r["n_evaluated"] for r in records if r["column"] not in derived)
    n_list = sum(r["n_listed"] for r in records if r["column"] not in derived)
    demo = bool(spec.get("demo"))
    runs = {r["n_runs"] for r in records if r["column"] not in derived and r["ours_mean"] is not None}
    notes = ["Ours: one run per cell (no spread to show)." if runs and runs <= {1}
             else "Ours: mean ± sample std (ddof=1) over the runs of each cell."]
    if _show_paper(spec):
        notes.append(f"'paper' = the number published in {CITATION} (quoted, not reproduced by us), shown "
                     "only beside a row measured the way the paper measured it; Δ = ours − paper.")
    notes.append(f"Videos evaluated of those listed, summed over the cells: {n_eval:,} of {n_list:,} "
                 f"({n_list - n_eval:,} missing or undecodable; each result JSON lists them with the reason).")
    chance, by = {}, _decl(spec).chance_by
    for r in records:
        where = _col_title(spec, r["column"]) if by == "column" else r["row"]
        if r.get("n_classes") and by:
            chance.setdefault(where, 100.0 / r["n_classes"])
    if chance:
        notes.append("Chance level (100 / number of classes): "
                     + ", ".join(f"{k} {v:.1f}%" for k, v in chance.items()) + ".")
    for row in spec["rows"]:
        if row.get("protocol"):
            notes.append(f"{row['label']}: {row['protocol']}.")
    if demo:
        notes.insert(0, "DEMO on synthetic data with a tiny CLIP: the numbers show the pipeline and the method at "
                        "work; they are not comparable with the paper's, which are therefore not shown.")
    return notes


def cost_rows(spec: dict) -> list[dict[str, Any]]:
    """Table 1: per run (the rows' result files, first row of each), the cost per video from
    the tuning jobs' own records: GFLOPs as the paper counts them (the inference clip) and in
    all, and the measured seconds of encoding and tuning with the devices they ran on."""
    out, seen = [], set()
    for row in spec["rows"]:
        files = [f for fs in row["cells"].values() for f in fs]
        run = tuple(sorted({str(Path(f).parent.name) for f in files}))
        if run in seen:
            continue
        seen.add(run)
        costs = [s["cost"] for s in map(read_json, files) if s.get("cost")]
        if not costs:
            continue
        mean = lambda key: _mean([c.get(key) for c in costs])  # noqa: E731
        out.append({"run": ", ".join(run), "gflops_inference_clip": mean("gflops_inference_clip"),
                    "gflops_total": mean("gflops_per_video_total"), "encode_s": mean("encode_seconds_per_video"),
                    "tune_s": mean("tune_seconds_per_video"),
                    "devices": ", ".join(sorted({d for c in costs for d in c.get("encode_devices", [])}))})
    return out


def _mean(values: list) -> float | None:
    vals = [float(v) for v in values if v is not None]
    return sum(vals) / len(vals) if vals else None


def render_cost_md(rows: list[dict]) -> list[str]:
    if not rows:
        return []
    lines = ["", "Cost per video, mean over each run's jobs (GFLOPs: 2 per multiply-add; the paper's "
             "'281 GFLOPs' for ViT-B/16 are the inference clip's multiply-adds). Seconds measured after start-up.", "",
             "| run | GFLOPs, inference clip | GFLOPs, all (views + text + tuning) | s encoding | s tuning | device |",
             "|---|---|---|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['run']} | {_fmt(r['gflops_inference_clip'])} | {_fmt(r['gflops_total'])} | "
                     f"{_fmt(r['encode_s'], digits=4)} | {_fmt(r['tune_s'], digits=4)} | {r['devices'] or '—'} |")
    return lines


def _show_paper(spec: dict) -> bool:
    return not spec.get("demo") and _decl(spec).from_paper


def render_md(spec: dict, records: list[dict]) -> str:
    by = {(r["row"], r["column"]): r for r in records}
    cols = spec["columns"]
    per_col = ("ours", "paper", "Δ", "videos") if _show_paper(spec) else ("ours", "videos")
    head = ["", *[f"{_col_title(spec, c)} {h}" if h == "ours" else h for c in cols for h in per_col]]
    lines = [f"# {title(spec)}", "", *[f"- {n}" for n in _notes(spec, records)], "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    digits = _decl(spec).digits
    for row in spec["rows"]:
        cells = [row["label"]]
        for c in cols:
            r = by[(row["label"], c)]
            cells.append(_fmt(r["ours_mean"], r["ours_std"], digits))
            if _show_paper(spec):
                cells += [_fmt(r["paper_mean"], r["paper_std"], digits), _diff(r["ours_mean"], r["paper_mean"], digits)]
            cells.append(f"{r['n_evaluated']:,}/{r['n_listed']:,}")
        lines.append("| " + " | ".join(cells) + " |")
    quoted = _decl(spec).quoted if _show_paper(spec) else {}
    for label, vals in quoted.items():
        cells = [f"{label} (quoted from the paper)"]
        for c in cols:
            cells += ["—", _fmt(*vals.get(c, (None, None))), "—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    if _decl(spec).cost:
        lines += render_cost_md(cost_rows(spec))
    return "\n".join(lines) + "\n"


def _tex_escape(s: str) -> str:
    return s.replace("&", r"\&").replace("%", r"\%").replace("_", r"\_").replace("#", r"\#")


def render_tex(spec: dict, records: list[dict]) -> str:
    by = {(r["row"], r["column"]): r for r in records}
    cols = spec["columns"]
    digits = _decl(spec).digits
    show = _show_paper(spec)

    def pm(mean, std):
        return _fmt(mean, std, digits, none="--", pm=r" $\pm$ ")

    width = 2 if show else 1
    out = [r"\begin{table}[t]", r"\centering", r"\small",
           r"\begin{tabular}{l" + "r" * width * len(cols) + "}", r"\toprule",
           " & " + " & ".join(rf"\multicolumn{{{width}}}{{c}}{{{_tex_escape(_col_title(spec, c))}}}" for c in cols)
           + r" \\"]
    if show:
        out.append(" & " + " & ".join("ours & paper" for _ in cols) + r" \\")
    out.append(r"\midrule")
    for row in spec["rows"]:
        vals = []
        for c in cols:
            r = by[(row["label"], c)]
            vals.append(pm(r["ours_mean"], r["ours_std"]))
            if show:
                vals.append(pm(r["paper_mean"], r["paper_std"]))
        out.append(_tex_escape(row["label"]) + " & " + " & ".join(vals) + r" \\")
    quoted = bool(_decl(spec).quoted) and show
    if quoted:
        for label, v in _decl(spec).quoted.items():
            out.append(_tex_escape(label) + r"$^\dagger$ & " + " & ".join(f"-- & {pm(*v.get(c, (None, None)))}" for c in cols) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}",
            rf"\caption{{{_tex_escape(title(spec))}. " + _tex_escape(" ".join(_notes(spec, records)))
            + (r" $^\dagger$Quoted from the paper." if quoted else "") + "}",
            r"\end{table}", ""]
    return "\n".join(out)


PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>{title}</title>
<style>
body {{ font-family: sans-serif; margin: 1.5em; color: #1e293b; background: #fff; }}
h1 {{ font-size: 1.2em; }}
li {{ font-size: 0.9em; margin: 0.2em 0; }}
table {{ border-collapse: collapse; margin-top: 1em; font-size: 0.9em; }}
th, td {{ border: 1px solid #cbd5e1; padding: 0.3em 0.6em; text-align: right; }}
th {{ background: #f1f5f9; }}
td:first-child, th:first-child {{ text-align: left; }}
</style></head>
<body>
{body}
</body></html>
"""


def render_html(spec: dict, md: str) -> str:
    """The Markdown table as an HTML page (the Snakemake report shows HTML, not CSV). Markdown
    passes raw HTML through: the text (labels and titles come from the config) is escaped
    first, so a label such as ``<script>`` is shown, never run."""
    import html

    import markdown

    body = markdown.markdown(html.escape(md, quote=False), extensions=["tables"], output_format="html")
    return PAGE.format(title=html.escape(title(spec)), body=body)


