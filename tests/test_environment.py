"""pyproject.toml and environment.yml must pin the same packages at the same versions."""
import re
import tomllib
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parents[1]


def _norm(name: str) -> str:
    return re.sub(r"[-_.]+", "-", name).lower()


def _pins(reqs):
    out = {}
    for r in reqs:
        m = re.fullmatch(r"\s*([A-Za-z0-9_.\-]+)\s*==\s*([^\s;]+)\s*", r)
        assert m, f"not an exact pin: {r!r}"
        out[_norm(m.group(1))] = m.group(2)
    return out


def pyproject_pins():
    data = tomllib.loads((ROOT / "pyproject.toml").read_text())
    project = data["project"]
    reqs = list(project["dependencies"])
    for extra in project.get("optional-dependencies", {}).values():
        reqs += extra
    return _pins(reqs)


def environment_pins(path: str = "environment.yml"):
    env = yaml.safe_load((ROOT / path).read_text())
    pip = [d for d in env["dependencies"] if isinstance(d, dict) and "pip" in d]
    assert len(pip) == 1, f"{path} needs exactly one pip: section"
    return _pins([r for r in pip[0]["pip"] if not r.startswith("-")])


def disagreements(a: dict, b: dict) -> list[str]:
    problems = [f"{k}: only in pyproject.toml" for k in sorted(set(a) - set(b))]
    problems += [f"{k}: only in environment.yml" for k in sorted(set(b) - set(a))]
    problems += [f"{k}: {a[k]} vs {b[k]}" for k in sorted(set(a) & set(b)) if a[k] != b[k]]
    return problems


def test_pins_agree():
    assert disagreements(pyproject_pins(), environment_pins()) == []


def test_the_rules_environment_has_the_same_pins():
    """workflow/envs/zar.yaml, the conda environment of every rule (`snakemake --sdm conda`)."""
    assert disagreements(pyproject_pins(), environment_pins("workflow/envs/zar.yaml")) == []
    env = yaml.safe_load((ROOT / "workflow/envs/zar.yaml").read_text())
    assert env["dependencies"][:2] == yaml.safe_load((ROOT / "environment.yml").read_text())["dependencies"][:2]


def test_pin_parser_rejects_ranges():
    import pytest

    with pytest.raises(AssertionError):
        _pins(["torch>=2.0"])


def test_a_changed_or_missing_pin_is_reported():
    a = pyproject_pins()
    changed = dict(a, torch="0.0.0")
    missing = {k: v for k, v in a.items() if k != "pandas"}
    assert disagreements(a, changed) == [f"torch: {a['torch']} vs 0.0.0"]
    assert disagreements(a, missing) == ["pandas: only in pyproject.toml"]


def test_conda_env_has_python_and_ffmpeg():
    env = yaml.safe_load((ROOT / "environment.yml").read_text())
    names = [d.split("=")[0] for d in env["dependencies"] if isinstance(d, str)]
    assert "python" in names and "ffmpeg" in names
