"""`zar tables`: render one of the paper's tables from result files, beside the paper's numbers.

Writes ``<out>.md``, ``<out>.tex`` and the ``<out>.csv`` they are rendered from. Every cell is
the mean ± sample std (ddof=1) over splits (or shot lists) of top-1 %, with the number of
videos evaluated of those listed; the paper's number and the difference sit beside it.
Rows of other methods are marked as quoted from the paper.
"""
from __future__ import annotations

import csv
import io
import json
from pathlib import Path
from typing import Any

from zar import paper
from zar.metrics import harmonic_mean, mean_std
from zar.utils import UserError, atomic_write_text, read_json

TITLES = {
    1: "Table 1: zero-shot top-1 (%), mean ± std over {n} split(s)",
    2: "Table 2: base-to-novel top-1 (%), mean over {n} few-shot training list(s); HM = harmonic mean of the means",
    3: "Table 3: confidence-selection ratio (%) vs top-1 (%), K400-fine-tuned backbone, {n} split(s)",
    4: "Table 4: sampling rates kept vs top-1 (%), K400-fine-tuned backbone, {n} split(s)",
    5: "Table 5: number of crops vs top-1 (%), K400-fine-tuned backbone, {n} split(s)",
}


def title(spec: dict) -> str:
    """The table's title, with the number of runs (splits or shot lists) behind each cell."""
    n = max((len(files) for row in spec["rows"] for files in row["cells"].values()), default=0)
    return TITLES[spec["table"]].format(n=n)


def _fmt(mean: float | None, std: float | None = None, digits: int = 1, *, none: str = "—",
         pm: str = " ± ") -> str:
    if mean is None:
        return none
    return f"{mean:.{digits}f}" + (f"{pm}{std:.{digits}f}" if std is not None else "")


def _diff(ours: float | None, ref: float | None, digits: int = 1) -> str:
    if ours is None or ref is None:
        return "—"
    return f"{ours - ref:+.{digits}f}"


def load_cell(files: list[str]) -> dict[str, Any]:
    top1, n_eval, n_list, n_classes = [], 0, 0, set()
    for f in files:
        s = read_json(f)
        if "top1" not in s:
            raise UserError(f"{f}: not a zar result summary (no top1)")
        top1.append(s["top1"])
        n_eval += int(s["n_evaluated"])
        n_list += int(s["n_listed"])
        if s.get("classes"):
            n_classes.add(len(s["classes"]))
    m, sd = mean_std(top1)
    return {"mean": m, "std": sd, "values": top1, "n_evaluated": n_eval, "n_listed": n_list, "files": files,
            "n_classes": n_classes.pop() if len(n_classes) == 1 else None}


def _paper_value(spec: dict, row: dict, col: str) -> tuple[float | None, float | None]:
    t = spec["table"]
    try:
        if t == 1:
            return paper.TABLE1[row["key"]][col]
        if t == 2:
            return paper.TABLE2[row["key"]][("base", "novel", "hm").index(col)], None
        if t == 3:
            return paper.TABLE3[row["key"]][int(col)], None
        if t == 4:
            return (paper.TABLE4[tuple(row["rates"])], None) if col == "hmdb51" else (None, None)
        if t == 5:
            return (paper.TABLE5[int(row["key"])], None) if col == "hmdb51" else (None, None)
    except (KeyError, ValueError, IndexError):
        return None, None
    return None, None


def compute(spec: dict) -> list[dict[str, Any]]:
    """One record per (row, column): ours, the paper's, the difference, the video counts."""
    out = []
    for row in spec["rows"]:
        cells = {col: load_cell(files) for col, files in row["cells"].items()}
        if spec["table"] == 2:
            base, novel = cells["base"], cells["novel"]
            cells["hm"] = {"mean": harmonic_mean(base["mean"], novel["mean"]), "std": None, "values": [],
                           "n_evaluated": base["n_evaluated"] + novel["n_evaluated"],
                           "n_listed": base["n_listed"] + novel["n_listed"], "files": []}
        for col in spec["columns"]:
            c = cells[col]
            p_mean, p_std = _paper_value(spec, row, col)
            out.append({"row": row["label"], "row_key": row["key"], "column": col, "ours_mean": c["mean"],
                        "ours_std": c["std"], "n_runs": len(c["values"]) or len(row["cells"].get("base", [])),
                        "paper_mean": p_mean, "paper_std": p_std,
                        "diff": None if c["mean"] is None or p_mean is None else c["mean"] - p_mean,
                        "n_evaluated": c["n_evaluated"], "n_listed": c["n_listed"], "files": " ".join(c["files"]),
                        "n_classes": c.get("n_classes")})
    return out


def _col_title(spec: dict, col: str) -> str:
    if spec["table"] == 3:
        return f"{col}%"
    if spec["table"] == 2:
        return {"base": "Base", "novel": "Novel", "hm": "HM"}[col]
    return spec["dataset_titles"].get(col, col)


def render_csv(records: list[dict]) -> str:
    buf = io.StringIO()
    fields = ["row", "row_key", "column", "ours_mean", "ours_std", "n_runs", "paper_mean", "paper_std", "diff",
              "n_evaluated", "n_listed", "n_classes", "files"]
    w = csv.DictWriter(buf, fieldnames=fields, lineterminator="\n")
    w.writeheader()
    for r in records:
        w.writerow({k: (f"{v:.4f}" if isinstance(v, float) else v) for k, v in r.items()})
    return buf.getvalue()


def _notes(spec: dict, records: list[dict]) -> list[str]:
    n_eval = sum(r["n_evaluated"] for r in records if r["column"] != "hm")
    n_list = sum(r["n_listed"] for r in records if r["column"] != "hm")
    notes = [
        f"Ours: mean ± sample std (ddof=1) over the runs of each cell; 'paper' = the number published in "
        f"{paper.CITATION} (quoted, not reproduced by us); Δ = ours − paper.",
        f"Videos evaluated of those listed, summed over the cells: {n_eval:,} of {n_list:,} "
        f"({n_list - n_eval:,} missing or undecodable; each result JSON lists them with the reason).",
    ]
    chance = {}
    for r in records:
        where = _col_title(spec, r["column"]) if spec["table"] in (1, 4, 5) else r["row"]
        if r.get("n_classes") and spec["table"] != 2:
            chance.setdefault(where, 100.0 / r["n_classes"])
    if chance:
        notes.append("Chance level (100 / number of classes): "
                     + ", ".join(f"{k} {v:.1f}%" for k, v in chance.items()) + ".")
    if spec.get("demo"):
        notes.insert(0, "DEMO on synthetic data with a tiny CLIP: the paper's numbers are shown for the layout "
                        "only and are not comparable.")
    return notes


def render_md(spec: dict, records: list[dict]) -> str:
    by = {(r["row"], r["column"]): r for r in records}
    cols = spec["columns"]
    head = ["", *[h for c in cols for h in (f"{_col_title(spec, c)} ours", "paper", "Δ", "videos")]]
    lines = [f"# {title(spec)}", "", *[f"- {n}" for n in _notes(spec, records)], "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    digits = 2 if spec["table"] == 3 else 1
    for row in spec["rows"]:
        cells = [row["label"]]
        for c in cols:
            r = by[(row["label"], c)]
            cells += [_fmt(r["ours_mean"], r["ours_std"], digits), _fmt(r["paper_mean"], r["paper_std"], digits),
                      _diff(r["ours_mean"], r["paper_mean"], digits), f"{r['n_evaluated']:,}/{r['n_listed']:,}"]
        lines.append("| " + " | ".join(cells) + " |")
    quoted = paper.TABLE1_QUOTED if spec["table"] == 1 else {}
    for label, vals in quoted.items():
        cells = [f"{label} (quoted from the paper)"]
        for c in cols:
            cells += ["—", _fmt(*vals.get(c, (None, None))), "—", "—"]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"


def _tex_escape(s: str) -> str:
    return s.replace("&", r"\&").replace("%", r"\%").replace("_", r"\_").replace("#", r"\#")


def render_tex(spec: dict, records: list[dict]) -> str:
    by = {(r["row"], r["column"]): r for r in records}
    cols = spec["columns"]
    digits = 2 if spec["table"] == 3 else 1

    def pm(mean, std):
        return _fmt(mean, std, digits, none="--", pm=r" $\pm$ ")

    out = [r"\begin{table}[t]", r"\centering", r"\small",
           r"\begin{tabular}{l" + "rr" * len(cols) + "}", r"\toprule",
           " & " + " & ".join(rf"\multicolumn{{2}}{{c}}{{{_tex_escape(_col_title(spec, c))}}}" for c in cols) + r" \\",
           " & " + " & ".join("ours & paper" for _ in cols) + r" \\", r"\midrule"]
    for row in spec["rows"]:
        vals = []
        for c in cols:
            r = by[(row["label"], c)]
            vals += [pm(r["ours_mean"], r["ours_std"]), pm(r["paper_mean"], r["paper_std"])]
        out.append(_tex_escape(row["label"]) + " & " + " & ".join(vals) + r" \\")
    if spec["table"] == 1:
        for label, v in paper.TABLE1_QUOTED.items():
            out.append(_tex_escape(label) + r"$^\dagger$ & " + " & ".join(f"-- & {pm(*v.get(c, (None, None)))}" for c in cols) + r" \\")
    out += [r"\bottomrule", r"\end{tabular}",
            rf"\caption{{{_tex_escape(title(spec))}. " + _tex_escape(" ".join(_notes(spec, records)))
            + (r" $^\dagger$Quoted from the paper." if spec["table"] == 1 else "") + "}",
            r"\end{table}", ""]
    return "\n".join(out)


def add_arguments(p) -> None:
    p.add_argument("--spec", required=True, help="the table spec as JSON text or a .json file (the workflow writes it)")
    p.add_argument("--out", required=True, help="output prefix: writes PREFIX.md, PREFIX.tex and PREFIX.csv")


def run(args) -> int:
    spec = read_json(args.spec) if args.spec.endswith(".json") and Path(args.spec).is_file() else json.loads(args.spec)
    records = compute(spec)
    out = Path(args.out)
    atomic_write_text(out.with_suffix(".csv"), render_csv(records))
    atomic_write_text(out.with_suffix(".tex"), render_tex(spec, records))
    md = render_md(spec, records)
    atomic_write_text(out.with_suffix(".md"), md)
    print(md)
    return 0
