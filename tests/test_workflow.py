"""The workflow: config schema, path logic, the encode superset, and the paper dry run."""
import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import zar.workflow as W

ROOT = Path(__file__).resolve().parents[1]


def _validated(cfg):
    from snakemake.utils import validate

    cfg = copy.deepcopy(cfg)
    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
    return cfg


@pytest.fixture(scope="module")
def paper():
    return _validated(yaml.safe_load((ROOT / "config/config.yaml").read_text()))


def test_schema_fills_defaults_and_rejects_misspelled_keys(paper):
    assert paper["method"]["run"]["chunk"] == 200  # default filled in
    assert paper["ablations"]["rates"]["variants"]["drop8_4"] == [1, 2]
    from snakemake.exceptions import WorkflowError

    for path in (("method", "tune", "ratoi"), ("ablations", "crop"), ("datasets", "hmdb51", "sorce"), ("typo",)):
        bad = copy.deepcopy(paper)
        node = bad
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = 1
        with pytest.raises(WorkflowError):
            _validated(bad)


def test_every_schema_property_is_described():
    schema = yaml.safe_load((ROOT / "workflow/schemas/config.schema.yaml").read_text())
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for name, sub in node.get("properties", {}).items():
                if isinstance(sub, dict) and "description" not in sub and "$ref" not in sub:
                    missing.append(f"{where}.{name}")
                walk(sub, f"{where}.{name}")
            for key in ("additionalProperties", "items"):
                if isinstance(node.get(key), dict):
                    walk(node[key], where + "[]")
            for name, sub in node.get("$defs", {}).items():
                walk(sub, f"$defs.{name}")
            if node.get("type") == "object" and "properties" in node:
                assert node.get("additionalProperties") is False, f"{where}: additionalProperties must be false"

    walk(schema, "config")
    assert missing == []


def test_encode_superset(paper):
    # HMDB51 on the ablation backbone: 9 crops (Table 5) and all rates; elsewhere the method's 3 crops
    assert W.encode_views(paper, "hmdb51", "split1", "vitb16_k400")["crops"] == 9
    assert W.encode_views(paper, "hmdb51", "split1", "vitb16_openai")["crops"] == 3
    assert W.encode_views(paper, "ucf101", "split2", "vitb16_k400")["crops"] == 3
    assert W.encode_views(paper, "k400", "b2n_base", "b2n_k400_s1")["frames"] == 8
    variants = W.ablation_variants(paper, "hmdb51")
    assert len(variants) == 10 + 4 + 4 and variants["crops9"] == {"views.crops": 9}
    assert variants["rates_drop8_4"] == {"views.rates": [1, 2]} and variants["ratio30"] == {"tune.ratio": 0.3}
    assert set(W.ablation_variants(paper, "ucf101")) == {f"ratio{p}" for p in range(10, 101, 10)}


def test_paths_and_backbones(paper):
    assert W.zeroshot_result(paper, "k600", "vitb16_openai", "zar", 2) == "results/zeroshot/k600/vitb16_openai/zar/split2.json"
    assert W.ablation_result(paper, "hmdb51", "crops9", 1) == "results/ablations/hmdb51/crops9/split1.json"
    assert W.embedding_shards(paper, "k600", "split1", "vitb16_openai")[-1].endswith("f16/shard8of8.pt")
    assert W.backbone_arg(paper, "vitb16_openai") == "ViT-B-16:openai"
    assert W.backbone_arg(paper, "vitb16_k400") == "results/models/vitb16_k400"
    assert W.backbone_arg(paper, "b2n_hmdb51_s2") == "results/models/b2n_hmdb51_s2"
    args = W.settings_args({"views.rates": [1, 2], "tune.ctx_init": "a video of a"})
    assert args == "--set 'views.rates=[1, 2]' --set 'tune.ctx_init=\"a video of a\"'"
    from zar.config import load_settings

    s = load_settings(None, ["views.rates=[1, 2]", 'tune.ctx_init="a video of a"'])
    assert s.views.rates == (1, 2) and s.tune.ctx_init == "a video of a"


def test_table_specs_cover_every_experiment(paper):
    assert len(W.table_inputs(paper, 1)) == 3 * 3 * 3
    assert len(W.table_inputs(paper, 2)) == 3 * 3 * 2
    assert len(W.table_inputs(paper, 3)) == 2 * 10 * 3
    assert len(W.table_inputs(paper, 4)) == 4 * 3
    assert len(W.table_inputs(paper, 5)) == 4 * 3


@pytest.mark.slow
def test_paper_dry_run_lists_every_job():
    targets = [f"results/table{n}.md" for n in range(1, 6)]
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", *targets, "--quiet", "rules"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout + out.stderr, re.M))
    assert counts["tune_zeroshot"] == "27" and counts["tune_ablation"] == "84" and counts["tune_b2n"] == "18"
    assert counts["train"] == "10" and counts["tables"] == "5" and counts["decode"] == "4"
    assert counts["encode"] == str(3 * 2 * (1 + 2 + 8) + 3 * 2 * (4 + 1 + 2))
