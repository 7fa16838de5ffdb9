"""`zar bench`: speed figures (zar.bench), one subcommand each."""
from __future__ import annotations

SUBCOMMANDS = {
    "pipeline": "zar's path and a straightforward reference, per video, side by side",
    "table1": "the Table 1 estimate from the figures of `zar bench pipeline --json`",
    "tower": "the image tower alone, both precisions, eager and (--compile) torch.compile",
    "train-step": "time fine-tuning steps on random clips",
    "train-data": "time decoding + augmentation through the DataLoader",
    "read": "time the video reader's backends on a synthetic clip",
}


def add_arguments(p) -> None:
    from zar.bench.estimate import add_table1_arguments
    from zar.bench.pipeline import add_pipeline_arguments
    from zar.bench.read import add_read_arguments
    from zar.bench.tower import add_tower_arguments
    from zar.bench.train import add_data_arguments, add_step_arguments

    sub = p.add_subparsers(dest="what", required=True, metavar="{" + ",".join(SUBCOMMANDS) + "}")
    adders = {"pipeline": add_pipeline_arguments, "table1": add_table1_arguments, "tower": add_tower_arguments,
              "train-step": add_step_arguments, "train-data": add_data_arguments, "read": add_read_arguments}
    for name, help_text in SUBCOMMANDS.items():
        adders[name](sub.add_parser(name, help=help_text))


def run(args) -> int:
    if args.what == "pipeline":
        from zar.bench.pipeline import pipeline
        return pipeline(args)
    if args.what == "table1":
        from zar.bench.estimate import table1_from_json
        return table1_from_json(args)
    if args.what == "tower":
        from zar.bench.tower import tower
        return tower(args)
    if args.what in ("train-step", "train-data"):
        from zar.bench.train import run_bench
        return run_bench(args)
    from zar.bench.read import run_read
    return run_read(args)
