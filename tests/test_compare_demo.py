"""tests/compare_demo.py, the check that two demo runs are the same but for time, can fail."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))
from compare_demo import compare  # noqa: E402


def _run(root: Path, top1: float, seconds: float, table1: str, mtime: int) -> Path:
    (root / "results" / "zeroshot").mkdir(parents=True)
    (root / "splits").mkdir()
    (root / "data").mkdir()
    (root / "results" / "zeroshot" / "s.json").write_text(json.dumps({"top1": top1, "seconds": seconds,
                                                                       "cost": {"tune_seconds_per_video": seconds}}))
    (root / "results" / "table1.md").write_text(table1)
    (root / "splits" / "classes.csv").write_text("class_index,class_name\n0,a\n")
    torch.save({"views": torch.ones(2, 3), "files": [{"size": 5, "mtime_ns": mtime}], "seconds": seconds},
               root / "results" / "e.pt")
    return root


def test_runs_that_differ_only_in_time_are_the_same(tmp_path, capsys):
    a = _run(tmp_path / "a", 50.0, 1.0, "| 1.0 s/video |", 1)
    b = _run(tmp_path / "b", 50.0, 2.0, "| 2.0 s/video |", 2)
    assert compare(a, b) == 0
    assert "1 byte-identical, 2 differ only in time fields, 1 show measured time" in capsys.readouterr().out


def test_a_result_or_a_split_that_differs_is_reported(tmp_path, capsys):
    a = _run(tmp_path / "a", 50.0, 1.0, "x", 1)
    b = _run(tmp_path / "b", 50.5, 1.0, "x", 1)
    assert compare(a, b) == 1
    assert "DIFFERS: results/zeroshot/s.json: results/zeroshot/s.json.top1" in capsys.readouterr().out
    (b / "results" / "zeroshot" / "s.json").write_text((a / "results" / "zeroshot" / "s.json").read_text())
    (b / "splits" / "classes.csv").write_text("class_index,class_name\n0,b\n")
    torch.save({"views": torch.zeros(2, 3), "files": [], "seconds": 1.0}, b / "results" / "e.pt")
    assert compare(a, b) == 1
    out = capsys.readouterr().out
    assert "splits/classes.csv: bytes differ" in out and "results/e.pt: results/e.pt.files: 1 != 0 items" in out
