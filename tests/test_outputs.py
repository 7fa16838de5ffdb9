"""An output never replaces an input, and a path that cannot take the output is refused
before any work: every verb that writes compares what it will write (zar.cli: the verb's
``outputs(args)``) with every file among its arguments, by path and by inode, and checks that
each output's folder is a folder. One line, exit 2, the inputs byte for byte as they were,
nothing written."""
from __future__ import annotations

import hashlib
import os

import pytest

from zar.cli import main as zar


def digest(paths) -> dict[str, str]:
    return {str(p): hashlib.sha256(p.read_bytes()).hexdigest() for p in paths}


@pytest.fixture
def files(tmp_path):
    """Inputs of each kind (their content does not matter: the check comes first)."""
    f = {name: tmp_path / name for name in ("emb.pt", "list.csv", "classes.csv", "spec.json", "table.csv",
                                            "recipe.yaml")}
    for p in f.values():
        p.write_bytes(b"input " + p.name.encode() + b"\n")
    f["models"] = tmp_path / "models"
    f["models"].mkdir()
    f["tmp"] = tmp_path
    return f


def tune(f, out, *more):
    return ["tune", "--embeddings", str(f["emb.pt"]), "--videos", str(f["list.csv"]), "--classes",
            str(f["classes.csv"]), "--backbone", "tiny", "--out", str(out), *more]


def encode(f, out):
    return ["encode", "--videos", str(f["list.csv"]), "--backbone", "tiny", "--out", str(out)]


def evaluate(f, out):
    return ["evaluate", "--videos", str(f["list.csv"]), "--classes", str(f["classes.csv"]), "--backbone", "tiny",
            "--out", str(out)]


def train(f, out):
    return ["train", "--videos", str(f["list.csv"]), "--classes", str(f["classes.csv"]), "--root", str(f["tmp"]),
            "--backbone", "tiny", "--recipe", str(f["recipe.yaml"]), "--out", str(out)]


CLASHES = {  # verb x an output that is an input
    "tune --out = its --embeddings": lambda f: tune(f, f["emb.pt"]),
    "tune --out = its --videos": lambda f: tune(f, f["list.csv"]),
    "tune --out = its --classes": lambda f: tune(f, f["classes.csv"]),
    "tune predictions beside --out = its --videos": lambda f: (
        f["list.csv"].rename(f["tmp"] / "r.jsonl"), tune({**f, "list.csv": f["tmp"] / "r.jsonl"}, f["tmp"] / "r.json"))[1],
    "tune one method's --out = its --classes": lambda f: (
        f["classes.csv"].rename(f["tmp"] / "zar.json"),
        tune({**f, "classes.csv": f["tmp"] / "zar.json"}, f["tmp"] / "{method}.json", "--method", "vanilla,zar"))[1],
    "tune --out = a hard link to its --classes": lambda f: (
        os.link(f["classes.csv"], f["tmp"] / "link.json"), tune(f, f["tmp"] / "link.json"))[1],
    "tune --out = a symbolic link to its --embeddings": lambda f: (
        os.symlink(f["emb.pt"], f["tmp"] / "sym.json"), tune(f, f["tmp"] / "sym.json"))[1],
    "encode --out = its --videos": lambda f: encode(f, f["list.csv"]),
    "encode summary beside --out = its --videos": lambda f: (
        f["list.csv"].rename(f["tmp"] / "e.json"), encode({**f, "list.csv": f["tmp"] / "e.json"}, f["tmp"] / "e.pt"))[1],
    "evaluate --out folder holds its --classes as summary.json": lambda f: (
        (f["tmp"] / "run").mkdir(), f["classes.csv"].rename(f["tmp"] / "run" / "summary.json"),
        evaluate({**f, "classes.csv": f["tmp"] / "run" / "summary.json"}, f["tmp"] / "run"))[2],
    "figures ablation: the CSV beside --out = its --table": lambda f: [
        "figures", "ablation", "--table", str(f["table.csv"]), "--number", "3", "--out", str(f["tmp"] / "table.png")],
    "tables --out prefix.csv = its --spec": lambda f: (
        f["spec.json"].rename(f["tmp"] / "t.csv"), ["tables", "--spec", str(f["tmp"] / "t.csv"),
                                                     "--out", str(f["tmp"] / "t")])[1],
}


@pytest.mark.parametrize("case", sorted(CLASHES))
def test_an_output_that_is_an_input_is_refused_before_any_work(files, case, capsys):
    argv = CLASHES[case](files)
    inputs = sorted(p for p in files["tmp"].rglob("*") if p.is_file() and not p.is_symlink())
    before = digest(inputs), {p.name for p in files["tmp"].rglob("*")}
    assert zar(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "this output is also an input" in err, err
    assert (digest(inputs), {p.name for p in files["tmp"].rglob("*")}) == before  # nothing changed or added


PLACES = {  # verb x an output path that cannot take it
    "tune --out is a folder": (lambda f: tune(f, f["models"]), "is a folder, where a file is to be written"),
    "tune --out under a file": (lambda f: tune(f, f["table.csv"] / "r.json"), "is a file, not a folder"),
    "encode --out is a folder": (lambda f: encode(f, f["models"]), "is a folder, where a file is to be written"),
    "encode --out two levels under a file": (lambda f: encode(f, f["table.csv"] / "a" / "e.pt"),
                                             "is a file, not a folder"),
    "evaluate --out is a file": (lambda f: evaluate(f, f["table.csv"]), "is a file, where a folder"),
    "train --out is a file": (lambda f: train(f, f["table.csv"]), "is a file, where a folder"),
    "tables --out prefix.md is a folder": (lambda f: ((f["tmp"] / "t.md").mkdir(), [
        "tables", "--spec", str(f["spec.json"]), "--out", str(f["tmp"] / "t")])[1], "is a folder"),
    "figures perclass --out is a file": (lambda f: [
        "figures", "perclass", "--results", str(f["spec.json"]), "--out", str(f["table.csv"])], "is a file, where a"),
}


@pytest.mark.parametrize("case", sorted(PLACES))
def test_an_output_path_that_cannot_take_it_is_refused_before_any_work(files, case, capsys):
    make, words = PLACES[case]
    argv = make(files)
    before = {p: (p.stat().st_mtime_ns if p.is_file() else None) for p in files["tmp"].rglob("*")}
    assert zar(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and words in err, err
    assert {p: (p.stat().st_mtime_ns if p.is_file() else None) for p in files["tmp"].rglob("*")} == before


def test_every_verb_with_an_out_argument_says_what_it_writes():
    """A verb whose --out is more than one file (a folder, siblings) declares outputs(args);
    the default (one file) would miss what it writes beside it."""
    import argparse
    import importlib

    from zar.cli import VERBS

    def options(parser):
        found = set()
        for action in parser._actions:
            found |= set(action.option_strings)
            if isinstance(action, argparse._SubParsersAction):
                for sub in action.choices.values():
                    found |= options(sub)
        return found

    missing = []
    for verb, (name, _) in VERBS.items():
        module = importlib.import_module(name)
        parser = argparse.ArgumentParser()
        module.add_arguments(parser)
        if "--out" in options(parser) and not hasattr(module, "outputs"):
            missing.append(verb)
    assert missing == []


@pytest.fixture
def read_only(tmp_path):
    """A real read-only folder: a read-only tmpfs where this machine lets us mount one (root,
    for whom permission bits do not count), else a folder without write permission."""
    import shutil
    import subprocess

    d = tmp_path / "ro"
    d.mkdir()
    if os.geteuid() == 0:
        if not shutil.which("mount") or subprocess.run(["mount", "-t", "tmpfs", "-o", "ro,size=64k", "tmpfs", str(d)],
                                                       capture_output=True).returncode != 0:
            pytest.skip("running as root where no read-only file system can be mounted: permissions do not bind root")
        try:
            yield d
        finally:
            subprocess.run(["umount", "-l", str(d)], capture_output=True)
    else:
        d.chmod(0o555)
        try:
            yield d
        finally:
            d.chmod(0o755)


@pytest.mark.parametrize("verb", ["tune", "encode", "evaluate", "train", "tables"])
def test_an_output_in_a_read_only_folder_is_refused_before_any_work(files, read_only, verb, capsys):
    out = read_only / "sub" / "out"
    argv = {"tune": lambda: tune(files, out.with_suffix(".json")), "encode": lambda: encode(files, out.with_suffix(".pt")),
            "evaluate": lambda: evaluate(files, out), "train": lambda: train(files, out),
            "tables": lambda: ["tables", "--spec", str(files["spec.json"]), "--out", str(out)]}[verb]()
    assert zar(argv) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and f"the folder {read_only} is read-only" in err, err
    assert list(read_only.iterdir()) == []
