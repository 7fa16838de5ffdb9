"""The paper config's Table 1 in device-hours, from the rates `zar bench pipeline` measured
(`zar bench table1 --rates FILE` from its ``--json`` figures)."""
from __future__ import annotations

from pathlib import Path


def add_estimate_arguments(p) -> None:
    p.add_argument("--config-file", default="config/config.yaml",
                   help="the workflow config whose Table 1 is estimated (default config/config.yaml)")
    p.add_argument("--splits", default=None, help="splits folder of that config (default: its splits_dir)")


def add_table1_arguments(p) -> None:
    p.add_argument("--rates", required=True, help="JSON file written by `zar bench pipeline --json`")
    add_estimate_arguments(p)


def table1_estimate(config_file: str, splits: str | None, zar: dict, classes: int, bench_crops: int,
                    startup_s: float = 0.0) -> dict:
    """Device-hours of the paper config's Table 1 from the measured per-video rates: every
    encoding (its union of videos; the view images scaled by its crops, plus its inference
    clip; or its inference clip alone) at the encode stage's wall time per image (reading that
    the encoder did not hide included), every tuning job (scaled by its number of classes),
    and each job's start: ``startup_s`` (imports and model) per job, plus the readers' start
    per encoding job (one per shard)."""
    import copy

    import yaml
    from snakemake.utils import validate

    import zar.plan as plan
    from zar.core.errors import UserError
    from zar.core.splitfiles import read_videos

    cfg = copy.deepcopy(yaml.safe_load(Path(config_file).read_text()))
    # the workflow's schema, in the repository that holds the config (config/ beside workflow/)
    schema = Path(config_file).resolve().parent.parent / "workflow/schemas/config.schema.yaml"
    if not schema.is_file():
        raise UserError(f"{config_file}: the workflow's schema is not at {schema} (the config must be the one in "
                        "config/ of a zar checkout)")
    validate(cfg, str(schema))  # fills in the defaults
    cfg["tables"] = [1]
    if splits:
        cfg["splits_dir"] = splits
    ids = lambda lst: {r.video_id for r in read_videos(lst)}  # noqa: E731
    per_image = (zar["read"] + zar["encode"]) / zar["images"]
    encode_s = tune_s = 0.0
    n_videos = encode_jobs = 0
    for enc in plan.encodings(cfg):
        videos = set().union(*(ids(lst) for lst in enc.lists))
        n_videos += len(videos)
        encode_jobs += plan.n_shards(cfg, enc.dataset)
        s = enc.settings
        view_images = ((zar["images"] - zar["infer_images"]) * s["views.crops"] / bench_crops
                       if s["views.samples_per_rate"] else 0)
        encode_s += len(videos) * per_image * (view_images + s["views.infer_frames"])
    evaluations = plan.evaluations(cfg)
    for e in evaluations:
        n_classes = len(Path(plan.classes_path(cfg, e.dataset, e.evalset)).read_text().splitlines()) - 1
        per_video = zar["tune"] * n_classes / classes if e.method == "zar" else 0.0
        tune_s += len(ids(plan.videos_path(cfg, e.dataset, e.evalset))) * per_video
    start_s = (encode_jobs + len(evaluations)) * startup_s + encode_jobs * zar.get("start", 0.0)
    return {"encodings": len(plan.encodings(cfg)), "encode_jobs": encode_jobs, "videos_encoded": n_videos,
            "encode_hours": encode_s / 3600, "tune_jobs": len(evaluations), "tune_hours": tune_s / 3600,
            "start_hours": start_s / 3600, "hours": (encode_s + tune_s + start_s) / 3600}


def print_table1(config_file: str, splits: str | None, figures: dict) -> None:
    for name in (figures["precision"], figures["other_precision"]):
        res = figures["zar"][name]
        est = table1_estimate(config_file, splits, res, figures["classes"], figures["views"]["crops"],
                              figures.get("startup_s", 0.0))
        print(f"Table 1 of {config_file} on {figures['device']} at the rates of zar ({name}, tune_batch "
              f"{figures['tune_batch']}): {est['encodings']} encodings of {est['videos_encoded']:,} videos in "
              f"{est['encode_jobs']} jobs ({est['encode_hours']:.2f} h) + {est['tune_jobs']} tuning jobs "
              f"({est['tune_hours']:.2f} h) + the jobs' start-ups ({est['start_hours']:.2f} h) = {est['hours']:.2f} "
              f"device-hours (downloads, decoding and fine-tuning not counted; clips as long as the benchmark's)")


def table1_from_json(args) -> int:
    import json

    from zar.core.errors import UserError

    try:
        figures = json.loads(Path(args.rates).read_text())
    except (OSError, json.JSONDecodeError) as e:
        raise UserError(f"{args.rates}: not a figures file of `zar bench pipeline --json` ({e})") from None
    missing = [k for k in ("zar", "precision", "other_precision", "classes", "views", "device", "tune_batch")
               if k not in figures]
    if missing:
        raise UserError(f"{args.rates}: not a figures file of `zar bench pipeline --json` (no {', '.join(missing)})")
    print(f"figures measured {figures.get('created', '?')} on {figures['device']}, torch {figures.get('torch', '?')}")
    print_table1(args.config_file, args.splits, figures)
    return 0
