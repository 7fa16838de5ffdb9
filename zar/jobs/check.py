"""``zar check cluster``: does every rule fit the SLURM partition it is sent to?

Run it on the cluster's login node before submitting the workflow with a SLURM profile:

    zar check cluster --config config/config.yaml --profile profiles/slurm

It prints each rule's request and partition; for each rule that cannot run there (more CPUs,
memory, GPUs or time than any node offers, or a partition that does not exist), one line
naming the config or profile key to change, and exits 1.
"""
from __future__ import annotations

import argparse
import sys


def add_arguments(parser: argparse.ArgumentParser) -> None:
    sub = parser.add_subparsers(dest="what", required=True, metavar="{cluster}")
    p = sub.add_parser("cluster", help="compare each rule's threads, mem_mb, runtime and gpu with its SLURM "
                                       "partition (sinfo, scontrol); exit 1 naming what cannot run")
    p.add_argument("--config", default="config/config.yaml", metavar="FILE",
                   help="the workflow's config (default: config/config.yaml; the demo's: demo/config/config.yaml)")
    p.add_argument("--profile", default=None, metavar="PATH",
                   help="the Snakemake profile you will run with (folder or file), e.g. profiles/slurm: its "
                        "default-resources, set-resources and set-threads apply as in Snakemake")
    p.add_argument("--set-resources", nargs="+", default=[], metavar="RULE:KEY=VALUE",
                   help="the same overrides you give Snakemake's --set-resources")
    p.add_argument("--partition", default=None, metavar="NAME",
                   help="check every rule against this partition (default: each rule's slurm_partition "
                        "from the profile, else the cluster's default partition)")


def run(args: argparse.Namespace) -> int:
    from zar.core.errors import UserError
    from zar.core.files import read_yaml
    from zar.plan import cluster

    cfg = read_yaml(args.config, "config")
    if not isinstance(cfg, dict):
        raise UserError(f"{args.config}: a config is a mapping, not {type(cfg).__name__}")
    profile = cluster.read_profile(args.profile)
    jobs = cluster.jobs(cfg, args.config, profile, cluster.cli_set_resources(args.set_resources), args.partition)
    lines, parts = cluster.check(jobs)
    for j in jobs:
        p = parts.get(j.partition)
        name = p.name if p else (j.partition or "default")
        a = j.asks
        print(f"{j.label:<16} {name:<12} threads={a['threads']} mem_mb={a['mem_mb']} runtime={a['runtime']} "
              f"gpu={a['gpu']}")
    for p in parts.values():
        if p is not None:
            biggest = max(p.nodes, key=lambda n: (n.gpus, n.cpus, n.mem_mb)) if p.nodes else None
            offer = (f"{len(p.nodes)} node(s), largest {biggest.cpus} CPUs, {biggest.mem_mb} MB, "
                     f"{biggest.gpus} GPUs" if biggest else "no nodes")
            limit = "unlimited" if p.max_time is None else f"{p.max_time} min"
            print(f"partition {p.name}: {p.state}, {offer}, MaxTime {limit}")
    if lines:
        for line in lines:
            print(line, file=sys.stderr)
        print(f"zar check cluster: {len(lines)} rule(s) cannot run as configured (change the keys named above, "
              "or give the rule another partition with --set-resources RULE:slurm_partition=NAME)", file=sys.stderr)
        return 1
    print(f"zar check cluster: every rule fits its partition ({len(jobs)} rules)")
    return 0
