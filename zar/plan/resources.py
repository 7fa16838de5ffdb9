"""What each rule asks of the machine that runs it: threads, memory, run time, GPUs.

The rules (workflow/rules/*.smk) and `zar check cluster` both read this table, so the check
compares exactly what Snakemake will submit. A rule's request comes from the config's
``resources.<group>`` (several rules share a group: every ``tune_*`` rule is ``tune``) and,
for what the config leaves out, from the defaults below.
"""
from __future__ import annotations

from dataclasses import dataclass

KEYS = ("threads", "mem_mb", "runtime", "gpu")

# group -> defaults (mem_mb in MB, runtime in minutes); download's threads are its workers
DEFAULTS: dict[str, dict[str, int]] = {
    "download": {"threads": 8, "runtime": 1440, "mem_mb": 8000, "gpu": 0},
    "decode": {"threads": 8, "runtime": 1440, "mem_mb": 16000, "gpu": 0},
    "train": {"threads": 8, "gpu": 1, "mem_mb": 64000, "runtime": 1440},
    "train_b2n": {"threads": 8, "gpu": 1, "mem_mb": 64000, "runtime": 1440},
    "encode": {"threads": 8, "gpu": 1, "mem_mb": 32000, "runtime": 720},
    "tune": {"threads": 4, "gpu": 1, "mem_mb": 16000, "runtime": 360},
    "figures": {"threads": 2, "mem_mb": 8000, "runtime": 60, "gpu": 0},
}

# rule -> group, for every rule that is submitted as a job (local rules run where Snakemake runs)
RULE_GROUPS: dict[str, str] = {
    "download": "download",
    "decode": "decode",
    "train": "train",  # "train_b2n" for the base-to-novel models
    "encode": "encode",
    "tune_zeroshot": "tune",
    "tune_ablation": "tune",
    "tune_b2n": "tune",
    "tune_testtime": "tune",
    "tsne": "figures",
    "attention": "figures",
    "perclass": "figures",
    "ablation_figure": "figures",
    "cost_figure": "figures",
}
# figure rules that draw on one thread whatever the group says (t-SNE takes the group's threads)
ONE_THREAD = {"attention", "perclass", "ablation_figure", "cost_figure"}


def resource(cfg: dict, group: str, key: str) -> int:
    """``resources.<group>.<key>`` of the config, else the default (download's threads: its workers)."""
    if key == "threads" and group == "download":
        return int((cfg.get("download") or {}).get("workers", DEFAULTS[group][key]))
    given = (cfg.get("resources") or {}).get(group, {}).get(key)
    return int(given if given is not None else DEFAULTS[group][key])


@dataclass(frozen=True)
class Request:
    """What the jobs of one rule ask, from one resource group."""

    rule: str
    group: str
    threads: int
    mem_mb: int
    runtime: int
    gpu: int

    def value(self, key: str) -> int:
        return getattr(self, key)


def groups_used(cfg: dict) -> dict[str, list[str]]:
    """rule -> the resource groups its jobs use under this config (train: train and/or train_b2n)."""
    out = {rule: [group] for rule, group in RULE_GROUPS.items()}
    train = []
    if any("train" in b for b in cfg.get("backbones", {}).values()):
        train.append("train")
    if cfg.get("b2n", {}).get("datasets"):
        train.append("train_b2n")
    out["train"] = train
    return {rule: gs for rule, gs in out.items() if gs}


def config_key(group: str, key: str) -> str:
    """The config key that sets a group's resource."""
    return "download.workers" if (group, key) == ("download", "threads") else f"resources.{group}.{key}"


def requests(cfg: dict) -> list[Request]:
    """Every rule's request under this config, one per (rule, group) its jobs use."""
    out = []
    for rule, groups in groups_used(cfg).items():
        for g in groups:
            r = {k: resource(cfg, g, k) for k in KEYS}
            if rule in ONE_THREAD:
                r["threads"] = 1
            out.append(Request(rule=rule, group=g, **r))
    return out
