"""The package's shape: layers that import only downward, no import circles, no function over
60 lines. Read from the source with ``ast`` (every import counts, those inside functions too).

The layers, lowest first (a package may import its own modules and any lower layer's; two
packages of one layer never import each other):
"""
from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LAYERS = [
    {"zar.core"},  # errors, files, provenance, settings fields, integrity, datasets, split files, metrics
    {"zar.video", "zar.model"},  # reading frames; the backbone
    {"zar.method"},  # the paper's method: settings, views, frames, encoder, prompt, TPT, tuner, cache, results
    {"zar.splits", "zar.train"},  # building and auditing the split files; fine-tuning
    {"zar.data"},  # download, decode, the demo's synthetic data
    {"zar.report"},  # tables, analysis, figures
    {"zar.plan"},  # what the workflow runs
    {"zar.bench"},  # speed figures
    {"zar.jobs"},  # one module per verb
    {"zar.cli"},  # the command line (zar/cli.py and zar/__main__.py)
]
TOP = {"zar"}  # the package's own __init__ (its version): importable from anywhere
MAX_FUNCTION_LINES = 60


def module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, Path]:
    return {module_name(p): p for p in sorted((ROOT / "zar").rglob("*.py"))}


def imports(name: str, path: Path, known: set[str]) -> set[str]:
    """The zar modules ``name`` imports (``from zar.x import y`` counts zar.x.y when y is a module)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    out = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            out |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                mod = ".".join(base + ([node.module] if node.module else []))
            else:
                mod = node.module or ""
            out.add(mod)
            out |= {f"{mod}.{a.name}" for a in node.names if f"{mod}.{a.name}" in known}
    return {m for m in out if m in known and m != name}


def graph() -> dict[str, set[str]]:
    mods = modules()
    return {n: imports(n, p, set(mods)) for n, p in mods.items()}


def layer_of(module: str) -> tuple[int, str] | None:
    """(layer index, package) of a module; None for the top-level zar package itself."""
    if module in TOP:
        return None
    if module == "zar.__main__":
        module = "zar.cli"
    for i, layer in enumerate(LAYERS):
        for pkg in layer:
            if module == pkg or module.startswith(pkg + "."):
                return i, pkg
    raise AssertionError(f"{module} is in no layer: add its package to LAYERS in tests/test_layers.py")


def circles(g: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components of more than one module (Tarjan)."""
    index, low, stack, on, out, counter = {}, {}, [], set(), [], [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on.add(v)
        for w in g[v]:
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            comp = []
            while True:
                w = stack.pop()
                on.discard(w)
                comp.append(w)
                if w == v:
                    break
            if len(comp) > 1:
                out.append(sorted(comp))

    for v in sorted(g):
        if v not in index:
            visit(v)
    return out


def upward(g: dict[str, set[str]]) -> list[str]:
    bad = []
    for a, deps in sorted(g.items()):
        la = layer_of(a)
        for b in sorted(deps):
            lb = layer_of(b)
            if la is None or lb is None or la[1] == lb[1]:
                continue
            if lb[0] >= la[0]:
                bad.append(f"{a} (layer {la[0]}, {la[1]}) imports {b} (layer {lb[0]}, {lb[1]})")
    return bad


def test_no_import_circles():
    assert circles(graph()) == []


def test_imports_only_go_down():
    assert upward(graph()) == []


def test_every_layer_is_a_package():
    for layer in LAYERS:
        for pkg in layer:
            path = ROOT / Path(*pkg.split("."))
            assert (path / "__init__.py").is_file() or path.with_suffix(".py").is_file(), pkg
            if pkg != "zar.cli":
                assert (path / "__init__.py").is_file(), f"{pkg} is not a package"
    assert sorted(p.name for p in (ROOT / "zar").glob("*.py")) == ["__init__.py", "__main__.py", "cli.py"]


def test_no_function_is_longer_than_60_lines():
    long = []
    for name, path in modules().items():
        for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                n = node.end_lineno - node.lineno + 1
                if n > MAX_FUNCTION_LINES:
                    long.append(f"{path.relative_to(ROOT)}:{node.lineno} {node.name} ({n} lines)")
    assert long == []


def test_the_checks_catch_what_they_look_for():
    """The graph helpers on a made-up graph: a circle, an upward import, a sibling import."""
    g = {"zar.core.a": {"zar.method.x"}, "zar.method.x": {"zar.core.a"}, "zar.model.m": {"zar.video.v"},
         "zar.video.v": set(), "zar.jobs.j": {"zar.core.a", "zar"}, "zar": set()}
    assert circles(g) == [["zar.core.a", "zar.method.x"]]
    assert upward(g) == ["zar.core.a (layer 0, zar.core) imports zar.method.x (layer 2, zar.method)",
                         "zar.model.m (layer 1, zar.model) imports zar.video.v (layer 1, zar.video)"]
    with pytest.raises(AssertionError, match="in no layer"):
        layer_of("zar.nowhere.x")
