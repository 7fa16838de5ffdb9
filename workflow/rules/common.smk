# Helpers shared by the rules. What to run and where results go is decided in zar.plan
# (pure functions of the config, also used by `zar tables`); the rules only wire it up.
import json
import os
import shlex

import zar.plan as plan
from zar.plan import paths
from zar.plan import resources as plan_resources
from zar.report import table_registry

RES = config["results_dir"]
DATA = config["data_root"]
SPLITS = config["splits_dir"]
LOGS = config["logs_dir"]
BENCH = config["benchmarks_dir"]
ZS_DATASETS = list(config["zeroshot"]["datasets"])
DATASETS = list(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS),
    backbone=r"[A-Za-z0-9_]+",
    run=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",
    viewset=r"t\d+_i\d+(_vifi)?",
    split=r"\d+",
    shot=r"\d+",
    subset="base|novel",
    k=r"\d+",
    n=r"\d+",
    table=r"\d+",


def resource(group, key):
    """A resource (threads, mem_mb, runtime, gpu) of a group of jobs, from config `resources`,
    else zar.plan.resources' defaults (the table `zar check cluster` compares with a partition)."""
    return plan_resources.resource(config, group, key)


def dataset_lists(dataset):
    """Every video list of a dataset that some job reads (what to download and decode)."""
    lists = {l for enc in plan.encodings(config) if enc.dataset == dataset for l in enc.lists}
    if dataset in config["b2n"]["datasets"]:
        lists |= {plan.b2n_train_path(config, dataset, s) for s in config["b2n"]["shots"]}
    for entry in config["training"].values():
        if entry["dataset"] == dataset:
            lists.add(entry["videos"])
    return sorted(lists)


def download_priority(w):
    """The datasets a fine-tuning reads first: every job on its model waits for them."""
    return 45 if any(t["dataset"] == w.dataset for t in config["training"].values()) else 40


def split_files():
    """Every file under the splits folder that some rule reads (the outputs of rule `splits`)."""
    files = {f"{SPLITS}/MANIFEST.sha256"}
    for e in plan.evaluations(config):
        files |= {plan.videos_path(config, e.dataset, e.evalset), plan.classes_path(config, e.dataset, e.evalset)}
    for ds in config["b2n"]["datasets"]:
        files |= {plan.b2n_train_path(config, ds, s) for s in config["b2n"]["shots"]}
        files.add(plan.classes_path(config, ds, plan.EvalSet(side="base")))
    for entry in config["training"].values():
        files |= {f for f in (entry["videos"], entry["classes"]) if f.startswith(f"{SPLITS}/")}
    return sorted(files)


def splits_ready():
    return paths.path(config, "splits_audit")


# used by download.smk
def download_options(w):
    """`zar download` options of a dataset from the config (sources file, extra flags, demo data)."""
    d = config["datasets"][w.dataset]
    opts = [d.get("download_options", "")]
    if d.get("sources_file"):
        opts.append(f"--sources {d['sources_file']}")
    if d["source"] == "synthetic":
        opts.append(f"--demo-config {config['demo_data_config']}")
    return " ".join(o for o in opts if o)


# used by train.smk
def train_job(w):
    """dataset, lists, initial backbone, recipe, clip length, GPUs and resources of one model."""
    t = plan.trained_backbones(config)[w.backbone]
    if "b2n" in t:
        b, ds = config["b2n"], t["b2n"]
        return {
            "dataset": ds,
            "videos": plan.b2n_train_path(config, ds, t["shot"]),
            "classes": plan.classes_path(config, ds, plan.EvalSet(side="base")),
            "init": b["init"],
            "recipe": b["recipe"],
            "frames": b["train_frames"],
            "gpus": b["gpus"],
            "resources": "train_b2n",
        }
    e = config["training"][t]
    return {
        "dataset": e["dataset"],
        "videos": e["videos"],
        "classes": e["classes"],
        "init": e["init"],
        "recipe": e["recipe"],
        "frames": e["frames"],
        "gpus": e["gpus"],
        "resources": "train",
    }


# used by train.smk
def train_inputs(w):
    j = train_job(w)
    return {
        "videos": j["videos"],
        "classes": j["classes"],
        "decoded": f"{DATA}/{j['dataset']}/decode_manifest.csv",
        "audit": splits_ready(),
        "init": plan.backbone_inputs(config, j["init"]),
    }


# used by train.smk
def train_params(w):
    j = train_job(w)
    launcher = "zar" if j["gpus"] <= 1 else f"torchrun --standalone --nproc_per_node {j['gpus']} -m zar"
    return {
        "root": plan.video_root(config, j["dataset"]),
        "backbone": plan.backbone_arg(config, j["init"]),
        "recipe": j["recipe"],
        "frames": j["frames"],
        "launcher": launcher,
    }


# used by train.smk
def train_res(key):
    return lambda w: resource(train_job(w)["resources"], key)


# used by encode.smk
def encode_job(w):
    return plan.encoding(config, w.dataset, w.backbone, w.viewset)


# used by tune.smk
def tune_evaluation(kind):
    """The evaluation (zar.plan.Evaluation) a tuning rule's wildcards name."""
    where = {
        "zeroshot": lambda w: plan.zeroshot_result(config, w.dataset, w.run, int(w.split)),
        "ablation": lambda w: plan.ablation_result(config, w.dataset, w.variant, int(w.split)),
        "b2n": lambda w: plan.b2n_result(config, w.dataset, int(w.shot), w.subset),
        "testtime": lambda w: plan.testtime_result(
            config, w.dataset, w.backbone, config["testtime"]["methods"][0], int(w.split)
        ),
    }[kind]
    return lambda w: plan.evaluation(config, where(w))


# used by tune.smk
def tune_inputs(kind):
    find = tune_evaluation(kind)

    def inputs(w):
        e = find(w)
        return {
            "embeddings": plan.evaluation_shards(config, e),
            "videos": plan.videos_path(config, e.dataset, e.evalset),
            "classes": plan.classes_path(config, e.dataset, e.evalset),
            "model": plan.backbone_inputs(config, e.backbone),
        }

    return inputs


# used by tune.smk
def tune_params(kind):
    find = tune_evaluation(kind)

    def params(w):
        e = find(w)
        return {
            "backbone": plan.backbone_arg(config, e.backbone),
            "method": e.method,
            "label": e.label,
            "settings": plan.settings_args(plan.evaluation_settings(e)),
            "root": plan.video_root(config, e.dataset),
        }

    return params


# used by figures.smk
def tsne_args(w):
    pairs = {d: plan.tsne_inputs(config, d, w.backbone) for d in ZS_DATASETS}
    return {
        "embeddings": " ".join(f"{d}={e}" for d, p in pairs.items() for e in p["embeddings"]),
        "videos": " ".join(f"{d}={v}" for d, p in pairs.items() for v in p["videos"]),
    }
