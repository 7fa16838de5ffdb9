"""Every output path of the workflow, one template each: the rules take a template as their
output pattern (:func:`pattern`, the wildcards left in braces) and the plan fills it for a
job (:func:`path`), so the two can never disagree. A log or benchmark file lies where its
output does, under ``logs_dir`` or ``benchmarks_dir`` (:func:`log`, :func:`benchmark`)."""
from __future__ import annotations

import re

TEMPLATES = {
    "zeroshot_result": "{results}/zeroshot/{dataset}/{run}/split{split}.json",
    "ablation_result": "{results}/ablations/{dataset}/{variant}/split{split}.json",
    "b2n_result": "{results}/b2n/{dataset}/s{shot}/{subset}.json",
    "testtime_result": "{results}/testtime/{dataset}/{backbone}/{method}/split{split}.json",
    "embeddings": "{results}/embeddings/{dataset}/{backbone}/{viewset}/shard{k}of{n}.pt",
    "model_dir": "{results}/models/{backbone}",
    "model_weights": "{results}/models/{backbone}/model.safetensors",
    "model_meta": "{results}/models/{backbone}/model.json",
    "table": "{results}/table{table}.{ext}",
    "splits_audit": "{results}/splits/audit.txt",
    "perclass_dir": "{results}/figures/perclass/table{table}",
    "ablation_figure": "{results}/figures/ablation_table{table}.png",
    "ablation_data": "{results}/figures/ablation_table{table}.csv",
    "tsne_dir": "{results}/figures/tsne/{backbone}",
    "attention_dir": "{results}/figures/attention/{backbone}",
    "cost_figure": "{results}/figures/testtime_cost.png",
    "cost_data": "{results}/figures/testtime_cost.csv",
}
_ROOTS = {"results": "results_dir", "logs": "logs_dir", "benchmarks": "benchmarks_dir"}


def _roots(cfg: dict) -> dict[str, str]:
    return {k: cfg[v] for k, v in _ROOTS.items() if v in cfg}


def pattern(cfg: dict, name: str, **fixed) -> str:
    """The template ``name`` with the config's folders (and ``fixed`` values) filled in and
    every other field left as a wildcard: an output pattern for a rule."""
    values = {**_roots(cfg), **fixed}
    return re.sub(r"\{(\w+)\}", lambda m: str(values[m.group(1)]) if m.group(1) in values else m.group(0),
                  TEMPLATES[name])


def path(cfg: dict, name: str, **values) -> str:
    """The template ``name`` filled in completely: one job's file."""
    return TEMPLATES[name].format(**_roots(cfg), **values)


def _beside(cfg: dict, name: str, root: str, suffix: str, fixed: dict) -> str:
    p = pattern(cfg, name, **fixed)
    head = cfg["results_dir"]
    assert p.startswith(head + "/"), (name, p)
    return re.sub(r"\.\w+$", "", cfg[root] + p[len(head):]) + suffix


def predictions(result_pattern: str) -> str:
    """The per-video predictions beside a result (``.json`` -> ``.jsonl``)."""
    return result_pattern + "l"


def log(cfg: dict, name: str, **fixed) -> str:
    """The log file of the job writing ``name``'s output (a pattern, like :func:`pattern`)."""
    return _beside(cfg, name, "logs_dir", ".log", fixed)


def benchmark(cfg: dict, name: str, **fixed) -> str:
    """The benchmark file of the job writing ``name``'s output (a pattern, like :func:`pattern`)."""
    return _beside(cfg, name, "benchmarks_dir", ".tsv", fixed)
