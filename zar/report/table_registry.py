"""The paper's tables, one declaration each: the jobs behind every cell, the rows and columns,
the paper's published numbers, the title and how the table is drawn.

A declaration's ``layout`` turns the config into columns and rows whose cells are result
files (one per split or shot list); the workflow runs exactly the jobs those cells name,
renders the table with ``zar tables`` (which reads the rest of the declaration: title, paper
numbers, derived columns, digits) and, for a table with a ``plot``, draws it. Adding a table
is one declaration in :data:`TABLES`; nothing else names table numbers.

The paper's numbers (Liang, Lu, Tao, Allebach, "ZAR: Zero-Shot Action Recognition with
Dynamic Prompt Tuning", Electronic Imaging 2025; top-1 %, mean ± std over 3 splits where
given) are the paper's figures, never results of this project, and are shown only beside a
row measured the way the paper measured it (``paper`` in the row).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Protocol

CITATION = "Liang et al., ZAR: Zero-Shot Action Recognition with Dynamic Prompt Tuning, EI 2025"

Number = tuple[float | None, float | None]  # (mean, std); std None where the paper gives none
NONE: Number = (None, None)


class Jobs(Protocol):
    """What a layout may ask of the workflow (zar.plan.TableJobs): the config and the
    result file of each evaluation."""

    cfg: dict

    def zeroshot(self, dataset: str, run: str, split: int) -> str: ...

    def ablation(self, dataset: str, axis: str, value: Any, split: int) -> str: ...

    def b2n(self, dataset: str, shot: int, subset: str) -> str: ...

    def testtime(self, dataset: str, backbone: str, method: str, split: int) -> str: ...


@dataclass(frozen=True)
class Plot:
    """How ``zar figures ablation`` draws a table: ``lines`` (one line per row, x = the column
    as a number) or ``bars`` (one group per column, one bar per row)."""

    kind: str
    x_label: str


@dataclass(frozen=True)
class Table:
    number: int
    title: str  # "{n}": the number of runs (splits or shot lists) behind each cell
    layout: Callable[[Jobs], tuple[list[str], list[dict[str, Any]]]]  # columns, rows (with cells)
    paper: Callable[[dict, str], Number] = lambda row, col: NONE  # the paper's number for (row, column)
    column_titles: Any = None  # a mapping, a format of the key, a function (column, titles), or the datasets' titles
    derived: dict[str, tuple[str, str]] = field(default_factory=dict)  # column -> harmonic mean of two columns
    digits: int = 1
    chance_by: str | None = "column"  # chance level per "column", per "row", or not shown (None)
    quoted: dict[str, dict[str, Number]] = field(default_factory=dict)  # other methods' rows, from the paper
    cost: bool = False  # end with the cost per video of each run
    column_metrics: dict[str, str] = field(default_factory=dict)  # a column's last part -> the metric it reads
    from_paper: bool = True  # the paper has this table (its numbers beside ours); False: zar's own
    plot: Plot | None = None

    def column_title(self, col: str, dataset_titles: dict[str, str]) -> str:
        if callable(self.column_titles):
            return self.column_titles(col, dataset_titles)
        if isinstance(self.column_titles, dict):
            return self.column_titles[col]
        if isinstance(self.column_titles, str):
            return self.column_titles.format(col)
        return dataset_titles.get(col, col)


# ----------------------------------------------------------------------------- the paper's numbers
# Table 1: row key -> dataset -> (mean, std)
TABLE1 = {
    "vanilla": {"hmdb51": (40.8, 0.3), "ucf101": (63.2, 0.2), "k600": (59.8, 0.3)},
    "zar": {"hmdb51": (43.6, 0.7), "ucf101": (64.1, 0.9), "k600": (60.2, 0.4)},
    "zar_k400": {"hmdb51": (54.2, 0.8), "ucf101": (77.4, 0.8), "k600": (70.5, 0.4)},
}
# Rows of other methods, quoted from the paper as published.
TABLE1_QUOTED = {
    "ViFi-CLIP B/16 (WIT + K400)": {"hmdb51": (51.3, 0.6), "ucf101": (76.8, 0.7), "k600": (71.2, 1.0)},
}
# Table 2: dataset -> (base, novel, HM)
TABLE2 = {"k400": (75.2, 60.7, 67.2), "hmdb51": (75.2, 55.2, 63.7), "ucf101": (91.3, 67.2, 77.4)}
# Table 3: confidence ratio (%) -> dataset -> top-1
_T3_RATIOS = (10, 20, 30, 40, 50, 60, 70, 80, 90, 100)
TABLE3 = {
    "hmdb51": dict(zip(_T3_RATIOS, (53.94, 53.88, 54.07, 53.94, 53.81, 54.01, 54.14, 54.17, 54.14, 54.07))),
    "ucf101": dict(zip(_T3_RATIOS, (76.84, 77.26, 77.34, 77.34, 77.37, 77.37, 77.42, 77.37, 77.29, 77.10))),
}
# Table 4 (HMDB51): sampling rates kept -> top-1
TABLE4 = {(1, 2, 4, 8): 54.2, (1, 2, 4): 53.6, (1, 2): 52.1, (1,): 51.5}
# Table 5 (HMDB51): number of crops -> top-1
TABLE5 = {1: 53.6, 3: 54.2, 5: 52.0, 9: 51.8}


def _lookup(get: Callable[[], Any]) -> Number:
    """The paper's number, or none where the paper has no such cell."""
    try:
        value = get()
    except (KeyError, ValueError, IndexError, TypeError):
        return NONE
    return value if isinstance(value, tuple) else (value, None)


# ----------------------------------------------------------------------------- layouts
def _datasets(jobs: Jobs) -> dict[str, str]:
    return {k: v.get("title", k) for k, v in jobs.cfg["datasets"].items()}


def _table1(jobs: Jobs):
    zs = jobs.cfg["zeroshot"]
    rows = [{"key": r.get("paper") or r["run"], "label": r["label"], "metric": r.get("metric", "top1"),
             "paper": r.get("paper"), "protocol": r.get("protocol", ""),
             "cells": {d: [jobs.zeroshot(d, r["run"], s) for s in zs["splits"]] for d in zs["datasets"]}}
            for r in zs["rows"]]
    return list(zs["datasets"]), rows


def _table2(jobs: Jobs):
    b, titles = jobs.cfg["b2n"], _datasets(jobs)
    rows = [{"key": d, "label": titles[d], "paper": d,
             "cells": {sub: [jobs.b2n(d, s, sub) for s in b["shots"]] for sub in ("base", "novel")}}
            for d in b["datasets"]]
    return ["base", "novel", "hm"], rows


def _table3(jobs: Jobs):
    ab, titles = jobs.cfg["ablations"], _datasets(jobs)
    values = ab["ratio"]["values"]
    rows = [{"key": d, "label": titles[d], "paper": d,
             "cells": {str(int(round(r * 100))): [jobs.ablation(d, "ratio", r, s) for s in ab["splits"]]
                       for r in values}}
            for d in ab["ratio"]["datasets"]]
    return [str(int(round(r * 100))) for r in values], rows


def _table4(jobs: Jobs):
    ab = jobs.cfg["ablations"]
    datasets = ab["rates"]["datasets"]
    rows = [{"key": ",".join(map(str, rates)), "label": name, "rates": list(rates), "paper": "rates",
             "cells": {d: [jobs.ablation(d, "rates", name, s) for s in ab["splits"]] for d in datasets}}
            for name, rates in ab["rates"]["variants"].items()]
    return list(datasets), rows


def _table5(jobs: Jobs):
    ab = jobs.cfg["ablations"]
    datasets = ab["crops"]["datasets"]
    rows = [{"key": str(c), "label": f"{c} crop{'s' if c > 1 else ''}", "paper": "crops",
             "cells": {d: [jobs.ablation(d, "crops", c, s) for s in ab["splits"]] for d in datasets}}
            for c in ab["crops"]["values"]]
    return list(datasets), rows


def _table6(jobs: Jobs):
    """Rows: the test-time methods; per backbone, a top-1 column per dataset, then the ECE and
    the method's own ms per video over all its results on that backbone."""
    from zar.method.testtime import get

    t = jobs.cfg["testtime"]
    columns = [f"{b}:{x}" for b in t["backbones"] for x in [*t["datasets"], "ece", "ms"]]
    rows = []
    for m in t["methods"]:
        files = {(b, d): [jobs.testtime(d, b, m, s) for s in t["splits"]] for b in t["backbones"] for d in t["datasets"]}
        cells = {f"{b}:{d}": files[b, d] for b in t["backbones"] for d in t["datasets"]}
        for b in t["backbones"]:
            cells[f"{b}:ece"] = cells[f"{b}:ms"] = [f for d in t["datasets"] for f in files[b, d]]
        method = get(m)
        rows.append({"key": m, "label": method.title, "protocol": f"{method.kind}; {method.source}", "cells": cells})
    return columns, rows


def _table6_title(col: str, dataset_titles: dict[str, str]) -> str:
    backbone, what = col.split(":")
    return f"{backbone}: " + {"ece": "ECE (%)", "ms": "ms/video"}.get(what, dataset_titles.get(what, what))


TABLES: dict[int, Table] = {t.number: t for t in (
    Table(1, "Table 1: zero-shot top-1 (%), mean ± std over {n} split(s)", _table1,
          paper=lambda row, col: _lookup(lambda: TABLE1[row["paper"]][col]),
          quoted=TABLE1_QUOTED, cost=True),
    Table(2, "Table 2: base-to-novel top-1 (%), mean over {n} few-shot training list(s); HM = harmonic mean of "
          "the means", _table2,
          paper=lambda row, col: _lookup(lambda: TABLE2[row["key"]][("base", "novel", "hm").index(col)]),
          column_titles={"base": "Base", "novel": "Novel", "hm": "HM"}, derived={"hm": ("base", "novel")},
          chance_by=None),
    Table(3, "Table 3: confidence-selection ratio (%) vs top-1 (%), K400-fine-tuned backbone, {n} split(s)",
          _table3, paper=lambda row, col: _lookup(lambda: TABLE3[row["key"]][int(col)]),
          column_titles="{}%", digits=2, chance_by="row",
          plot=Plot("lines", "confidence ratio: views kept (%)")),
    Table(4, "Table 4: sampling rates kept vs top-1 (%), K400-fine-tuned backbone, {n} split(s)", _table4,
          paper=lambda row, col: _lookup(lambda: TABLE4[tuple(row["rates"])]) if col == "hmdb51" else NONE,
          plot=Plot("bars", "sampling rates kept")),
    Table(5, "Table 5: number of crops vs top-1 (%), K400-fine-tuned backbone, {n} split(s)", _table5,
          paper=lambda row, col: _lookup(lambda: TABLE5[int(row["key"])]) if col == "hmdb51" else NONE,
          plot=Plot("bars", "crops per clip")),
    Table(6, "Table 6 (zar's own, not in the paper): test-time methods on the same cached views, top-1 (%) mean ± "
          "std over {n} split(s), ECE (%) and the method's own ms per video over all its results", _table6,
          column_titles=_table6_title, chance_by=None, column_metrics={"ece": "ece", "ms": "ms_per_video"},
          from_paper=False),
)}


def get(number: int) -> Table:
    from zar.core.errors import UserError

    try:
        return TABLES[int(number)]
    except (KeyError, ValueError):
        raise UserError(f"there is no table {number} (zar knows tables {', '.join(map(str, TABLES))})") from None


def plotted() -> list[int]:
    """The tables drawn as figures (``zar figures ablation``)."""
    return [n for n, t in TABLES.items() if t.plot]
