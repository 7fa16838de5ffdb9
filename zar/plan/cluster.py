"""Does every rule fit the SLURM partition it is sent to? (`zar check cluster`)

A job that asks more CPUs, memory, GPUs or time than any node of its partition offers stays
PENDING for ever, and Snakemake says nothing. This compares, before anything is submitted,
what each rule asks (zar.plan.resources, with the profile's ``set-resources`` and
``set-threads`` on top, as Snakemake applies them) with what ``scontrol`` and ``sinfo`` say
of the partition, and names for each rule that cannot run the key to change.
"""
from __future__ import annotations

import re
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from zar.core.errors import UserError
from zar.core.files import read_yaml
from zar.plan import resources

UNLIMITED = ("UNLIMITED", "INFINITE", "NONE")


# ----------------------------------------------------------------------------- profile
@dataclass
class Profile:
    """The parts of a Snakemake profile that decide what a job asks and where it goes."""

    path: str = ""
    default_resources: dict[str, str] = field(default_factory=dict)
    set_resources: dict[str, dict[str, str]] = field(default_factory=dict)
    set_threads: dict[str, str] = field(default_factory=dict)


def _assignments(items, where: str) -> dict[str, str]:
    """``["k=v", ...]`` (the command line's form) or ``{k: v}`` (a profile's) -> {k: v}."""
    if isinstance(items, dict):
        return {str(k): str(v) for k, v in items.items()}
    out = {}
    for item in items or []:
        k, eq, v = str(item).partition("=")
        if not eq or not k.strip():
            raise UserError(f"{where}: {item!r} is not KEY=VALUE")
        out[k.strip()] = v.strip().strip("'\"")
    return out


def read_profile(path: str | None) -> Profile:
    """A profile folder (its profile.yaml or config.yaml) or a profile file; ``None``: empty."""
    if not path:
        return Profile()
    p = Path(path)
    if p.is_dir():
        found = [p / n for n in ("profile.yaml", "config.yaml") if (p / n).is_file()]
        if not found:
            raise UserError(f"{p}: no profile.yaml or config.yaml in this profile folder")
        p = found[0]
    data = read_yaml(p, "profile")
    if not isinstance(data, dict):
        raise UserError(f"{p}: a profile is a mapping of Snakemake options, not {type(data).__name__}")
    sets = data.get("set-resources") or {}
    if not isinstance(sets, dict):
        raise UserError(f"{p}: set-resources must map rule names to resources")
    return Profile(
        path=str(p),
        default_resources=_assignments(data.get("default-resources"), f"{p}: default-resources"),
        set_resources={str(r): _assignments(v, f"{p}: set-resources.{r}") for r, v in sets.items()},
        set_threads=_assignments(data.get("set-threads"), f"{p}: set-threads"),
    )


def cli_set_resources(items: list[str]) -> dict[str, dict[str, str]]:
    """``--set-resources RULE:KEY=VALUE`` arguments, as Snakemake takes them."""
    out: dict[str, dict[str, str]] = {}
    for item in items or []:
        rule, colon, kv = item.partition(":")
        if not colon:
            raise UserError(f"--set-resources {item!r}: expected RULE:KEY=VALUE")
        out.setdefault(rule, {}).update(_assignments([kv], f"--set-resources {item!r}"))
    return out


# ----------------------------------------------------------------------------- jobs
@dataclass
class Job:
    """What one rule's jobs ask and where they go; ``source[key]`` is where a value is set."""

    rule: str
    group: str
    asks: dict[str, int]
    source: dict[str, str]
    partition: str | None
    partition_source: str

    @property
    def label(self) -> str:
        """The rule's name, and the group where one rule has two (train: k400 or base-to-novel models)."""
        return f"{self.rule}({self.group})" if self.group not in (self.rule, resources.RULE_GROUPS[self.rule]) else self.rule


def jobs(cfg: dict, config_path: str, profile: Profile, overrides: dict[str, dict[str, str]],
         partition: str | None = None) -> list[Job]:
    """Each rule's request with the profile's and the command line's settings applied."""
    out = []
    for r in resources.requests(cfg):
        asks = {k: r.value(k) for k in resources.KEYS}
        source = {k: f"{resources.config_key(r.group, k)} in {config_path}" for k in resources.KEYS}
        if r.rule in profile.set_threads:
            asks["threads"] = _int(profile.set_threads[r.rule], f"{profile.path}: set-threads.{r.rule}")
            source["threads"] = f"set-threads.{r.rule} in {profile.path}"
        for origin, sets in ((profile.path, profile.set_resources), ("the command line", overrides)):
            for k, v in sets.get(r.rule, {}).items():
                if k in resources.KEYS:
                    asks[k] = _int(v, f"{origin}: set-resources.{r.rule}.{k}")
                    source[k] = f"set-resources.{r.rule}.{k} in {origin}"
        part, psrc = _partition(r.rule, profile, overrides, partition)
        out.append(Job(r.rule, r.group, asks, source, part, psrc))
    return out


def _partition(rule: str, profile: Profile, overrides, partition: str | None) -> tuple[str | None, str]:
    if rule in overrides and "slurm_partition" in overrides[rule]:
        return overrides[rule]["slurm_partition"], f"--set-resources {rule}:slurm_partition"
    if partition:
        return partition, "--partition"
    if "slurm_partition" in profile.set_resources.get(rule, {}):
        return profile.set_resources[rule]["slurm_partition"], f"set-resources.{rule}.slurm_partition in {profile.path}"
    if "slurm_partition" in profile.default_resources:
        return profile.default_resources["slurm_partition"], f"default-resources' slurm_partition in {profile.path}"
    return None, "the cluster's default partition"


def _int(value, where: str) -> int:
    try:
        return int(float(value))
    except (TypeError, ValueError):
        raise UserError(f"{where}: {value!r} is not a number") from None


# ----------------------------------------------------------------------------- partitions
@dataclass
class Node:
    name: str
    cpus: int
    mem_mb: int
    gpus: int


@dataclass
class Partition:
    name: str
    state: str = "UP"
    max_time: int | None = None  # minutes; None: unlimited
    max_cpus_per_node: int | None = None
    max_mem_per_node: int | None = None
    nodes: list[Node] = field(default_factory=list)


def slurm_minutes(text: str) -> int | None:
    """A SLURM time limit in minutes: ``UNLIMITED``, ``M``, ``M:S``, ``H:M:S``, ``D-H``, ``D-H:M``, ``D-H:M:S``."""
    text = text.strip()
    if text.upper() in UNLIMITED:
        return None
    days, dash, rest = text.partition("-")
    if not dash:
        days, rest = "0", text
    parts = [int(x) for x in rest.split(":")]
    if dash:  # D-H, D-H:M, D-H:M:S
        h, m, s = (parts + [0, 0])[:3]
    elif len(parts) == 3:
        h, m, s = parts
    elif len(parts) == 2:
        h, (m, s) = 0, parts
    else:
        h, m, s = 0, parts[0], 0
    return int(days) * 1440 + h * 60 + m + (1 if s else 0)


def gres_gpus(gres: str) -> int:
    """GPUs in a node's GRES (sinfo %G): ``gpu:4``, ``gpu:a100:4(S:0-1)``, ``gpu:2,shard:8``, ``(null)``."""
    total = 0
    for item in re.sub(r"\([^)]*\)", "", gres).split(","):
        parts = item.strip().split(":")
        if parts[0] == "gpu":
            total += int(parts[-1]) if len(parts) > 1 and parts[-1].isdigit() else 1
    return total


def _limit(fields: dict[str, str], key: str) -> int | None:
    v = fields.get(key, "UNLIMITED")
    return None if v.upper() in UNLIMITED or not v.isdigit() else int(v)


def parse_partition(name: str, scontrol: str, sinfo: str) -> Partition:
    """A partition from ``scontrol show partition NAME -o`` and ``sinfo -h -N -p NAME -o '%N|%c|%m|%G'``."""
    fields = dict(kv.split("=", 1) for kv in scontrol.split() if "=" in kv)
    part = Partition(
        name=name,
        state=fields.get("State", "UP"),
        max_time=slurm_minutes(fields.get("MaxTime", "UNLIMITED")),
        max_cpus_per_node=_limit(fields, "MaxCPUsPerNode"),
        max_mem_per_node=_limit(fields, "MaxMemPerNode"),
    )
    seen = set()
    for line in sinfo.splitlines():
        cols = line.strip().split("|")
        if len(cols) != 4 or cols[0] in seen:
            continue
        seen.add(cols[0])
        part.nodes.append(Node(cols[0], int(re.sub(r"\D", "", cols[1]) or 0),
                               int(re.sub(r"\D", "", cols[2]) or 0), gres_gpus(cols[3])))
    return part


def _run(cmd: list[str]) -> subprocess.CompletedProcess:
    if shutil.which(cmd[0]) is None:
        raise UserError(f"{cmd[0]} not found: run `zar check cluster` where SLURM's commands are (a login node)")
    try:
        return subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        raise UserError(f"`{' '.join(cmd)}` gave no answer in 60 s: is slurmctld up?") from None


def query_partition(name: str | None) -> Partition | None:
    """The partition from SLURM itself; ``None`` when it does not exist. ``name=None``: the default one."""
    if name is None:
        listing = _run(["scontrol", "show", "partition", "-o"]).stdout
        default = [ln for ln in listing.splitlines() if "Default=YES" in ln]
        if not default:
            return None
        name = default[0].split()[0].partition("=")[2]
    shown = _run(["scontrol", "show", "partition", name, "-o"])
    said = (shown.stderr or shown.stdout).strip()
    if shown.returncode != 0 and "invalid partition" not in said.lower():
        raise UserError(f"scontrol show partition {name} failed ({said.splitlines()[-1] if said else 'no message'}): "
                        "is this a SLURM login node (slurm.conf, SLURM_CONF)?")
    if f"PartitionName={name}" not in shown.stdout:
        return None
    nodes = _run(["sinfo", "-h", "-N", "-p", name, "-o", "%N|%c|%m|%G"])
    if nodes.returncode != 0:
        raise UserError(f"sinfo -p {name}: {(nodes.stderr or nodes.stdout).strip()[:200]}")
    return parse_partition(name, shown.stdout, nodes.stdout)


# ----------------------------------------------------------------------------- the check
UNITS = {"threads": "CPUs", "mem_mb": "MB of memory", "gpu": "GPUs", "runtime": "minutes"}
NODE_KEYS = {"threads": "cpus", "mem_mb": "mem_mb", "gpu": "gpus"}


def _node_offer(part: Partition, node: Node) -> dict[str, int]:
    cpus = min(node.cpus, part.max_cpus_per_node or node.cpus)
    mem = min(node.mem_mb, part.max_mem_per_node or node.mem_mb)
    return {"threads": cpus, "mem_mb": mem, "gpu": node.gpus}


def problem(job: Job, part: Partition | None) -> str | None:
    """One line saying why ``job`` cannot run on ``part``, naming what to change; ``None`` if it fits."""
    where = job.partition or "default"
    if part is None:
        return (f"{job.label}: partition {where!r} does not exist (scontrol show partition): "
                f"change {job.partition_source}")
    if part.state.upper() not in ("UP",):
        return f"{job.label}: partition {part.name!r} is {part.state}: change {job.partition_source}"
    if not part.nodes:
        return f"{job.label}: partition {part.name!r} has no nodes (sinfo): change {job.partition_source}"
    offers = [_node_offer(part, n) for n in part.nodes]
    over = []
    for key in NODE_KEYS:
        best = max(o[key] for o in offers)
        if job.asks[key] > best:
            over.append(f"{job.asks[key]} {UNITS[key]} (largest node: {best}; set {job.source[key]})")
    if part.max_time is not None and job.asks["runtime"] > part.max_time:
        over.append(f"{job.asks['runtime']} minutes (MaxTime: {part.max_time}; set {job.source['runtime']})")
    if over:
        return f"{job.label}: asks " + ", ".join(over) + f" on partition {part.name!r}"
    if not any(all(job.asks[k] <= o[k] for k in NODE_KEYS) for o in offers):
        asks = ", ".join(f"{job.asks[k]} {UNITS[k]}" for k in NODE_KEYS)
        return (f"{job.label}: no single node of partition {part.name!r} has {asks} at once: set "
                + "; ".join(job.source[k] for k in NODE_KEYS))
    return None


def check(all_jobs: list[Job], lookup=query_partition) -> tuple[list[str], dict[str | None, Partition | None]]:
    """Problem lines (one per rule that cannot run) and the partitions looked up."""
    parts: dict[str | None, Partition | None] = {}
    lines = []
    for job in all_jobs:
        if job.partition not in parts:
            parts[job.partition] = lookup(job.partition)
        line = problem(job, parts[job.partition])
        if line:
            lines.append(line)
    return lines, parts
