"""The workflow: config schema, path logic, the encode superset, and the paper dry run."""
import copy
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

import zar.plan as plan

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


def test_the_method_schema_is_zars_own_settings_rules():
    """One source of truth: the workflow schema's `method` section is what zar.method.settings generates
    from the settings' declarations (the CLI applies the same rules), its method names zar's registry."""
    from zar.method.settings import settings_schema
    from zar.method.testtime import METHODS
    from zar.plan.schema import refresh

    text = (ROOT / "workflow/schemas/config.schema.yaml").read_text()
    assert refresh(text) == text, "workflow/schemas/config.schema.yaml is behind zar's declarations: run `make schema`"
    schema = yaml.safe_load(text)
    assert schema["properties"]["method"]["properties"] == settings_schema()
    assert schema["$defs"]["method_name"]["enum"] == list(METHODS)
    assert schema["properties"]["testtime"]["properties"]["methods"]["items"] == {"$ref": "#/$defs/method_name"}


def test_the_schema_generator_rewrites_only_its_parts():
    """refresh() on a file whose generated parts are stale restores them and leaves the rest."""
    from zar.plan.schema import refresh

    text = (ROOT / "workflow/schemas/config.schema.yaml").read_text()
    stale = text.replace("enum: [ctpt,", "enum: [old, ctpt,", 1).replace("          lr:\n", "          lr_old:\n", 1)
    assert stale != text and refresh(stale) == text
    with pytest.raises(ValueError, match="one `  method:` section"):
        refresh(text.replace("\n  method:\n", "\n  methods:\n"))


def test_a_bad_config_is_refused_in_a_few_lines():
    from zar.core.errors import UserError

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    schema = str(ROOT / "workflow/schemas/config.schema.yaml")
    plan.check_config(copy.deepcopy(cfg), schema)
    for change, words in (({"typo": 1}, "typo"), ({"method": {"tune": {"lr": -1}}}, "tune")):
        bad = copy.deepcopy(cfg)
        for k, v in change.items():
            bad[k] = v if k == "typo" else {**bad[k], **v}
        with pytest.raises(UserError) as e:
            plan.check_config(bad, schema)
        assert words in str(e.value) and len(str(e.value).splitlines()) <= 6
    bad = copy.deepcopy(cfg)
    bad["method"]["views"]["rates"] = [1, 1]  # the schema has no "unique" rule for it: zar's own rules catch it
    with pytest.raises(UserError, match="views.rates"):
        plan.check_config(bad, schema)


def test_one_encoding_per_dataset_backbone_and_frames(paper):
    encs = {(e.dataset, e.backbone, e.viewset): e for e in plan.encodings(paper)}
    # HMDB51 on the ablation backbone: 9 crops (Table 5) and all rates, for the three splits' union
    hm = encs["hmdb51", "vitb16_k400", "t16_i16"]
    assert hm.settings["views.crops"] == 9 and hm.settings["views.rates"] == [1, 2, 4, 8]
    assert hm.lists == [f"splits/hmdb51/zeroshot/split{s}/test.csv" for s in (1, 2, 3)]
    assert encs["hmdb51", "vitb16_openai", "t16_i16"].settings["views.crops"] == 3
    assert encs["ucf101", "vitb16_k400", "t16_i16"].settings["views.crops"] == 3
    # ViFi-CLIP's vanilla protocol: the 32-frame inference clip alone, ViFi-CLIP's preprocessing
    vifi = encs["k600", "vitb16_openai", "t0_i32_vifi"]
    assert vifi.settings["views.samples_per_rate"] == 0 and vifi.settings["views.infer_frames"] == 32
    assert vifi.settings["views.preprocess"] == "vifi"
    # base-to-novel: 8-frame views, the 16-frame inference clip, base and novel lists together
    b2n = encs["k400", "b2n_k400_s1", "t8_i16"]
    assert b2n.lists == ["splits/k400/b2n/base/test.csv", "splits/k400/b2n/novel/test.csv"]
    assert (b2n.settings["views.frames"], b2n.settings["views.infer_frames"]) == (8, 16)
    assert len(encs) == 3 * 3 + 3 * 3
    variants = plan.ablation_variants(paper, "hmdb51")
    assert len(variants) == 10 + 4 + 4 and variants["crops9"] == {"views.crops": 9}
    assert variants["rates_drop8_4"] == {"views.rates": [1, 2]} and variants["ratio30"] == {"tune.ratio": 0.3}
    assert set(plan.ablation_variants(paper, "ucf101")) == {f"ratio{p}" for p in range(10, 101, 10)}


def test_paths_backbones_and_reused_results(paper):
    assert plan.zeroshot_result(paper, "k600", "zar", 2) == "results/zeroshot/k600/zar/split2.json"
    assert plan.ablation_result(paper, "hmdb51", "crops9", 1) == "results/ablations/hmdb51/crops9/split1.json"
    assert plan.embedding_shards(paper, "k600", "vitb16_openai", "t16_i16")[-1] == \
        "results/embeddings/k600/vitb16_openai/t16_i16/shard8of8.pt"
    assert plan.backbone_arg(paper, "vitb16_openai") == "ViT-B-16:openai"
    assert plan.backbone_arg(paper, "vitb16_k400") == "results/models/vitb16_k400"
    assert plan.backbone_arg(paper, "b2n_hmdb51_s2") == "results/models/b2n_hmdb51_s2"
    args = plan.settings_args({"views.rates": [1, 2], "tune.ctx_init": "a video of a"})
    assert args == "--set 'views.rates=[1, 2]' --set 'tune.ctx_init=\"a video of a\"'"
    from zar.method.settings import load_settings

    s = load_settings(None, ["views.rates=[1, 2]", 'tune.ctx_init="a video of a"'])
    assert s.views.rates == (1, 2) and s.tune.ctx_init == "a video of a"
    # an ablation variant that is the method itself on the ablation backbone reuses the zero-shot result
    t3 = plan.table_spec(paper, 3)
    hmdb = next(r for r in t3["rows"] if r["key"] == "hmdb51")
    assert hmdb["cells"]["80"] == [plan.TableJobs(paper).zeroshot("hmdb51", "zar_k400", s) for s in (1, 2, 3)]
    assert hmdb["cells"]["30"][0] == "results/ablations/hmdb51/ratio30/split1.json"
    e = plan.evaluation(paper, "results/ablations/hmdb51/crops9/split2.json")
    assert (e.backbone, str(e.evalset), plan.evaluation_settings(e)["views.crops"]) == ("vitb16_k400", "split2", 9)


def test_table1_separates_the_two_gains(paper):
    spec = plan.table_spec(paper, 1)
    rows = {r["label"]: r for r in spec["rows"]}
    assert [r["metric"] for r in spec["rows"]] == ["top1", "top1_before_tuning", "top1_ensemble", "top1",
                                                   "top1_before_tuning", "top1"]
    assert [r["paper"] for r in spec["rows"]] == ["vanilla", None, None, "zar", None, "zar_k400"]
    assert rows["K400 fine-tuned, no tuning"]["cells"] == rows["ZAR + K400"]["cells"]  # no extra job
    assert rows["48 views, no tuning"]["cells"] == rows["ZAR"]["cells"]
    vifi = plan.evaluation(paper, rows["Vanilla CLIP (ViFi-CLIP's protocol)"]["cells"]["hmdb51"][0])
    st = plan.evaluation_settings(vifi)
    assert (vifi.method, st["views.infer_frames"], st["tune.template"]) == ("vanilla", 32, "{c}")
    assert all(r["protocol"] for r in spec["rows"])


def test_table_specs_cover_every_experiment(paper):
    assert len(plan.table_inputs(paper, 1)) == 3 * 3 * 3
    assert len(plan.table_inputs(paper, 2)) == 3 * 3 * 2
    assert len(plan.table_inputs(paper, 3)) == 2 * 10 * 3
    assert len(plan.table_inputs(paper, 4)) == 4 * 3
    assert len(plan.table_inputs(paper, 5)) == 4 * 3
    assert len(plan.table_inputs(paper, 6)) == 8 * 3 * 2 * 3  # methods x datasets x backbones x splits
    # Table 1's ZAR cells on Table 6's grid (3 datasets x 2 backbones x 3 splits) are Table 6's evaluations
    assert len(plan.evaluations(paper)) == 27 - 18 + 72 + 18 + 8 * 3 * 2 * 3


def test_table1_cells_that_are_table6_evaluations_read_table6s_files(paper):
    t1 = {r["label"]: r["cells"] for r in plan.table_spec(paper, 1)["rows"]}
    zar = paper["zeroshot"]["runs"]["zar"]
    assert t1["ZAR"]["k600"][1] == plan.testtime_result(paper, "k600", zar["backbone"], "zar", 2)
    e = plan.evaluation(paper, t1["ZAR"]["k600"][1])
    assert (e.kind, e.method, e.backbone) == ("testtime", "zar", zar["backbone"])
    vifi = t1["Vanilla CLIP (ViFi-CLIP's protocol)"]["k600"][0]  # other settings: its own job
    assert vifi == plan.zeroshot_result(paper, "k600", "vanilla_vifi", 1)
    with pytest.raises(ValueError, match="Table 6's results/testtime/k600/"):
        plan.evaluation(paper, plan.zeroshot_result(paper, "k600", "zar", 2))
    # without Table 6, or off its grid, or with other settings, the run has its own job
    alone = {**paper, "tables": [1, 2, 3, 4, 5]}
    zar_row = next(r for r in plan.table_spec(alone, 1)["rows"] if r["label"] == "ZAR")
    assert zar_row["cells"]["k600"][1] == plan.zeroshot_result(paper, "k600", "zar", 2)
    fewer = {**paper, "testtime": {**paper["testtime"], "splits": [1]}}
    cells = {r["label"]: r["cells"] for r in plan.table_spec(fewer, 1)["rows"]}["ZAR"]["k600"]
    assert cells[0].startswith("results/testtime/") and cells[1] == plan.zeroshot_result(paper, "k600", "zar", 2)
    other = {**paper, "testtime": {**paper["testtime"], "methods": ["vanilla", "zero"]}}
    assert {r["label"]: r["cells"] for r in plan.table_spec(other, 1)["rows"]}["ZAR"]["k600"][1] == \
        plan.zeroshot_result(paper, "k600", "zar", 2)


@pytest.mark.slow
def test_paper_dry_run_lists_every_job():
    targets = [f"results/table{n}.md" for n in range(1, 6)]
    out = subprocess.run([sys.executable, "-m", "snakemake", "-n", *targets, "--quiet", "rules"], cwd=ROOT,
                         capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", out.stdout + out.stderr, re.M))
    # Table 1's ZAR cells on Table 6's grid come from Table 6's jobs (one per dataset, backbone and split)
    assert counts["tune_zeroshot"] == str(27 - 18) and counts["tune_testtime"] == "18"
    assert counts["tune_ablation"] == "72" and counts["tune_b2n"] == "18"
    assert counts["train"] == "10" and counts["tables"] == "5" and counts["decode"] == "4"
    # three encodings per zero-shot dataset (2 backbones, + the 32-frame clip), one per base-to-novel model
    assert counts["encode"] == str(3 * (1 + 2 + 8) + 3 * (4 + 1 + 2))
    # the README's commands run with the default profile (cores, gpu cap, keep-going, rerun-incomplete)
    assert "Using workflow specific profile profiles/default for setting default command line arguments" \
        in out.stderr


def test_the_default_profile_is_where_snakemake_looks_and_sets_what_the_readme_says():
    profile = yaml.safe_load((ROOT / "profiles" / "default" / "config.yaml").read_text())
    assert profile["resources"] == ["gpu=1"] and profile["cores"] == "all"
    assert profile["keep-going"] and profile["rerun-incomplete"] and profile["printshellcmds"]
    assert not (ROOT / "workflow" / "profiles").exists()  # where Snakemake 9 never looks (beside workflow/)


def test_every_output_path_is_one_template_used_by_the_rules_and_the_plan(paper):
    """zar.plan.paths holds each result, embedding, model, table and figure path once: every
    path the plan computes is an instance of the pattern the rules write, and the rules
    spell no results path themselves."""
    import re

    from zar.plan import paths

    def instance(pattern: str, path: str) -> bool:
        rx = re.sub(r"\\\{\w+\\\}", "[^/]+", re.escape(pattern))
        return re.fullmatch(rx, path) is not None

    kinds = {"zeroshot": "zeroshot_result", "ablation": "ablation_result", "b2n": "b2n_result",
             "testtime": "testtime_result"}
    for e in plan.evaluations(paper):
        assert instance(paths.pattern(paper, kinds[e.kind]), e.result), e.result
    shards = [s for enc in plan.encodings(paper) for s in plan.embedding_shards(paper, enc.dataset, enc.backbone,
                                                                                 enc.viewset)]
    assert shards and all(instance(paths.pattern(paper, "embeddings"), s) for s in shards)
    assert all(instance(paths.pattern(paper, "table"), t) for t in plan.all_tables(paper))
    figure_kinds = [paths.pattern(paper, k) for k in ("perclass_dir", "ablation_figure", "tsne_dir", "attention_dir",
                                                      "cost_figure")]
    assert all(any(instance(p, f) for p in figure_kinds) for f in plan.figure_targets(paper))
    assert plan.backbone_inputs(paper, "vitb16_k400") == [paths.path(paper, "model_weights", backbone="vitb16_k400")]
    assert paths.log(paper, "zeroshot_result") == "logs/zeroshot/{dataset}/{run}/split{split}.log"
    assert paths.benchmark(paper, "embeddings") == "benchmarks/embeddings/{dataset}/{backbone}/{viewset}/shard{k}of{n}.tsv"
    for smk in sorted((ROOT / "workflow/rules").glob("*.smk")):
        assert "{RES}/" not in smk.read_text(), f"{smk.name} spells a results path: use zar.plan.paths"


def test_an_evaluation_set_is_a_split_or_a_side():
    assert str(plan.EvalSet(split=2)) == "split2" and str(plan.EvalSet(side="novel")) == "b2n_novel"
    assert plan.EvalSet(split=2).list_file("hmdb51", "test") == "hmdb51/zeroshot/split2/test.csv"
    assert plan.EvalSet(side="base").list_file("k400", "classes") == "k400/b2n/base/classes.csv"
    for bad in ({}, {"split": 1, "side": "base"}, {"side": "middle"}):
        with pytest.raises(ValueError):
            plan.EvalSet(**bad)
