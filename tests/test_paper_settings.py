"""The paper's settings, pinned where they live: the paper config (config/config.yaml), the
settings' defaults (zar.method.settings, zar.method.views), the training recipes (zar.train.recipe), the
committed base-to-novel lists, and the demo's config, whose method block must be the paper
config's. Each assertion names the section of docs/protocol.md (the specification, in the
project's words) that states the value; changing any of them in a config or a default fails here.
"""
from __future__ import annotations

from collections import Counter
from pathlib import Path

import open_clip
import pytest
import torch
import yaml

from zar.method.sections import RunConfig, TuneConfig
from zar.core.splitfiles import read_videos
from zar.train.recipe import load_recipe
from zar.method.views import CROP_SETS, ViewConfig, view_plan

ROOT = Path(__file__).resolve().parents[1]
PAPER_VIEWS = {"frames": 16, "infer_frames": 16, "rates": [1, 2, 4, 8], "samples_per_rate": 4, "crops": 3}
PAPER_TUNE = {"steps": 1, "lr": 5e-3, "ratio": 0.8, "ctx_init": "a video of a", "template": "{ctx} {c}.",
              "mode": "episodic"}


def config(path: str) -> dict:
    return yaml.safe_load((ROOT / path).read_text())


@pytest.fixture(scope="module", params=["config/config.yaml", "demo/config/config.yaml"])
def method(request) -> dict:
    """The method block of the paper config and of the demo's config."""
    return config(request.param)["method"]


def check_views(views: dict) -> None:
    # §3.1: "3 crops x 4 sampling rates x 4 samples = 48 views of T = 16 frames", rates 1, 2, 4, 8
    assert views["rates"] == [1, 2, 4, 8]
    assert views["samples_per_rate"] == 4
    assert views["crops"] == 3 and CROP_SETS[3] == ("left", "center", "right")
    assert views["frames"] == 16
    cfg = ViewConfig(**{k: v for k, v in views.items()})
    assert cfg.n_views == len(view_plan(cfg)) == 48
    # §3.6: the inference clip is 16 frames in every setting
    assert views["infer_frames"] == 16
    # §3.1: "the short side resized to 256 (image size x 256/224), 224 x 224 crops" (null: derived)
    assert views.get("short_side") is None
    image_size = open_clip.get_model_config("ViT-B-16")["vision_cfg"]["image_size"]
    assert image_size == 224 and cfg.view_short_side(image_size) == 256


def check_tune(tune: dict) -> None:
    # §2: the template "{ctx} {c}.", the context words "a video of a" (n_ctx = 4 tokens)
    assert tune["ctx_init"] == "a video of a" and tune["template"] == "{ctx} {c}."
    tokens = open_clip.get_tokenizer("ViT-B-16")([tune["ctx_init"]])[0]
    assert int((tokens != 0).sum()) - 2 == 4
    # §3.3: "the int(48 x ratio) views of lowest entropy are kept (tune.ratio = 0.8, i.e. 38)"
    assert tune["ratio"] == 0.8 and int(48 * tune["ratio"]) == 38
    # §3.5: "One AdamW step on the context (tune.steps = 1): lr 5e-3 ..., weight decay 0.01"
    assert tune["steps"] == 1 and tune["lr"] == 5e-3 and tune.get("weight_decay", 0.01) == 0.01
    # §3.7: episodic
    assert tune.get("mode", "episodic") == "episodic"


def test_the_settings_defaults_are_the_paper_s():
    check_views(ViewConfig().to_dict() | {"rates": list(ViewConfig().rates)})
    check_tune(TuneConfig().to_dict())
    # §1: "Weights stay fp32; on a GPU the forward pass runs under bf16 autocast"
    assert RunConfig().image_precision == "autocast"


def test_the_method_blocks_hold_the_paper_s_values(method):
    check_views(method["views"])
    check_tune(method["tune"])
    assert method.get("run", {}).get("image_precision", "autocast") == "autocast"  # §1


def test_the_demo_runs_the_paper_config_s_method():
    """The demo differs from the paper config in its data and model, never in the method: its
    views and tuning settings are the paper config's, key for key (its run block only says how
    to batch and read on a laptop, which does not change the numbers)."""
    paper, demo = config("config/config.yaml")["method"], config("demo/config/config.yaml")["method"]
    assert demo["views"] == paper["views"]
    assert demo["tune"] == paper["tune"]
    assert demo["run"].get("image_precision", "autocast") == paper["run"].get("image_precision", "autocast")


def test_the_tuner_takes_one_adamw_step_with_torch_s_defaults():
    """§3.5: AdamW, lr 5e-3, betas 0.9/0.999, eps 1e-8, weight decay 0.01."""
    from zar.model.backbone import build_model
    from zar.method.tpt import Tuner

    model, _ = build_model("tiny")
    _, opt = Tuner(model, ["a", "b"], TuneConfig())._context(1, continual=False)
    assert type(opt) is torch.optim.AdamW
    group = opt.param_groups[0]
    assert (group["lr"], group["betas"], group["eps"], group["weight_decay"]) == (5e-3, (0.9, 0.999), 1e-8, 0.01)


def test_k400_fine_tuning_is_the_paper_s():
    """§4: "10 epochs, batch 256, lr 8e-6", 16-frame training clips, on K400."""
    k400 = load_recipe("k400")
    assert (k400.epochs, k400.batch_size, k400.lr) == (10, 256, 8e-6)
    training = config("config/config.yaml")["training"]["k400"]
    assert training["recipe"] == "k400" and training["frames"] == 16 and training["dataset"] == "k400"


def test_base_to_novel_is_the_paper_s():
    """§4-5: 16 shots of each base class, 3 shot lists, the mean over them; 11 epochs, lr 2e-6,
    batch 64, 16-frame training clips; tuning views of T = 8, the inference clip 16 frames."""
    b2n = config("config/config.yaml")["b2n"]
    assert b2n["shots"] == [1, 2, 3] and b2n["recipe"] == "b2n"
    assert b2n["view_frames"] == 8 and b2n["train_frames"] == 16
    recipe = load_recipe("b2n")
    assert (recipe.epochs, recipe.lr, recipe.batch_size) == (11, 2e-6, 64)
    for dataset in b2n["datasets"]:
        base = ROOT / "splits" / dataset / "b2n" / "base"
        n_classes = len((base / "classes.csv").read_text().splitlines()) - 1
        for shot in b2n["shots"]:
            counts = Counter(r.class_index for r in read_videos(base / f"train_s{shot}.csv"))
            assert len(counts) == n_classes and set(counts.values()) == {16}, (dataset, shot)
