"""Paths and targets of the Snakemake workflow, as pure functions of its config.

The rules (workflow/rules/*.smk) and `zar tables` both use these, so a result file's name
is decided in one place. Paths name what they hold, general to specific:

    results/embeddings/{dataset}/{evalset}/{backbone}/f{frames}/shard{k}of{n}.pt
    results/zeroshot/{dataset}/{backbone}/{method}/split{split}.json
    results/ablations/{dataset}/{variant}/split{split}.json
    results/b2n/{dataset}/s{shot}/{subset}.json
    results/models/{backbone}/model.safetensors
    results/table{n}.{md,tex,csv}

``evalset`` is ``split1``..``split3`` (zero-shot) or ``b2n_base`` / ``b2n_novel``.
"""
from __future__ import annotations

from typing import Any


# ----------------------------------------------------------------------------- splits
def split_dir(cfg: dict, dataset: str, evalset: str) -> str:
    base = f"{cfg['splits_dir']}/{dataset}"
    if evalset.startswith("split"):
        return f"{base}/zeroshot/{evalset}"
    if evalset in ("b2n_base", "b2n_novel"):
        return f"{base}/b2n/{evalset[4:]}"
    raise ValueError(f"unknown evaluation set {evalset!r}")


def classes_csv(cfg: dict, dataset: str, evalset: str) -> str:
    return f"{split_dir(cfg, dataset, evalset)}/classes.csv"


def videos_csv(cfg: dict, dataset: str, evalset: str) -> str:
    return f"{split_dir(cfg, dataset, evalset)}/test.csv"


def video_root(cfg: dict, dataset: str) -> str:
    return f"{cfg['data_root']}/{dataset}/videos"


# ----------------------------------------------------------------------------- backbones
def trained_backbones(cfg: dict) -> dict[str, dict]:
    """Backbones made by `zar train`: key -> training entry."""
    out = {k: v["train"] for k, v in cfg["backbones"].items() if "train" in v}
    for ds in cfg["b2n"]["datasets"]:
        for s in cfg["b2n"]["shots"]:
            out[b2n_backbone(ds, s)] = {"b2n": ds, "shot": s}
    return out


def b2n_backbone(dataset: str, shot: int) -> str:
    return f"b2n_{dataset}_s{shot}"


def model_dir(cfg: dict, backbone: str) -> str:
    return f"{cfg['results_dir']}/models/{backbone}"


def backbone_arg(cfg: dict, backbone: str) -> str:
    """The `--backbone` argument of a backbone key: a trained model's folder, or ARCH:PRETRAINED."""
    entry = cfg["backbones"].get(backbone)
    if entry is None or "train" in entry:
        if backbone in trained_backbones(cfg):
            return model_dir(cfg, backbone)
        raise KeyError(f"unknown backbone {backbone!r}")
    if entry.get("quick_gelu") is not None:  # the full spec, as JSON text for the shell
        import json
        import shlex

        return shlex.quote(json.dumps({k: entry.get(k) for k in ("arch", "pretrained", "quick_gelu")}))
    pre = entry.get("pretrained") or "none"
    return f"{entry['arch']}:{pre}"


def backbone_inputs(cfg: dict, backbone: str) -> list[str]:
    return [f"{model_dir(cfg, backbone)}/model.safetensors"] if backbone in trained_backbones(cfg) else []


# ----------------------------------------------------------------------------- what each experiment needs
def _views(cfg: dict) -> dict[str, Any]:
    return cfg["method"]["views"]


def ratio_variant(ratio: float) -> str:
    return f"ratio{int(round(ratio * 100))}"


def rates_variant(name: str) -> str:
    return f"rates_{name}"


def crops_variant(crops: int) -> str:
    return f"crops{crops}"


def ablation_variants(cfg: dict, dataset: str) -> dict[str, dict[str, Any]]:
    """variant name -> settings overrides (`--set` items), for one dataset."""
    ab = cfg["ablations"]
    out: dict[str, dict[str, Any]] = {}
    if dataset in ab["ratio"]["datasets"]:
        for r in ab["ratio"]["values"]:
            out[ratio_variant(r)] = {"tune.ratio": r}
    if dataset in ab["rates"]["datasets"]:
        for name, rates in ab["rates"]["variants"].items():
            out[rates_variant(name)] = {"views.rates": list(rates)}
    if dataset in ab["crops"]["datasets"]:
        for c in ab["crops"]["values"]:
            out[crops_variant(c)] = {"views.crops": c}
    return out


def encode_views(cfg: dict, dataset: str, evalset: str, backbone: str) -> dict[str, Any]:
    """The superset of views every experiment on (dataset, evalset, backbone) needs: one encode job."""
    v = dict(_views(cfg))
    if evalset.startswith("b2n"):
        v["frames"] = cfg["b2n"]["frames"]
        return v
    crops, rates = [v["crops"]], set(v["rates"])
    if backbone == cfg["ablations"]["backbone"] and int(evalset[5:]) in cfg["ablations"]["splits"]:
        for over in ablation_variants(cfg, dataset).values():
            crops.append(over.get("views.crops", v["crops"]))
            rates |= set(over.get("views.rates", v["rates"]))
    v["crops"] = max(crops)
    v["rates"] = sorted(rates)
    return v


def settings_args(overrides: dict[str, Any]) -> str:
    """`--set section.key=value` arguments (values as YAML flow text, shell-quoted)."""
    import json
    import shlex

    return " ".join(f"--set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in overrides.items())


def method_overrides(cfg: dict) -> dict[str, Any]:
    """The paper method's settings (config `method`) as overrides."""
    out = {f"views.{k}": v for k, v in cfg["method"]["views"].items()}
    out.update({f"tune.{k}": v for k, v in cfg["method"]["tune"].items()})
    out.update({f"run.{k}": v for k, v in cfg["method"]["run"].items()})
    return out


def n_shards(cfg: dict, dataset: str) -> int:
    return int(cfg["shards"].get(dataset, 1))


# ----------------------------------------------------------------------------- result paths
def embedding_shards(cfg: dict, dataset: str, evalset: str, backbone: str) -> list[str]:
    frames = encode_views(cfg, dataset, evalset, backbone)["frames"]
    n = n_shards(cfg, dataset)
    base = f"{cfg['results_dir']}/embeddings/{dataset}/{evalset}/{backbone}/f{frames}"
    return [f"{base}/shard{k}of{n}.pt" for k in range(1, n + 1)]


def zeroshot_result(cfg: dict, dataset: str, backbone: str, method: str, split: int) -> str:
    return f"{cfg['results_dir']}/zeroshot/{dataset}/{backbone}/{method}/split{split}.json"


def ablation_result(cfg: dict, dataset: str, variant: str, split: int) -> str:
    return f"{cfg['results_dir']}/ablations/{dataset}/{variant}/split{split}.json"


def b2n_result(cfg: dict, dataset: str, shot: int, subset: str) -> str:
    return f"{cfg['results_dir']}/b2n/{dataset}/s{shot}/{subset}.json"


# ----------------------------------------------------------------------------- tables
def table_spec(cfg: dict, table: int) -> dict[str, Any]:
    """What `zar tables` renders: rows x columns of result files (one per split or shot)."""
    ds_title = {k: v.get("title", k) for k, v in cfg["datasets"].items()}
    common = {"table": table, "demo": bool(cfg.get("demo", False)), "dataset_titles": ds_title}
    zs = cfg["zeroshot"]
    ab = cfg["ablations"]
    if table == 1:
        rows = [{"key": r["paper"], "label": r["label"],
                 "cells": {d: [zeroshot_result(cfg, d, r["backbone"], r["method"], s) for s in zs["splits"]]
                           for d in zs["datasets"]}} for r in zs["rows"]]
        return {**common, "columns": list(zs["datasets"]), "rows": rows}
    if table == 2:
        b = cfg["b2n"]
        rows = [{"key": d, "label": ds_title[d],
                 "cells": {sub: [b2n_result(cfg, d, s, sub) for s in b["shots"]] for sub in ("base", "novel")}}
                for d in b["datasets"]]
        return {**common, "columns": ["base", "novel", "hm"], "rows": rows}
    if table == 3:
        values = ab["ratio"]["values"]
        rows = [{"key": d, "label": ds_title[d],
                 "cells": {str(int(round(r * 100))): [ablation_result(cfg, d, ratio_variant(r), s)
                                                      for s in ab["splits"]] for r in values}}
                for d in ab["ratio"]["datasets"]]
        return {**common, "columns": [str(int(round(r * 100))) for r in values], "rows": rows}
    if table == 4:
        d_list = ab["rates"]["datasets"]
        rows = [{"key": ",".join(map(str, rates)), "label": name, "rates": list(rates),
                 "cells": {d: [ablation_result(cfg, d, rates_variant(name), s) for s in ab["splits"]] for d in d_list}}
                for name, rates in ab["rates"]["variants"].items()]
        return {**common, "columns": list(d_list), "rows": rows}
    if table == 5:
        d_list = ab["crops"]["datasets"]
        rows = [{"key": str(c), "label": f"{c} crop{'s' if c > 1 else ''}",
                 "cells": {d: [ablation_result(cfg, d, crops_variant(c), s) for s in ab["splits"]] for d in d_list}}
                for c in ab["crops"]["values"]]
        return {**common, "columns": list(d_list), "rows": rows}
    raise ValueError(f"there is no table {table}")


def table_inputs(cfg: dict, table: int) -> list[str]:
    spec = table_spec(cfg, table)
    return sorted({f for row in spec["rows"] for files in row["cells"].values() for f in files})


def all_tables(cfg: dict) -> list[str]:
    return [f"{cfg['results_dir']}/table{n}.{ext}" for n in cfg["tables"] for ext in ("md", "tex", "csv")]


# ----------------------------------------------------------------------------- figures and the report
#   results/figures/perclass/{zeroshot,b2n,ablations}/.../<result>.png   (one per result file)
#   results/figures/ablation_table{3,4,5}.png
#   results/figures/tsne/{dataset}/{backbone}.png
#   results/figures/attention/{dataset}/{backbone}.png
#   results/report/table{n}.html                                          (the tables, for the report)
RESULT_GROUPS = ("zeroshot", "b2n", "ablations")


def _figures_cfg(cfg: dict) -> dict[str, Any]:
    fig = cfg.get("figures") or {}
    return {"perclass_top": int(fig.get("perclass", {}).get("top", 10)),
            "tsne": {"max_points": 5000, "perplexity": 30.0, "seed": 0, **fig.get("tsne", {})},
            "attention": {"backbones": [], "videos": 4, "mode": "last", **fig.get("attention", {})}}


def figures_dir(cfg: dict) -> str:
    return f"{cfg['results_dir']}/figures"


def result_files(cfg: dict) -> list[str]:
    """Every result summary the configured tables read."""
    return sorted({f for t in cfg["tables"] for f in table_inputs(cfg, t)})


def perclass_figure(cfg: dict, result: str) -> str:
    """The per-class figure of a result file: its path under results/ moved to figures/perclass/."""
    prefix = f"{cfg['results_dir']}/"
    if not (result.startswith(prefix) and result.endswith(".json")):
        raise ValueError(f"{result}: not a result summary under {prefix}")
    return f"{figures_dir(cfg)}/perclass/{result[len(prefix):-len('.json')]}.png"


def perclass_figures(cfg: dict) -> list[str]:
    return [perclass_figure(cfg, r) for r in result_files(cfg)]


def ablation_figure(cfg: dict, table: int) -> str:
    return f"{figures_dir(cfg)}/ablation_table{table}.png"


def ablation_figures(cfg: dict) -> list[str]:
    return [ablation_figure(cfg, t) for t in (3, 4, 5) if t in cfg["tables"]]


def table1_backbones(cfg: dict) -> list[str]:
    """The backbones of Table 1's rows, in row order, each once (vanilla CLIP and fine-tuned)."""
    return list(dict.fromkeys(r["backbone"] for r in cfg["zeroshot"]["rows"]))


def tsne_figure(cfg: dict, dataset: str, backbone: str) -> str:
    return f"{figures_dir(cfg)}/tsne/{dataset}/{backbone}.png"


def tsne_figures(cfg: dict) -> list[str]:
    return [tsne_figure(cfg, d, b) for d in cfg["zeroshot"]["datasets"] for b in table1_backbones(cfg)]


def tsne_inputs(cfg: dict, dataset: str, backbone: str) -> list[tuple[str, str]]:
    """(embedding cache, the classes.csv its labels index) for every zero-shot split of a dataset."""
    return [(shard, classes_csv(cfg, dataset, f"split{s}")) for s in cfg["zeroshot"]["splits"]
            for shard in embedding_shards(cfg, dataset, f"split{s}", backbone)]


def attention_backbones(cfg: dict) -> list[str]:
    """Config `figures.attention.backbones`, or else the backbones of Table 1."""
    return list(_figures_cfg(cfg)["attention"]["backbones"]) or table1_backbones(cfg)


def attention_figure(cfg: dict, dataset: str, backbone: str) -> str:
    return f"{figures_dir(cfg)}/attention/{dataset}/{backbone}.png"


def attention_figures(cfg: dict) -> list[str]:
    return [attention_figure(cfg, d, b) for d in cfg["zeroshot"]["datasets"] for b in attention_backbones(cfg)]


def attention_lists(cfg: dict, dataset: str) -> dict[str, str]:
    """Where the attention frames come from: the first zero-shot split's test list and classes."""
    evalset = f"split{cfg['zeroshot']['splits'][0]}"
    return {"videos": videos_csv(cfg, dataset, evalset), "classes": classes_csv(cfg, dataset, evalset)}


def table_page(cfg: dict, table: int) -> str:
    return f"{cfg['results_dir']}/report/table{table}.html"


def all_figures(cfg: dict) -> list[str]:
    """Every figure (PNG) the workflow draws."""
    return perclass_figures(cfg) + ablation_figures(cfg) + tsne_figures(cfg) + attention_figures(cfg)


def report_files(cfg: dict) -> list[str]:
    """What the Snakemake report shows: the tables (as HTML pages) and every figure."""
    return [table_page(cfg, t) for t in cfg["tables"]] + all_figures(cfg)


def all_targets(cfg: dict) -> list[str]:
    """`rule all`: the tables and everything of the report."""
    return all_tables(cfg) + report_files(cfg)
