"""`zar check cluster`: each rule's request against a SLURM partition, before anything is submitted.

SLURM's `scontrol` and `sinfo` are replaced by small scripts on PATH that print what a real
cluster prints (the formats of slurm 22.05); tests/cluster/slurm.sh runs the same check against
a real single-node SLURM.
"""
from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from zar.cli import main
from zar.plan import cluster, resources

ROOT = Path(__file__).resolve().parents[1]
PAPER = ROOT / "config" / "config.yaml"
DEMO = ROOT / "demo" / "config" / "config.yaml"
SLURM_PROFILE = ROOT / "profiles" / "slurm"

GPU_NODE = "gpu{i}|64|512000|gpu:a100:8(S:0-1)"
CPU_NODE = "cpu{i}|32|128000|(null)"


def fake_slurm(tmp_path: Path, monkeypatch, partitions: dict[str, tuple[str, list[str]]]) -> None:
    """``scontrol`` and ``sinfo`` that answer for ``partitions``: name -> (MaxTime, node lines)."""
    d = tmp_path / "slurm"
    d.mkdir()
    for name, (max_time, nodes) in partitions.items():
        (d / f"part_{name}").write_text(
            f"PartitionName={name} AllowGroups=ALL Default=NO MaxNodes=UNLIMITED MaxTime={max_time} "
            f"MinNodes=0 Nodes={name}[0-{len(nodes) - 1}] State=UP TotalCPUs=64 MaxCPUsPerNode=UNLIMITED "
            "MaxMemPerNode=UNLIMITED\n")
        # sinfo -N prints a node once per partition it is in, and some twice (mixed states)
        (d / f"nodes_{name}").write_text("".join(f"{n}\n" for n in nodes + nodes[:1]))
    (d / "scontrol").write_text(
        "#!/bin/sh\n"  # scontrol show partition [NAME] -o
        f'D="{d}"\n'
        'if [ "$3" = "-o" ]; then cat "$D"/part_*; exit 0; fi\n'
        'if [ -f "$D/part_$3" ]; then cat "$D/part_$3"; exit 0; fi\n'
        'echo "slurm_load_partitions: Invalid partition name specified" >&2; exit 1\n')
    (d / "sinfo").write_text(f'#!/bin/sh\n# sinfo -h -N -p NAME -o FORMAT\ncat "{d}/nodes_$4"\n')
    for exe in ("scontrol", "sinfo"):
        (d / exe).chmod(0o755)
    monkeypatch.setenv("PATH", f"{d}{os.pathsep}{os.environ['PATH']}")


def paper_cluster(tmp_path, monkeypatch, gpu_nodes=None, max_time="3-00:00:00"):
    fake_slurm(tmp_path, monkeypatch, {
        "gpu": (max_time, gpu_nodes if gpu_nodes is not None else [GPU_NODE.format(i=i) for i in range(4)]),
        "cpu": ("2-00:00:00", [CPU_NODE.format(i=i) for i in range(2)]),
    })


def check(capsys, *args) -> tuple[int, list[str], list[str]]:
    rc = main(["check", "cluster", *args])
    out, err = capsys.readouterr()
    return rc, out.splitlines(), err.splitlines()


def test_the_paper_fits_a_cluster_that_has_what_it_asks(tmp_path, monkeypatch, capsys):
    paper_cluster(tmp_path, monkeypatch)
    rc, out, err = check(capsys, "--config", str(PAPER), "--profile", str(SLURM_PROFILE))
    assert rc == 0, err
    assert out[-1].startswith("zar check cluster: every rule fits")
    assert any(ln.split()[:2] == ["download", "cpu"] for ln in out)  # the profile's set-resources
    assert any(ln.split()[:2] == ["encode", "gpu"] for ln in out)  # the profile's default-resources


def test_a_gpu_less_partition_refuses_every_gpu_rule_naming_its_config_key(tmp_path, monkeypatch, capsys):
    paper_cluster(tmp_path, monkeypatch, gpu_nodes=[CPU_NODE.format(i=0)])
    rc, out, err = check(capsys, "--config", str(PAPER), "--profile", str(SLURM_PROFILE))
    cfg = yaml.safe_load(PAPER.read_text())
    gpu_rules = [r for r in resources.requests(cfg) if r.gpu > 0]
    assert rc == 1 and gpu_rules
    problems = err[:-1]
    assert len(problems) == len(gpu_rules)  # one line per rule that cannot run, nothing for the others
    for r, line in zip(gpu_rules, problems):
        assert line.startswith(f"{r.rule}") and "GPUs (largest node: 0" in line
        assert f"resources.{r.group}.gpu in {PAPER}" in line
    assert "cannot run as configured" in err[-1]


def test_more_memory_than_any_node_names_the_override_that_asked_it(tmp_path, monkeypatch, capsys):
    paper_cluster(tmp_path, monkeypatch)
    rc, _, err = check(capsys, "--config", str(PAPER), "--profile", str(SLURM_PROFILE),
                       "--set-resources", "encode:mem_mb=600000")
    assert rc == 1
    assert err[:-1] == ["encode: asks 600000 MB of memory (largest node: 512000; set "
                        "set-resources.encode.mem_mb in the command line) on partition 'gpu'"]


def test_a_time_limit_shorter_than_the_rule_s_runtime_is_refused(tmp_path, monkeypatch, capsys):
    paper_cluster(tmp_path, monkeypatch, max_time="1-00:00:00")  # 1440 minutes; train asks 2880
    rc, _, err = check(capsys, "--config", str(PAPER), "--profile", str(SLURM_PROFILE))
    cfg = yaml.safe_load(PAPER.read_text())
    over = [r for r in resources.requests(cfg) if r.runtime > 1440 and r.rule not in ("download", "decode")]
    assert rc == 1 and over
    assert [ln.split(":")[0] for ln in err[:-1]] == [cluster.Job(r.rule, r.group, {}, {}, None, "").label
                                                     for r in over]
    assert all("(MaxTime: 1440; set resources." in ln for ln in err[:-1])


def test_a_partition_that_does_not_exist_names_the_profile_key(tmp_path, monkeypatch, capsys):
    fake_slurm(tmp_path, monkeypatch, {"debug": ("UNLIMITED", ["n0|4|16000|(null)"])})
    profile = tmp_path / "p.yaml"
    profile.write_text(yaml.safe_dump({"default-resources": ["slurm_partition=debug", "slurm_account=x"],
                                       "set-resources": {"tsne": {"slurm_partition": "viz"}}}))
    rc, _, err = check(capsys, "--config", str(DEMO), "--profile", str(profile))
    assert rc == 1
    assert err[:-1] == [f"tsne: partition 'viz' does not exist (scontrol show partition): change "
                        f"set-resources.tsne.slurm_partition in {profile}"]


def test_no_single_node_with_everything_at_once(tmp_path, monkeypatch, capsys):
    # one node has the CPUs, another the memory: each value fits somewhere, the job nowhere
    fake_slurm(tmp_path, monkeypatch, {"mixed": ("UNLIMITED", ["a|64|4000|(null)", "b|2|512000|(null)"])})
    rc, _, err = check(capsys, "--config", str(DEMO), "--partition", "mixed", "--set-resources",
                       "tsne:threads=8", "tsne:mem_mb=100000")
    assert rc == 1
    assert len(err) == 2 and err[0].startswith("tsne: no single node of partition 'mixed' has 8 CPUs")


def test_without_slurm_the_check_says_so_in_one_line(tmp_path, monkeypatch, capsys):
    monkeypatch.setenv("PATH", str(tmp_path))
    rc, _, err = check(capsys, "--config", str(DEMO))
    assert rc == 2 and len(err) == 1 and "scontrol not found" in err[0]


@pytest.mark.parametrize("text,minutes", [
    ("UNLIMITED", None), ("INFINITE", None), ("90", 90), ("30:00", 30), ("30:10", 31), ("2:00:00", 120),
    ("1-00:00:00", 1440), ("2-12", 3600), ("1-01:30", 1530),
])
def test_slurm_time_formats(text, minutes):
    assert cluster.slurm_minutes(text) == minutes


@pytest.mark.parametrize("gres,gpus", [
    ("(null)", 0), ("gpu:4", 4), ("gpu:a100:8(S:0-1)", 8), ("gpu:a100:2,gpu:v100:2", 4), ("gpu:2,shard:8", 2),
    ("gpu", 1),
])
def test_gpus_in_gres(gres, gpus):
    assert cluster.gres_gpus(gres) == gpus


def _dry_run_requests(configfile: Path, directory: Path) -> set[tuple]:
    """(rule, threads, mem_mb, runtime, gpu) of every job Snakemake would submit, from a dry run."""
    out = subprocess.run(
        [sys.executable, "-m", "snakemake", "-n", "--forceall", "all", "--cores", "4096", "--workflow-profile", "none",
         "--snakefile", str(ROOT / "Snakefile"), "--directory", str(directory), "--configfile", str(configfile)],
        cwd=ROOT, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stderr[-2000:]
    seen = set()
    for block in re.split(r"\n(?=rule \w+:)", out.stdout + out.stderr):
        m = re.match(r"rule (\w+):", block)
        if not m or m.group(1) not in resources.RULE_GROUPS:
            continue
        threads = re.search(r"\n\s+threads: (\d+)", block)
        res = dict(kv.split("=", 1) for kv in re.search(r"\n\s+resources: (.*)", block).group(1).split(", "))
        seen.add((m.group(1), int(threads.group(1)) if threads else 1, int(res["mem_mb"]), int(res["runtime"]),
                  int(res.get("gpu", 0))))
    return seen


@pytest.mark.parametrize("config", [PAPER, DEMO], ids=["paper", "demo"])
def test_the_check_compares_what_snakemake_submits(config):
    """Every job of the dry run asks exactly what the check's table says for its rule (threads,
    mem_mb, runtime, gpu), so the check and Snakemake cannot disagree."""
    cfg = yaml.safe_load(config.read_text())
    table = {(r.rule, r.threads, r.mem_mb, r.runtime, r.gpu) for r in resources.requests(cfg)}
    submitted = _dry_run_requests(config, config.parent.parent)
    assert submitted and submitted <= table, submitted - table
    assert {s[0] for s in submitted} >= {"encode", "tune_zeroshot", "tune_ablation", "tune_testtime", "train"}
