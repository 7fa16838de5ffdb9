"""Table rendering: mean ± sample std over splits, the paper beside ours, counts, quoted rows."""
import csv
import json
import statistics

import pytest

from zar import paper
from zar.cli import main as zar
from zar.tables import compute


def _summary(path, top1, n_eval, n_list, n_classes=51):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"top1": top1, "n_evaluated": n_eval, "n_listed": n_list,
                                "classes": [f"c{i}" for i in range(n_classes)]}))
    return str(path)


def test_table1(tmp_path):
    vals = {("vanilla", "hmdb51"): [40.0, 41.5, 39.0], ("vanilla", "ucf101"): [60.0, 61.0, 65.0],
            ("zar", "hmdb51"): [44.0, 43.0, 45.5], ("zar", "ucf101"): [66.0, 64.0, 65.0]}
    rows = []
    for key, label in (("vanilla", "Vanilla CLIP"), ("zar", "ZAR")):
        cells = {d: [_summary(tmp_path / key / d / f"s{i}.json", v, 1500 - i, 1530)
                     for i, v in enumerate(vals[key, d])] for d in ("hmdb51", "ucf101")}
        rows.append({"key": key, "label": label, "cells": cells})
    spec = {"table": 1, "demo": False, "dataset_titles": {"hmdb51": "HMDB-51", "ucf101": "UCF101"},
            "columns": ["hmdb51", "ucf101"], "rows": rows}
    recs = {(r["row_key"], r["column"]): r for r in compute(spec)}
    for (key, d), v in vals.items():
        r = recs[key, d]
        assert r["ours_mean"] == pytest.approx(statistics.mean(v))
        assert r["ours_std"] == pytest.approx(statistics.stdev(v))  # sample std, ddof=1
        assert (r["paper_mean"], r["paper_std"]) == paper.TABLE1[key][d]
        assert r["diff"] == pytest.approx(statistics.mean(v) - paper.TABLE1[key][d][0])
        assert (r["n_evaluated"], r["n_listed"]) == (1500 + 1499 + 1498, 3 * 1530)
    out = tmp_path / "t" / "table1"
    assert zar(["tables", "--spec", json.dumps(spec), "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert "ViFi-CLIP B/16 (WIT + K400) (quoted from the paper)" in md
    assert "40.2 ± 1.3" in md and "40.8 ± 0.3" in md and "4,497/4,590" in md
    assert "ddof=1" in md and "quoted, not reproduced by us" in md
    assert "Chance level (100 / number of classes): HMDB-51 2.0%, UCF101 2.0%." in md
    tex = out.with_suffix(".tex").read_text()
    assert r"\begin{tabular}" in tex and r"Quoted from the paper" in tex
    rows_csv = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows_csv) == 4 and {r["column"] for r in rows_csv} == {"hmdb51", "ucf101"}


def test_table2_harmonic_mean_of_means(tmp_path):
    base, novel = [70.0, 72.0, 74.0], [50.0, 55.0, 60.0]
    cells = {"base": [_summary(tmp_path / f"b{i}.json", v, 10, 10) for i, v in enumerate(base)],
             "novel": [_summary(tmp_path / f"n{i}.json", v, 9, 10) for i, v in enumerate(novel)]}
    spec = {"table": 2, "dataset_titles": {"hmdb51": "HMDB-51"}, "columns": ["base", "novel", "hm"],
            "rows": [{"key": "hmdb51", "label": "HMDB-51", "cells": cells}]}
    recs = {r["column"]: r for r in compute(spec)}
    b, n = statistics.mean(base), statistics.mean(novel)
    assert recs["hm"]["ours_mean"] == pytest.approx(2 * b * n / (b + n))
    assert recs["hm"]["paper_mean"] == paper.TABLE2["hmdb51"][2]
    assert recs["novel"]["n_evaluated"] == 27


def test_ablation_tables_and_demo_note(tmp_path):
    cells = {"hmdb51": [_summary(tmp_path / f"c{i}.json", 50.0 + i, 5, 6) for i in range(3)]}
    spec = {"table": 5, "demo": True, "dataset_titles": {"hmdb51": "HMDB-51"}, "columns": ["hmdb51"],
            "rows": [{"key": "9", "label": "9 crops", "cells": cells}]}
    (r,) = compute(spec)
    assert r["paper_mean"] == paper.TABLE5[9] and r["ours_mean"] == pytest.approx(51.0)
    out = tmp_path / "table5"
    zar(["tables", "--spec", json.dumps(spec), "--out", str(out)])
    assert "DEMO on synthetic data" in out.with_suffix(".md").read_text()


def test_missing_result_is_an_error(tmp_path):
    spec = {"table": 5, "dataset_titles": {}, "columns": ["hmdb51"],
            "rows": [{"key": "1", "label": "1 crop", "cells": {"hmdb51": [str(tmp_path / "nope.json")]}}]}
    assert zar(["tables", "--spec", json.dumps(spec), "--out", str(tmp_path / "t")]) == 2
