"""What the Snakemake workflow runs, as pure functions of its config.

Everything starts from :func:`evaluations`: every tuning job (one video list evaluated with
one backbone and one set of settings) that the configured tables need. From them follow
the encodings (:func:`encodings`: one per dataset, backbone and frame counts, holding the
union of the lists that use it and the superset of their views), the tables' cells and the
output paths. The rules (workflow/rules/*.smk) and `zar tables` call these, so a result
file's name and content are decided in one place. Paths name what they hold, general to
specific:

    results/embeddings/{dataset}/{backbone}/t{T}_i{I}/shard{k}of{n}.pt
    results/zeroshot/{dataset}/{run}/split{split}.json
    results/ablations/{dataset}/{variant}/split{split}.json
    results/b2n/{dataset}/s{shot}/{subset}.json
    results/models/{backbone}/model.safetensors
    results/table{n}.{md,tex,csv}

``T`` is the tuning views' frame count (0: no views, the inference clip alone), ``I`` the
inference clip's.
"""
from __future__ import annotations

import json
import shlex
from dataclasses import dataclass, field
from typing import Any

from zar.report import table_registry
from zar.core import datasets
from zar.plan import paths


# ----------------------------------------------------------------------------- splits
@dataclass(frozen=True)
class EvalSet:
    """The list an evaluation scores: zero-shot split ``split``, or the ``side`` (base or
    novel) of the base-to-novel split. ``str()`` gives its name in labels: ``split2``,
    ``b2n_base``."""

    split: int | None = None
    side: str | None = None

    def __post_init__(self):
        if (self.split is None) == (self.side is None) or self.side not in (None, "base", "novel"):
            raise ValueError(f"an evaluation set is a split or a base-to-novel side, not {self}")

    def __str__(self) -> str:
        return f"split{self.split}" if self.split is not None else f"b2n_{self.side}"

    def list_file(self, dataset: str, name: str) -> str:
        """``classes`` or ``test`` of this set, relative to the splits folder."""
        if self.split is not None:
            return datasets.zeroshot_list(dataset, self.split, name)
        return datasets.b2n_list(dataset, self.side, name)


def classes_path(cfg: dict, dataset: str, evalset: EvalSet) -> str:
    """Where the class list of an evaluation set lives."""
    return f"{cfg['splits_dir']}/{evalset.list_file(dataset, 'classes')}"


def videos_path(cfg: dict, dataset: str, evalset: EvalSet) -> str:
    """Where the video list of an evaluation set lives."""
    return f"{cfg['splits_dir']}/{evalset.list_file(dataset, 'test')}"


def b2n_train_path(cfg: dict, dataset: str, shot: int) -> str:
    return f"{cfg['splits_dir']}/{datasets.b2n_train_list(dataset, shot)}"


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
    return paths.path(cfg, "model_dir", backbone=backbone)


def backbone_arg(cfg: dict, backbone: str) -> str:
    """The `--backbone` argument of a backbone key: a trained model's folder, or ARCH:PRETRAINED."""
    entry = cfg["backbones"].get(backbone)
    if entry is None or "train" in entry:
        if backbone in trained_backbones(cfg):
            return model_dir(cfg, backbone)
        raise KeyError(f"unknown backbone {backbone!r}")
    if entry.get("quick_gelu") is not None:  # the full spec, as JSON text for the shell
        return shlex.quote(json.dumps({k: entry.get(k) for k in ("arch", "pretrained", "quick_gelu")}))
    pre = entry.get("pretrained") or "none"
    return f"{entry['arch']}:{pre}"


def backbone_inputs(cfg: dict, backbone: str) -> list[str]:
    return [paths.path(cfg, "model_weights", backbone=backbone)] if backbone in trained_backbones(cfg) else []


# ----------------------------------------------------------------------------- settings
def method_settings(cfg: dict) -> dict[str, Any]:
    """The paper method's settings (config `method`) as flat ``section.key`` items."""
    out = {}
    for sec in ("views", "tune", "run"):
        out.update({f"{sec}.{k}": v for k, v in cfg["method"][sec].items()})
    return out


def settings_args(overrides: dict[str, Any]) -> str:
    """`--set section.key=value` arguments (values as YAML flow text, shell-quoted)."""
    return " ".join(f"--set {shlex.quote(f'{k}={json.dumps(v)}')}" for k, v in overrides.items())


def ratio_variant(ratio: float) -> str:
    return f"ratio{int(round(ratio * 100))}"


def rates_variant(name: str) -> str:
    return f"rates_{name}"


def crops_variant(crops: int) -> str:
    return f"crops{crops}"


def ablation_variants(cfg: dict, dataset: str) -> dict[str, dict[str, Any]]:
    """variant name -> settings overrides, for one dataset."""
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


def n_shards(cfg: dict, dataset: str) -> int:
    return int(cfg["shards"].get(dataset, 1))


# ----------------------------------------------------------------------------- evaluations
@dataclass(frozen=True)
class Evaluation:
    """One tuning job: a video list evaluated with one backbone and one set of settings."""

    kind: str  # zeroshot | ablation | b2n | testtime
    dataset: str
    evalset: EvalSet
    backbone: str
    method: str  # zar | vanilla
    settings: tuple[tuple[str, Any], ...]  # every setting, flat section.key items (method's + overrides)
    result: str  # the summary JSON
    label: str

    def setting(self, key: str) -> Any:
        return dict(self.settings)[key]

    def viewset(self) -> str:
        """``t{T}_i{I}``: tuning-view and inference-clip frames (T = 0: no views), with
        ``_vifi`` for ViFi-CLIP's evaluation preprocessing (``views.preprocess``)."""
        views = self.setting("views.frames") if self.setting("views.samples_per_rate") else 0
        suffix = "" if self.setting("views.preprocess") == "backbone" else f"_{self.setting('views.preprocess')}"
        return f"t{views}_i{self.setting('views.infer_frames')}{suffix}"


def _freeze(settings: dict[str, Any]) -> tuple[tuple[str, Any], ...]:
    return tuple(sorted((k, tuple(v) if isinstance(v, list) else v) for k, v in settings.items()))


def zeroshot_result(cfg: dict, dataset: str, run: str, split: int) -> str:
    return paths.path(cfg, "zeroshot_result", dataset=dataset, run=run, split=split)


def ablation_result(cfg: dict, dataset: str, variant: str, split: int) -> str:
    return paths.path(cfg, "ablation_result", dataset=dataset, variant=variant, split=split)


def b2n_result(cfg: dict, dataset: str, shot: int, subset: str) -> str:
    return paths.path(cfg, "b2n_result", dataset=dataset, shot=shot, subset=subset)


def testtime_result(cfg: dict, dataset: str, backbone: str, method: str, split: int) -> str:
    return paths.path(cfg, "testtime_result", dataset=dataset, backbone=backbone, method=method, split=split)


def _testtime(cfg: dict) -> list[Evaluation]:
    """Table 6: every test-time method on each (dataset, backbone, split), all from the paper
    method's views (one tuning job per dataset, backbone and split runs every method)."""
    t, settings = cfg["testtime"], _freeze(method_settings(cfg))
    return [Evaluation("testtime", ds, EvalSet(split=s), b, m, settings, testtime_result(cfg, ds, b, m, s),
                       f"{ds}/split{s}/{b}/{m}")
            for ds in t["datasets"] for b in t["backbones"] for s in t["splits"] for m in t["methods"]]


def _zeroshot_cells(cfg: dict) -> dict[tuple[str, str, int], Evaluation]:
    """(dataset, run, split) -> the evaluation giving Table 1's cell. A run's cell that is
    exactly one of Table 6's evaluations (same list, backbone, method and settings: e.g. ZAR
    on Table 6's grid) reads Table 6's result, when Table 6 is configured: its tuning job runs
    that method anyway, and one job starts instead of two."""
    zs, base = cfg["zeroshot"], method_settings(cfg)
    shared = {(e.dataset, e.evalset, e.backbone, e.method, e.settings): e
              for e in (_testtime(cfg) if 6 in cfg["tables"] else [])}
    out = {}
    for run, r in zs["runs"].items():
        settings = _freeze({**base, **r.get("settings", {})})
        for ds in zs["datasets"]:
            for s in zs["splits"]:
                out[ds, run, s] = shared.get((ds, EvalSet(split=s), r["backbone"], r["method"], settings)) or Evaluation(
                    "zeroshot", ds, EvalSet(split=s), r["backbone"], r["method"], settings,
                    zeroshot_result(cfg, ds, run, s), f"{ds}/split{s}/{run}")
    return out


def _zeroshot(cfg: dict) -> list[Evaluation]:
    """Table 1's evaluations (some of them Table 6's: :func:`_zeroshot_cells`)."""
    return list(dict.fromkeys(_zeroshot_cells(cfg).values()))


def _ablations(cfg: dict, main: list[Evaluation]) -> dict[tuple[str, str, int], Evaluation]:
    """(dataset, variant, split) -> the evaluation giving that cell. A variant whose settings
    are exactly a zero-shot run's (e.g. ratio 0.8 on the ablation backbone) reuses its result."""
    ab, base = cfg["ablations"], method_settings(cfg)
    same = {(e.dataset, e.evalset, e.backbone, e.method, e.settings): e for e in main}
    out = {}
    for ds in cfg["datasets"]:
        for variant, over in ablation_variants(cfg, ds).items():
            settings = _freeze({**base, **over})
            for s in ab["splits"]:
                e = same.get((ds, EvalSet(split=s), ab["backbone"], "zar", settings)) or Evaluation(
                    "ablation", ds, EvalSet(split=s), ab["backbone"], "zar", settings,
                    ablation_result(cfg, ds, variant, s), f"{ds}/split{s}/{variant}")
                out[ds, variant, s] = e
    return out


def _b2n(cfg: dict) -> dict[tuple[str, int, str], Evaluation]:
    b = cfg["b2n"]
    settings = _freeze({**method_settings(cfg), "views.frames": b["view_frames"]})
    return {(ds, s, sub): Evaluation("b2n", ds, EvalSet(side=sub), b2n_backbone(ds, s), b["method"], settings,
                                     b2n_result(cfg, ds, s, sub), f"{ds}/b2n/s{s}/{sub}")
            for ds in b["datasets"] for s in b["shots"] for sub in ("base", "novel")}


def _catalogue(cfg: dict) -> dict[str, Evaluation]:
    """Every evaluation the config describes, by result file (the tables pick theirs)."""
    main = _zeroshot(cfg)
    return {e.result: e for e in [*main, *_ablations(cfg, main).values(), *_b2n(cfg).values(), *_testtime(cfg)]}


def evaluations(cfg: dict) -> list[Evaluation]:
    """Every tuning job of the configured tables: the result files their cells read, each once."""
    wanted = {f for n in cfg["tables"] for f in table_inputs(cfg, n)}
    return [e for f, e in _catalogue(cfg).items() if f in wanted]


def evaluation(cfg: dict, result: str) -> Evaluation:
    """The evaluation that writes ``result`` (a rule's output)."""
    for e in evaluations(cfg):
        if e.result == result:
            return e
    served = {zeroshot_result(cfg, ds, run, s): e.result for (ds, run, s), e in _zeroshot_cells(cfg).items()}
    if served.get(result, result) != result:
        raise ValueError(f"{result}: this cell of Table 1 is Table 6's {served[result]} (the same evaluation): "
                         "ask for that file")
    raise ValueError(f"{result}: no configured evaluation writes this file")


def evaluation_settings(e: Evaluation) -> dict[str, Any]:
    """The `--set` items of an evaluation's tuning job."""
    return {k: list(v) if isinstance(v, tuple) else v for k, v in e.settings}


# ----------------------------------------------------------------------------- encodings
@dataclass
class Encoding:
    """One `zar encode` run (sharded): a dataset's lists on one backbone, one frame setting."""

    dataset: str
    backbone: str
    viewset: str
    lists: list[str] = field(default_factory=list)
    settings: dict[str, Any] = field(default_factory=dict)


def _encodings(cfg: dict) -> dict[tuple[str, str, str], Encoding]:
    out: dict[tuple[str, str, str], Encoding] = {}
    for e in evaluations(cfg):
        key = (e.dataset, e.backbone, e.viewset())
        enc = out.setdefault(key, Encoding(*key))
        want = evaluation_settings(e)
        lst = videos_path(cfg, e.dataset, e.evalset)
        if lst not in enc.lists:
            enc.lists.append(lst)
        views = {k: v for k, v in want.items() if k.startswith(("views.", "run."))}
        if not enc.settings:
            enc.settings = views
            continue
        have = enc.settings  # the superset of views: most crops and samples, every rate
        for k, v in views.items():
            if k == "views.crops":
                have[k] = max(have[k], v)
            elif k == "views.samples_per_rate":
                have[k] = max(have[k], v)
            elif k == "views.rates":
                have[k] = sorted(set(have[k]) | set(v))
            elif have[k] != v:
                raise ValueError(f"{e.label}: {k} = {v!r} differs from {have[k]!r} of another evaluation "
                                 f"encoded with it ({'/'.join(key)})")
    for enc in out.values():
        enc.lists.sort()
    return out


def encodings(cfg: dict) -> list[Encoding]:
    return list(_encodings(cfg).values())


def encoding(cfg: dict, dataset: str, backbone: str, viewset: str) -> Encoding:
    try:
        return _encodings(cfg)[dataset, backbone, viewset]
    except KeyError:
        raise ValueError(f"no configured evaluation encodes {dataset} with {backbone} at {viewset}") from None


def embedding_shards(cfg: dict, dataset: str, backbone: str, viewset: str) -> list[str]:
    n = n_shards(cfg, dataset)
    return [paths.path(cfg, "embeddings", dataset=dataset, backbone=backbone, viewset=viewset, k=k, n=n)
            for k in range(1, n + 1)]


def evaluation_shards(cfg: dict, e: Evaluation) -> list[str]:
    return embedding_shards(cfg, e.dataset, e.backbone, e.viewset())


# ----------------------------------------------------------------------------- tables
@dataclass
class TableJobs:
    """The result file of each evaluation, for a table's layout (zar.report.table_registry.Jobs)."""

    cfg: dict

    def zeroshot(self, dataset: str, run: str, split: int) -> str:
        if not hasattr(self, "_zs"):
            self._zs = _zeroshot_cells(self.cfg)
        return self._zs[dataset, run, split].result

    def ablation(self, dataset: str, axis: str, value: Any, split: int) -> str:
        variant = {"ratio": ratio_variant, "rates": rates_variant, "crops": crops_variant}[axis](value)
        return self._ablations[dataset, variant, split].result

    def b2n(self, dataset: str, shot: int, subset: str) -> str:
        return b2n_result(self.cfg, dataset, shot, subset)

    def testtime(self, dataset: str, backbone: str, method: str, split: int) -> str:
        return testtime_result(self.cfg, dataset, backbone, method, split)

    @property
    def _ablations(self) -> dict[tuple[str, str, int], Evaluation]:
        if not hasattr(self, "_cells"):
            self._cells = _ablations(self.cfg, _zeroshot(self.cfg))
        return self._cells


def table_spec(cfg: dict, table: int) -> dict[str, Any]:
    """What `zar tables` renders: rows x columns of result files (one per split or shot), the
    metric each row reads, and the paper's row it is compared with (if any); the table's
    declaration (zar.report.table_registry) lays it out."""
    ds_title = {k: v.get("title", k) for k, v in cfg["datasets"].items()}
    columns, rows = table_registry.get(table).layout(TableJobs(cfg))
    return {"table": table, "demo": bool(cfg.get("demo", False)), "dataset_titles": ds_title,
            "columns": columns, "rows": rows}


def table_inputs(cfg: dict, table: int) -> list[str]:
    spec = table_spec(cfg, table)
    return sorted({f for row in spec["rows"] for files in row["cells"].values() for f in files})


def all_tables(cfg: dict) -> list[str]:
    return [paths.path(cfg, "table", table=n, ext=ext) for n in cfg["tables"] for ext in ("md", "tex", "csv", "html")]


# ----------------------------------------------------------------------------- the config
def check_config(cfg: dict, schema_path: str) -> None:
    """Refuse a config that breaks the schema with a few short lines (Snakemake's own message
    prints the whole schema), and check the method settings with zar's own rules."""
    import jsonschema
    import yaml

    from zar.method.settings import load_settings
    from zar.core.errors import UserError

    with open(schema_path, encoding="utf-8") as f:
        schema = yaml.safe_load(f)
    errors = sorted(jsonschema.Draft202012Validator(schema).iter_errors(cfg), key=lambda e: list(e.path))
    if errors:
        lines = [f"  {'.'.join(map(str, e.path)) or '(top level)'}: {e.message[:200]}" for e in errors[:5]]
        raise UserError("the config does not fit workflow/schemas/config.schema.yaml:\n" + "\n".join(lines))
    from zar.core.datasets import DATASETS

    named = {("datasets", k) for k in cfg.get("datasets", {})}
    for part in ("zeroshot", "b2n"):
        named |= {(f"{part}.datasets", k) for k in cfg.get(part, {}).get("datasets", [])}
    for name, entry in cfg.get("ablations", {}).items():
        if isinstance(entry, dict):
            named |= {(f"ablations.{name}.datasets", k) for k in entry.get("datasets", [])}
    named |= {(f"training.{t}.dataset", e["dataset"]) for t, e in cfg.get("training", {}).items()}
    unknown_tables = [n for n in cfg.get("tables", []) if n not in table_registry.TABLES]
    if unknown_tables:
        raise UserError(f"tables: no table {unknown_tables[0]} (zar knows tables "
                        f"{', '.join(map(str, table_registry.TABLES))}: zar/report/table_registry.py)")
    unknown = sorted(f"{where}: {k}" for where, k in named if k not in DATASETS)
    if unknown:
        raise UserError(f"unknown dataset(s) in the config ({'; '.join(unknown[:5])}); zar knows "
                        f"{', '.join(DATASETS)} (zar/core/datasets.py)")
    method = cfg.get("method", {})
    load_settings(None, [f"{k}={json.dumps(v)}" for sec in ("views", "tune", "run")
                         for k, v in ((f"{sec}.{n}", x) for n, x in method.get(sec, {}).items())])


# ----------------------------------------------------------------------------- figures and the report
#   results/figures/perclass/table{n}/<result path with '-'>.png   (one per result of the table)
#   results/figures/ablation_table{3,4,5}.png
#   results/figures/tsne/{backbone}/{dataset}.png
#   results/figures/attention/{backbone}/{dataset}.png
#   results/table{n}.html                                          (the tables, for the report)
# One job per table (per-class figures), per ablation table, and per backbone (t-SNE and
# attention over every dataset): figure jobs stay few.


def perclass_dir(cfg: dict, table: int) -> str:
    return paths.path(cfg, "perclass_dir", table=table)


def ablation_figure(cfg: dict, table: int) -> str:
    return paths.path(cfg, "ablation_figure", table=table)


def ablation_figures(cfg: dict) -> list[str]:
    """The configured tables that are drawn (a ``plot`` in their declaration)."""
    return [ablation_figure(cfg, t) for t in table_registry.plotted() if t in cfg["tables"]]


def table1_backbones(cfg: dict) -> list[str]:
    """The backbones of Table 1's runs, in row order, each once."""
    runs = cfg["zeroshot"]["runs"]
    return list(dict.fromkeys(runs[r["run"]]["backbone"] for r in cfg["zeroshot"]["rows"]))


def tsne_dir(cfg: dict, backbone: str) -> str:
    return paths.path(cfg, "tsne_dir", backbone=backbone)


def tsne_inputs(cfg: dict, dataset: str, backbone: str) -> dict[str, list[str]]:
    """The encoding of a dataset's zero-shot videos on a backbone (the ZAR run's frames) and
    the split files naming each video's class."""
    zs = [e for e in _zeroshot(cfg) if e.dataset == dataset and e.backbone == backbone]
    if not zs:
        raise ValueError(f"no zero-shot evaluation of {dataset} on {backbone}")
    views = next((e for e in zs if e.setting("views.samples_per_rate")), zs[0])
    return {"embeddings": evaluation_shards(cfg, views), "videos": sorted({videos_path(cfg, dataset, e.evalset)
                                                                           for e in zs})}


def attention_backbones(cfg: dict) -> list[str]:
    """Config `figures.attention.backbones`, or else the backbones of Table 1."""
    return list(cfg["figures"]["attention"]["backbones"]) or table1_backbones(cfg)  # the schema's default: []


def attention_dir(cfg: dict, backbone: str) -> str:
    return paths.path(cfg, "attention_dir", backbone=backbone)


def attention_lists(cfg: dict, dataset: str) -> dict[str, str]:
    """Where the attention frames come from: the first zero-shot split's test list and classes."""
    evalset = EvalSet(split=cfg["zeroshot"]["splits"][0])
    return {"videos": videos_path(cfg, dataset, evalset), "classes": classes_path(cfg, dataset, evalset)}


def figure_targets(cfg: dict) -> list[str]:
    """Every figure job's output (folders for the batched ones)."""
    cost = [paths.path(cfg, "cost_figure")] if 6 in cfg["tables"] else []
    perclass = [t for t in cfg["tables"] if table_registry.get(t).from_paper]  # Table 6's methods: the cost plot
    return ([perclass_dir(cfg, t) for t in perclass] + ablation_figures(cfg) + cost
            + [tsne_dir(cfg, b) for b in table1_backbones(cfg)]
            + [attention_dir(cfg, b) for b in attention_backbones(cfg)])


def all_targets(cfg: dict) -> list[str]:
    """`rule all`: the tables (with their HTML pages) and every figure of the report."""
    return all_tables(cfg) + figure_targets(cfg)
