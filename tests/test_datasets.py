"""The dataset registry: a new dataset is one entry in zar/core/datasets.py; everything that names
datasets (text rule, split layout and audit, download and decode, the workflow) follows."""
import copy
from pathlib import Path

import pytest
import yaml

import zar.core.datasets as D
import zar.plan as plan
from zar.cli import main as zar
from zar.core import splitfiles as formats

ROOT = Path(__file__).resolve().parents[1]

TOY = D.Dataset("toy", "Toy-10", ("official",), "camel", "class_folders", ("zeroshot", "b2n"),
                {"toy/classes.csv": 3}, test_per_class=2)


@pytest.fixture
def toy(monkeypatch):
    monkeypatch.setitem(D.DATASETS, "toy", TOY)
    return TOY


def test_the_registry_holds_every_dataset_and_its_rules():
    assert list(D.DATASETS) == ["k400", "k600", "ucf101", "hmdb51"]
    assert D.with_role("zeroshot") == ("k600", "ucf101", "hmdb51") and D.with_role("b2n") == ("k400", "ucf101",
                                                                                                "hmdb51")
    # the class-text rules, as docs/protocol.md §2 writes them
    assert D.class_text("ucf101", "ApplyEyeMakeup") == "apply eye makeup"
    assert D.class_text("ucf101", "YoYo") == "yo yo"
    assert D.class_text("hmdb51", "kick_ball") == "kick ball"
    assert D.class_text("k400", "passing American football (in game)") == "passing American football (in game)"
    counts = D.expected_counts()
    assert counts["k600/zeroshot/split2/test.csv"] == 14078 and counts["hmdb51/b2n/base/train_s3.csv"] == 26 * 16
    assert len(counts) == 47  # every class and video list of splits/ (README and manifest aside)


def _toy_splits(root: Path) -> Path:
    names = ["BrushTeeth", "JumpRope", "YoYo"]
    (root / "toy/zeroshot/split1").mkdir(parents=True)
    files = {"toy/classes.csv": D.classes_csv("toy", names),
             "toy/zeroshot/split1/classes.csv": D.classes_csv("toy", names),
             "toy/zeroshot/split1/test.csv": formats.videos_csv(
                 formats.VideoRow(f"v_{n}_{i}", f"{n}/v_{n}_{i}.avi", n, k) for k, n in enumerate(names)
                 for i in range(2))}
    for rel, text in files.items():
        (root / rel).write_text(text)
    (root / formats.MANIFEST).write_text(formats.manifest_text({r: t.encode() for r, t in files.items()}))
    return root


def test_a_new_dataset_is_one_registry_entry(toy, tmp_path, capsys):
    # the split files: its text rule, and a folder in the layout passes the audit
    assert D.class_text("toy", "BrushTeeth") == "brush teeth"
    splits = _toy_splits(tmp_path / "splits")
    assert zar(["splits", "audit", "--splits", str(splits), "--expect", "demo"]) == 0
    # the download and decode verbs know it (and its sources)
    with pytest.raises(SystemExit) as e:
        zar(["download", "--dataset", "toy", "--help"])
    assert e.value.code == 0 and "toy" in capsys.readouterr().out
    assert zar(["download", "--dataset", "toy", "--source", "cvdf", "--root", str(tmp_path / "d")]) == 2
    assert "does not apply to toy" in capsys.readouterr().err
    # the workflow's config accepts it and derives its jobs
    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["datasets"]["toy"] = {"title": "Toy-10", "source": "official"}
    cfg["zeroshot"]["datasets"] = ["toy"]
    plan.check_config(copy.deepcopy(cfg), str(ROOT / "workflow/schemas/config.schema.yaml"))
    from snakemake.utils import validate

    validate(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))
    cfg["tables"] = [1]
    assert {e.dataset for e in plan.evaluations(cfg)} == {"toy"}
    assert plan.table_spec(cfg, 1)["dataset_titles"]["toy"] == "Toy-10"


def test_an_unknown_dataset_is_refused_naming_the_registry(tmp_path):
    from zar.core.errors import UserError

    cfg = yaml.safe_load((ROOT / "config/config.yaml").read_text())
    cfg["zeroshot"]["datasets"] = ["hmdb51", "hmdb52"]
    with pytest.raises(UserError, match=r"zeroshot.datasets: hmdb52.*zar/core/datasets.py"):
        plan.check_config(cfg, str(ROOT / "workflow/schemas/config.schema.yaml"))


def test_the_demo_gives_a_new_dataset_its_role(toy):
    """The demo's roles come from the registry: the toy dataset gets a synthetic class pool,
    three zero-shot splits and base-to-novel lists in its own naming and layout."""
    from zar.data import demo

    files = demo.build_split_files(demo.DemoConfig())
    for rel in ("toy/classes.csv", D.zeroshot_list("toy", 2, "test"), D.b2n_train_list("toy", 3),
                D.b2n_list("toy", "novel", "classes")):
        assert rel in files, rel
    classes = files["toy/classes.csv"].splitlines()[1:]
    name = classes[0].split(",")[1]
    assert name[0].isupper() and " " not in name  # CamelCase, as the toy entry declares
    row = files[D.zeroshot_list("toy", 1, "test")].splitlines()[1].split(",")
    assert row[1] == f"{row[2]}/{row[0]}.avi" and row[0].startswith(f"v_{row[2]}_g")  # class folders
    pools = demo.design_classes(demo.DemoConfig())["pools"]
    assert set(pools) == {"toy", "k600", "ucf101", "hmdb51"}
    assert not set(pools["toy"]) & set().union(*(pools[d] for d in ("k600", "ucf101", "hmdb51")))
