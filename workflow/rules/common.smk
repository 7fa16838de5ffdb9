# Helpers shared by the rules. What to run and where results go is decided in zar.workflow
# (pure functions of the config, also used by `zar tables`); the rules only wire it up.
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
    backbone=r"[A-Za-z0-9_]+",
    run=r"[A-Za-z0-9_]+",
    variant=r"[A-Za-z0-9_]+",
    viewset=r"t\d+_i\d+",
    split=r"\d+",
    shot=r"\d+",
    subset="base|novel",
    k=r"\d+",
    n=r"\d+",
    table=r"\d+",


def res(rule_name, key, default=None):
    """A resource of a rule from config `resources` (gpu, mem_mb, runtime, threads)."""
    return config["resources"].get(rule_name, {}).get(key, default)


def dataset_lists(dataset):
    """Every video list of a dataset that some job reads (what to download and decode)."""
    lists = {l for enc in W.encodings(config) if enc.dataset == dataset for l in enc.lists}
    if dataset in config["b2n"]["datasets"]:
        lists |= {W.b2n_train_csv(config, dataset, s) for s in config["b2n"]["shots"]}
    for entry in config["training"].values():
        if entry["dataset"] == dataset:
            lists.add(entry["videos"])
    return sorted(lists)


def split_files():
    """Every file under the splits folder that some rule reads (the outputs of rule `splits`)."""
    files = {f"{SPLITS}/MANIFEST.sha256"}
    for e in W.evaluations(config):
        files |= {W.videos_csv(config, e.dataset, e.evalset), W.classes_csv(config, e.dataset, e.evalset)}
    for ds in config["b2n"]["datasets"]:
        files |= {W.b2n_train_csv(config, ds, s) for s in config["b2n"]["shots"]}
        files.add(W.classes_csv(config, ds, "b2n_base"))
    for entry in config["training"].values():
        files |= {f for f in (entry["videos"], entry["classes"]) if f.startswith(f"{SPLITS}/")}
    return sorted(files)


def splits_ready():
    return f"{RES}/splits/audit.txt"
