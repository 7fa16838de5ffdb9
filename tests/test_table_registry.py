"""The table registry: a new table is one declaration in zar/report/table_registry.py; the jobs, the
targets, the config check, `zar tables` and the figure follow from it."""
import copy
import json
from pathlib import Path

import pytest
import yaml

import zar.plan as plan
from zar.report import table_registry as R
from zar.cli import main as zar
from zar.core.errors import UserError

ROOT = Path(__file__).resolve().parents[1]
SCHEMA = str(ROOT / "workflow/schemas/config.schema.yaml")


def _layout(jobs):
    """ZAR against its own initial prompt, one column per zero-shot dataset."""
    zs = jobs.cfg["zeroshot"]
    rows = [{"key": metric, "label": label, "metric": metric, "paper": metric,
             "cells": {d: [jobs.zeroshot(d, "zar", s) for s in zs["splits"]] for d in zs["datasets"]}}
            for metric, label in (("top1_before_tuning", "initial prompt"), ("top1", "tuned"))]
    return list(zs["datasets"]), rows


SIX = R.Table(7, "Table 7: tuning's gain, {n} split(s)", _layout,
              paper=lambda row, col: (12.5, None) if (row["key"], col) == ("top1", "hmdb51") else R.NONE,
              digits=2, plot=R.Plot("bars", "prompt"))


@pytest.fixture
def six(monkeypatch):
    monkeypatch.setitem(R.TABLES, 7, SIX)
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["tables"] = [7]
    return cfg


def test_the_registry_declares_the_papers_five_tables_and_zars_table_6():
    assert list(R.TABLES) == [1, 2, 3, 4, 5, 6] and R.plotted() == [3, 4, 5]
    assert [n for n, t in R.TABLES.items() if not t.from_paper] == [6]
    assert R.TABLES[2].derived == {"hm": ("base", "novel")} and R.TABLES[1].cost and R.TABLES[3].digits == 2
    assert R.TABLES[4].paper({"rates": [1, 2]}, "hmdb51") == (52.1, None)
    assert R.TABLES[4].paper({"rates": [1, 2]}, "ucf101") == (None, None)  # the paper ran HMDB51 only
    assert R.TABLES[1].paper({"paper": "zar"}, "k600") == (60.2, 0.4)
    assert R.TABLES[1].paper({"paper": "nothing"}, "k600") == (None, None)


def test_a_new_table_is_one_declaration(six, tmp_path):
    cfg = six
    plan.check_config(copy.deepcopy(cfg), SCHEMA)
    # its jobs: exactly what its cells read (the ZAR run on each dataset and split)
    evals = plan.evaluations(cfg)
    assert len(evals) == 3 * 3 and {(e.method, e.backbone) for e in evals} == {("zar", "vitb16_openai")}
    assert plan.all_tables(cfg) == [f"results/table7.{x}" for x in ("md", "tex", "csv", "html")]
    assert plan.ablation_figures(cfg) == ["results/figures/ablation_table7.png"]
    spec = plan.table_spec(cfg, 7)
    assert spec["columns"] == ["hmdb51", "ucf101", "k600"] and len(plan.table_inputs(cfg, 7)) == 9
    # rendered by `zar tables` without anything else knowing table 7
    for i, f in enumerate(plan.table_inputs(cfg, 7)):
        p = tmp_path / f
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_text(json.dumps({"top1": 50.0 + i, "top1_before_tuning": 40.0, "n_evaluated": 9, "n_listed": 10,
                                 "classes": ["a", "b", "c", "d"]}))
    for row in spec["rows"]:
        row["cells"] = {c: [str(tmp_path / f) for f in fs] for c, fs in row["cells"].items()}
    out = tmp_path / "table7"
    assert zar(["tables", "--spec", json.dumps(spec), "--out", str(out)]) == 0
    md = out.with_suffix(".md").read_text()
    assert md.startswith("# Table 7: tuning's gain, 3 split(s)")
    assert "| initial prompt | 40.00 ± 0.00 | — | — | 27/30 |" in md
    tuned = next(line for line in md.splitlines() if line.startswith("| tuned"))
    hmdb = [json.loads(open(str(tmp_path / f)).read())["top1"] for f in spec["rows"][1]["cells"]["hmdb51"]]
    assert tuned.startswith(f"| tuned | {sum(hmdb) / 3:.2f} ± ") and "| 12.50 | " in tuned
    assert "Chance level (100 / number of classes): HMDB-51 25.0%" in md
    # and drawn, since the declaration has a plot
    fig = tmp_path / "t7.png"
    assert zar(["figures", "ablation", "--table", str(out.with_suffix(".csv")), "--number", "7", "--out", str(fig)]) == 0
    assert fig.stat().st_size > 0


def test_an_undeclared_table_is_refused(six):
    cfg = six
    cfg["tables"] = [1, 8]
    with pytest.raises(UserError, match=r"no table 8 .*zar/report/table_registry.py"):
        plan.check_config(cfg, SCHEMA)
    with pytest.raises(UserError, match="there is no table 8"):
        plan.table_spec(cfg, 8)
