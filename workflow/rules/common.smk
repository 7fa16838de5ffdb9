# Helpers shared by the rules. Path logic lives in zar.workflow (also used by `zar tables`).
import json
import os
import shlex

import zar.workflow as W

RES = config["results_dir"]
DATA = config["data_root"]
SPLITS = config["splits_dir"]
LOGS = config["logs_dir"]
BENCH = config["benchmarks_dir"]
ZS_DATASETS = list(config["zeroshot"]["datasets"])
DATASETS = list(config["datasets"])


wildcard_constraints:
    dataset="|".join(DATASETS),
    evalset=r"split\d+|b2n_base|b2n_novel",
    backbone=r"[A-Za-z0-9_]+",
    method="vanilla|zar",
    variant=r"[A-Za-z0-9_]+",
    split=r"\d+",
    shot=r"\d+",
    subset="base|novel",
    frames=r"\d+",
    k=r"\d+",
    n=r"\d+",
    table=r"[1-5]",


def res(rule_name, key, default=None):
    """A resource of a rule from config `resources` (gpu, mem_mb, runtime, threads)."""
    return config["resources"].get(rule_name, {}).get(key, default)


def dataset_lists(dataset):
    """Every video list of a dataset that some experiment reads (what to download and decode)."""
    lists = []
    if dataset in ZS_DATASETS:
        lists += [W.videos_csv(config, dataset, f"split{s}") for s in config["zeroshot"]["splits"]]
    if dataset in config["b2n"]["datasets"]:
        lists += [W.videos_csv(config, dataset, f"b2n_{sub}") for sub in ("base", "novel")]
        lists += [f"{SPLITS}/{dataset}/b2n/base/train_s{s}.csv" for s in config["b2n"]["shots"]]
    for entry in config["training"].values():
        if entry["dataset"] == dataset:
            lists.append(entry["videos"])
    return sorted(set(lists))


def split_files():
    """Every file under the splits folder that some rule reads (the outputs of rule `splits`)."""
    files = {f"{SPLITS}/MANIFEST.sha256"}
    for ds in ZS_DATASETS:
        for s in config["zeroshot"]["splits"]:
            files |= {W.videos_csv(config, ds, f"split{s}"), W.classes_csv(config, ds, f"split{s}")}
    for ds in config["b2n"]["datasets"]:
        for sub in ("base", "novel"):
            files |= {W.videos_csv(config, ds, f"b2n_{sub}"), W.classes_csv(config, ds, f"b2n_{sub}")}
        files |= {f"{SPLITS}/{ds}/b2n/base/train_s{s}.csv" for s in config["b2n"]["shots"]}
    for entry in config["training"].values():
        files |= {f for f in (entry["videos"], entry["classes"]) if f.startswith(f"{SPLITS}/")}
    return sorted(files)


def splits_ready():
    return f"{RES}/splits/audit.txt"


def train_entry(backbone):
    return W.trained_backbones(config)[backbone]


def train_inputs(w):
    t = train_entry(w.backbone)
    if "b2n" in t:
        ds, s = t["b2n"], t["shot"]
        videos = f"{SPLITS}/{ds}/b2n/base/train_s{s}.csv"
        classes = f"{SPLITS}/{ds}/b2n/base/classes.csv"
        init = config["b2n"]["init"]
    else:
        entry = config["training"][t]
        ds, videos, classes, init = entry["dataset"], entry["videos"], entry["classes"], entry["init"]
    return {"videos": videos, "classes": classes, "decoded": f"{DATA}/{ds}/decode_manifest.csv",
            "audit": splits_ready(), "init": W.backbone_inputs(config, init)}


def train_params(w):
    t = train_entry(w.backbone)
    if "b2n" in t:
        ds, init, recipe, gpus = t["b2n"], config["b2n"]["init"], config["b2n"]["recipe"], config["b2n"]["gpus"]
    else:
        entry = config["training"][t]
        ds, init, recipe, gpus = entry["dataset"], entry["init"], entry["recipe"], entry["gpus"]
    launcher = "zar" if gpus <= 1 else f"torchrun --standalone --nproc_per_node {gpus} -m zar"
    return {"root": W.video_root(config, ds), "backbone": W.backbone_arg(config, init), "recipe": recipe,
            "launcher": launcher}


def train_res(w, key, default):
    t = train_entry(w.backbone)
    return res("train_b2n" if "b2n" in t else "train", key, default)


def encode_inputs(w):
    return {"decoded": f"{DATA}/{w.dataset}/decode_manifest.csv",
            "videos": W.videos_csv(config, w.dataset, w.evalset),
            "classes": W.classes_csv(config, w.dataset, w.evalset),
            "audit": splits_ready(),
            "model": W.backbone_inputs(config, w.backbone)}


def encode_settings(w):
    views = W.encode_views(config, w.dataset, w.evalset, w.backbone)
    if int(w.frames) != views["frames"]:
        raise ValueError(f"{w.dataset}/{w.evalset}/{w.backbone}: the config encodes {views['frames']} frames, not {w.frames}")
    over = {f"views.{k}": v for k, v in views.items()}
    over.update({f"run.{k}": v for k, v in config["method"]["run"].items()})
    return W.settings_args(over)


def tune_settings(extra=None, frames=None):
    over = W.method_overrides(config)
    if frames is not None:
        over["views.frames"] = frames
    over.update(extra or {})
    return W.settings_args(over)


TUNE_RESOURCES = dict(
    gpu=res("tune", "gpu", 1),
    mem_mb=res("tune", "mem_mb", 16000),
    runtime=res("tune", "runtime", 360),
)


def ablation_settings(w):
    variants = W.ablation_variants(config, w.dataset)
    if w.variant not in variants:
        raise ValueError(f"no ablation {w.variant!r} for {w.dataset}; known: {sorted(variants)}")
    return tune_settings(variants[w.variant])

