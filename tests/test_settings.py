"""One validation of settings for the command line and the workflow; inputs that would give
wrong numbers without an error are errors; result files are strict JSON."""
import json
import math

import pytest

from conftest import moving_square, write_video
from zar.cli import main as zar
from zar.method.settings import load_settings, settings_schema
from zar.core.errors import UserError
from zar.core.files import to_json

BAD = [  # (setting, words the one-line error must hold)
    ("tune.steps=1.5", "an integer >= 0"), ("tune.lr=-5", "> 0"), ("tune.lr=.nan", "finite"),
    ("tune.ratio=0", "> 0"), ("views.rates=abc", "a list of integers"), ("views.rates=[1,1]", "no repeats"),
    ("views.short_side=-5", ">= 16"), ("views.crops=4", "one of 1, 3, 5, 9"), ("run.batch_size=0", ">= 1"),
    ("run.workers=-1", ">= 0"), ("run.backend=foo", "one of decord, pyav"), ("run.timeout=0", "> 0"),
    ("run.store_dtype=int8", "one of float32, float16"), ("run.device=gpu", "auto, cpu, cuda or cuda:N"),
    ("tune.template=a video", "{c}"), ("tune.steps=true", "an integer"), ("views.frames=0", ">= 1"),
]


@pytest.mark.parametrize("item,words", BAD)
def test_every_bad_setting_is_one_line_naming_key_value_and_rule(item, words):
    with pytest.raises(UserError) as e:
        load_settings(None, [item])
    msg = str(e.value)
    key = item.split("=")[0]
    assert msg.startswith(f"setting {key} = ") and words in msg and "\n" not in msg, msg


def test_cuda_without_a_gpu_is_refused_when_resolved():
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA: the refusal cannot happen here")
    with pytest.raises(UserError, match="no CUDA device"):
        load_settings(None, ["run.device=cuda"]).run.resolved_device()


def test_the_schema_holds_the_same_rules():
    """The JSON schema the workflow validates with is generated from the same declarations."""
    import jsonschema

    schema = {"type": "object", "properties": settings_schema()}
    ok = {"views": {"frames": 8, "rates": [1, 2]}, "tune": {"ratio": 0.5}, "run": {"backend": "pyav"}}
    jsonschema.validate(ok, schema)
    for sec, key, value in (("tune", "steps", 1.5), ("run", "backend", "foo"), ("views", "crops", 4),
                            ("run", "store_dtype", "int8"), ("run", "timeout", 0), ("tune", "typo", 1)):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate({sec: {key: value}}, schema)


@pytest.fixture
def small(tmp_path, ffmpeg):
    root = tmp_path / "v"
    write_video(root / "a.mp4", moving_square(n=20, colour=(255, 0, 0)), fps=10)
    write_video(root / "b.mp4", moving_square(n=20, colour=(0, 0, 255), seed=1), fps=10)
    classes = tmp_path / "classes.csv"
    classes.write_text("class_index,class_name,text\n0,red,red square\n1,blue,blue square\n")
    return {"root": root, "classes": classes, "tmp": tmp_path}


def _evaluate(small, videos, out, *extra):
    return zar(["evaluate", "--videos", str(videos), "--classes", str(small["classes"]), "--root",
                str(small["root"]), "--backbone", "tiny", "--out", str(out), "--set", "run.workers=0", *extra])


@pytest.mark.parametrize("item", [b for b, _ in BAD if b != "run.device=gpu"][:6] + ["run.timeout=0",
                                                                                       "run.store_dtype=int8"])
def test_a_bad_setting_stops_evaluate_before_any_work(small, item, capsys):
    lst = small["tmp"] / "l.csv"
    lst.write_text("path,class_name\na.mp4,red\n")
    out = small["tmp"] / "out"
    assert _evaluate(small, lst, out, "--set", item) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "setting" in err[0], err
    assert not out.exists() or not any(out.iterdir())  # no predictions.jsonl.part left behind


@pytest.mark.parametrize("body,words", [
    ("path,class_name\na.mp4,red\nb.mp4,\n", "line 3: no label"),        # a blank label
    ("path,class_name\na.mp4,red\nb.mp4,green\n", "line 3: class 'green' is not in the class list"),
    ("path,class_name\n", "no videos listed"),                             # a header-only list
])
def test_lists_that_would_give_wrong_numbers_are_errors(small, body, words, capsys):
    lst = small["tmp"] / "l.csv"
    lst.write_text(body)
    out = small["tmp"] / "out"
    assert _evaluate(small, lst, out) == 2
    assert words in capsys.readouterr().err
    assert not (out / "summary.json").exists()


def test_a_list_whose_videos_all_fail_is_an_error_not_a_result(small, capsys):
    lst = small["tmp"] / "l.csv"
    lst.write_text("path,class_name\nmissing1.mp4,red\nmissing2.mp4,blue\n")
    out = small["tmp"] / "out"
    assert _evaluate(small, lst, out) == 2
    assert "none of the 2 listed videos could be evaluated" in capsys.readouterr().err
    assert not (out / "summary.json").exists()


def test_summaries_are_strict_json_and_name_their_predictions(small):
    lst = small["tmp"] / "l.csv"
    lst.write_text("path,class_name\na.mp4,red\nb.mp4,blue\n")
    out = small["tmp"] / "out"
    assert _evaluate(small, lst, out) == 0
    text = (out / "summary.json").read_text()
    summary = json.loads(text, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c} in the summary"))
    assert summary["predictions"] == str(out / "predictions.jsonl") and (out / "predictions.jsonl").is_file()
    for line in (out / "predictions.jsonl").read_text().splitlines():
        json.loads(line, parse_constant=lambda c: pytest.fail(f"non-JSON constant {c}"))
    assert to_json({"x": math.nan, "y": [math.inf, 1.0]}) == '{\n  "x": null,\n  "y": [\n    null,\n    1.0\n  ]\n}\n'
