"""Table rendering: mean ± sample std over splits, the paper beside ours only where measured
alike, counts, quoted rows, demo tables without the paper, and the paper's numbers as typed
from the paper's tables."""
import csv
import json
import statistics

import pytest

from zar.report import table_registry as paper
from zar.cli import main as zar
from zar.report.tables import compute


def _summary(path, top1, n_eval, n_list, n_classes=51, **metrics):
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps({"top1": top1, "n_evaluated": n_eval, "n_listed": n_list,
                                "classes": [f"c{i}" for i in range(n_classes)], **metrics}))
    return str(path)


def test_the_papers_numbers_as_published():
    """Typed from the paper's Tables 1-5 (Liang et al., EI 2025), not read from zar.report.table_registry."""
    assert paper.TABLE1 == {
        "vanilla": {"hmdb51": (40.8, 0.3), "ucf101": (63.2, 0.2), "k600": (59.8, 0.3)},
        "zar": {"hmdb51": (43.6, 0.7), "ucf101": (64.1, 0.9), "k600": (60.2, 0.4)},
        "zar_k400": {"hmdb51": (54.2, 0.8), "ucf101": (77.4, 0.8), "k600": (70.5, 0.4)},
    }
    assert paper.TABLE1_QUOTED == {"ViFi-CLIP B/16 (WIT + K400)": {"hmdb51": (51.3, 0.6), "ucf101": (76.8, 0.7),
                                                                   "k600": (71.2, 1.0)}}
    assert paper.TABLE2 == {"k400": (75.2, 60.7, 67.2), "hmdb51": (75.2, 55.2, 63.7), "ucf101": (91.3, 67.2, 77.4)}
    assert [paper.TABLE3["hmdb51"][r] for r in range(10, 101, 10)] == [
        53.94, 53.88, 54.07, 53.94, 53.81, 54.01, 54.14, 54.17, 54.14, 54.07]
    assert [paper.TABLE3["ucf101"][r] for r in range(10, 101, 10)] == [
        76.84, 77.26, 77.34, 77.34, 77.37, 77.37, 77.42, 77.37, 77.29, 77.10]
    assert paper.TABLE4 == {(1, 2, 4, 8): 54.2, (1, 2, 4): 53.6, (1, 2): 52.1, (1,): 51.5}
    assert paper.TABLE5 == {1: 53.6, 3: 54.2, 5: 52.0, 9: 51.8}


def test_table1(tmp_path):
    vals = {("vanilla", "hmdb51"): [40.0, 41.5, 39.0], ("vanilla", "ucf101"): [60.0, 61.0, 65.0],
            ("zar", "hmdb51"): [44.0, 43.0, 45.5], ("zar", "ucf101"): [66.0, 64.0, 65.0]}
    before = {"hmdb51": [30.0, 31.0, 32.0], "ucf101": [50.0, 52.0, 54.0]}
    files = {}
    for key in ("vanilla", "zar"):
        files[key] = {d: [_summary(tmp_path / key / d / f"s{i}.json", v, 1500 - i, 1530,
                                   top1_before_tuning=before[d][i] if key == "zar" else v)
                          for i, v in enumerate(vals[key, d])] for d in ("hmdb51", "ucf101")}
    rows = [{"key": "vanilla", "label": "Vanilla CLIP", "paper": "vanilla", "cells": files["vanilla"],
             "protocol": "32 frames, the class name alone"},
            {"key": "zar_before", "label": "No tuning", "metric": "top1_before_tuning", "paper": None,
             "cells": files["zar"]},
            {"key": "zar", "label": "ZAR", "paper": "zar", "cells": files["zar"]}]
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
    for d in ("hmdb51", "ucf101"):  # a row reads its own metric, and has no paper number to compare with
        r = recs["zar_before", d]
        assert r["ours_mean"] == pytest.approx(statistics.mean(before[d])) and r["paper_mean"] is None
    out = tmp_path / "t" / "table1"
    assert zar(["tables", "--spec", json.dumps(spec), "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert "ViFi-CLIP B/16 (WIT + K400) (quoted from the paper)" in md
    assert "40.2 ± 1.3" in md and "40.8 ± 0.3" in md and "4,497/4,590" in md
    assert "ddof=1" in md and "quoted, not reproduced by us" in md
    assert "Vanilla CLIP: 32 frames, the class name alone." in md
    assert "Chance level (100 / number of classes): HMDB-51 2.0%, UCF101 2.0%." in md
    no_tuning = next(line for line in md.splitlines() if line.startswith("| No tuning"))
    assert no_tuning.count("—") == 4  # paper and Δ empty in both columns
    tex = out.with_suffix(".tex").read_text()
    assert r"\begin{tabular}" in tex and r"Quoted from the paper" in tex
    page = out.with_suffix(".html").read_text()  # the report's page: the same table, as HTML
    assert "<title>Table 1: zero-shot top-1" in page and "<table>" in page and "<td>40.2 ± 1.3</td>" in page
    rows_csv = list(csv.DictReader(out.with_suffix(".csv").open()))
    assert len(rows_csv) == 6 and {r["column"] for r in rows_csv} == {"hmdb51", "ucf101"}


def test_the_tables_page_shows_markup_in_labels_and_never_runs_it(tmp_path):
    cells = {"hmdb51": [_summary(tmp_path / f"c{i}.json", 50.0 + i, 5, 6, n_classes=12) for i in range(3)]}
    label = '<script>alert("x")</script> & <img src=x onerror=alert(1)>'
    spec = {"table": 1, "demo": True, "dataset_titles": {"hmdb51": "<b>synthetic</b>"}, "columns": ["hmdb51"],
            "rows": [{"key": "zar", "label": label, "paper": None, "cells": cells, "protocol": "<i>p</i>"}]}
    out = tmp_path / "table1"
    assert zar(["tables", "--spec", json.dumps(spec), "--out", str(out)]) == 0
    page = out.with_suffix(".html").read_text()
    assert "<script" not in page and "<img" not in page and "<b>" not in page and "<i>" not in page
    assert "&lt;script&gt;alert(\"x\")&lt;/script&gt; &amp; &lt;img src=x onerror=alert(1)&gt;" in page
    assert "<td>51.0 ± 1.0</td>" in page  # the table is still a table


def test_demo_tables_show_no_paper_numbers(tmp_path):
    cells = {"hmdb51": [_summary(tmp_path / f"c{i}.json", 50.0 + i, 5, 6, n_classes=12) for i in range(3)]}
    spec = {"table": 1, "demo": True, "dataset_titles": {"hmdb51": "synthetic"}, "columns": ["hmdb51"],
            "rows": [{"key": "zar_k400", "label": "ZAR", "paper": "zar_k400", "cells": cells}]}
    (r,) = compute(spec)
    assert r["paper_mean"] is None and r["diff"] is None
    out = tmp_path / "table1"
    assert zar(["tables", "--spec", json.dumps(spec), "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert "DEMO on synthetic data" in md and "paper" not in md.split("|", 1)[1] and "Δ" not in md
    assert "| ZAR | 51.0 ± 1.0 | 15/18 |" in md and "8.3%" in md
    assert "quoted" not in md and "54.2" not in md
    tex = out.with_suffix(".tex").read_text()
    assert "paper" not in tex.split(r"\caption")[0] and "54.2" not in tex


def test_table2_harmonic_mean_of_means(tmp_path):
    base, novel = [70.0, 72.0, 74.0], [50.0, 55.0, 60.0]
    cells = {"base": [_summary(tmp_path / f"b{i}.json", v, 10, 10) for i, v in enumerate(base)],
             "novel": [_summary(tmp_path / f"n{i}.json", v, 9, 10) for i, v in enumerate(novel)]}
    spec = {"table": 2, "dataset_titles": {"hmdb51": "HMDB-51"}, "columns": ["base", "novel", "hm"],
            "rows": [{"key": "hmdb51", "label": "HMDB-51", "paper": "hmdb51", "cells": cells}]}
    recs = {r["column"]: r for r in compute(spec)}
    b, n = statistics.mean(base), statistics.mean(novel)
    assert recs["hm"]["ours_mean"] == pytest.approx(2 * b * n / (b + n))
    assert recs["hm"]["paper_mean"] == paper.TABLE2["hmdb51"][2]
    assert recs["novel"]["n_evaluated"] == 27


def test_ablation_tables(tmp_path):
    cells = {"hmdb51": [_summary(tmp_path / f"c{i}.json", 50.0 + i, 5, 6) for i in range(3)]}
    spec = {"table": 5, "demo": False, "dataset_titles": {"hmdb51": "HMDB-51"}, "columns": ["hmdb51"],
            "rows": [{"key": "9", "label": "9 crops", "paper": "crops", "cells": cells}]}
    (r,) = compute(spec)
    assert r["paper_mean"] == 51.8 and r["ours_mean"] == pytest.approx(51.0)
    out = tmp_path / "table5"
    assert zar(["tables", "--spec", json.dumps(spec), "--out", str(out)]) == 0
    assert "| 9 crops | 51.0 ± 1.0 | 51.8 | -0.8 | 15/18 |" in out.with_suffix(".md").read_text()


def test_missing_result_is_an_error(tmp_path):
    spec = {"table": 5, "dataset_titles": {}, "columns": ["hmdb51"],
            "rows": [{"key": "1", "label": "1 crop", "cells": {"hmdb51": [str(tmp_path / "nope.json")]}}]}
    assert zar(["tables", "--spec", json.dumps(spec), "--out", str(tmp_path / "t")]) == 2


@pytest.mark.parametrize("n_splits,note", [(1, "Ours: one run per cell (no spread to show)."),
                                            (3, "Ours: mean ± sample std (ddof=1) over the runs of each cell.")])
def test_the_note_says_one_run_where_there_is_one(tmp_path, n_splits, note):
    """A table (here Table 3, as the demo runs it on one split) says "mean ± std" only where a
    cell has several runs; its figure's title says the same."""
    cells = {"hmdb51": [_summary(tmp_path / f"c{i}.json", 50.0 + i, 5, 6, n_classes=12) for i in range(n_splits)]}
    spec = {"table": 3, "demo": True, "dataset_titles": {"hmdb51": "synthetic"}, "columns": ["80"],
            "rows": [{"key": "hmdb51", "label": "synthetic", "paper": None, "cells": {"80": cells["hmdb51"]}}]}
    out = tmp_path / "table3"
    assert zar(["tables", "--spec", json.dumps(spec), "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert note in md and ("ddof" in md) == (n_splits > 1)
    from zar.report import analysis as A

    figure = tmp_path / "t3.png"
    assert zar(["figures", "ablation", "--table", str(out.with_suffix(".csv")), "--number", "3",
                "--out", str(figure)]) == 0
    from zar.jobs.figures import ablation_title

    points = A.ablation_series(A.read_table_csv(out.with_suffix(".csv")), 3)
    assert {p["n_runs"] for p in points} == {n_splits} and figure.exists()
    title = ablation_title("Table 3", points)
    assert title.endswith("ours: one split" if n_splits == 1 else "ours: mean ± std over splits")
