"""Fine-tuning hyper-parameters as a typed recipe (docs/protocol.md §4), with named presets.

A recipe is a :class:`Recipe`; ``load_recipe`` accepts a preset name (``k400``, ``b2n``,
``tiny``) or a YAML file whose keys override a preset (``base: b2n`` picks which one;
default ``k400``). An unknown key is an error, never silently ignored.

Defaults follow docs/protocol.md §4 (ViFi-CLIP's published K400 recipe, 16 frames). Where the
protocol is silent, the value is our choice and is marked so below.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from zar.core.fields import bad_value, check, from_mapping, setting
from zar.core.errors import UserError
from zar.core.files import read_yaml


def _p(default: float, description: str) -> float:
    """A probability setting."""
    return setting(default, "number", description, minimum=0, maximum=1)


@dataclass(frozen=True)
class Recipe:
    """A fine-tuning recipe; every key a setting with its bounds (a bad value is refused in one
    line naming it). Defaults: docs/protocol.md §4 (ViFi-CLIP's K400 recipe where the paper is silent)."""

    name: str = setting("k400", "string", "the recipe's name (recorded with the model)")
    # --- optimisation (AdamW betas 0.9/0.98, wd 0.001, cosine to lr/100, 5 warm-up epochs)
    epochs: int = setting(10, "integer", "epochs", minimum=1, maximum=10_000)
    lr: float = setting(8e-6, "number", "peak learning rate", exclusiveMinimum=0, maximum=1)
    min_lr_ratio: float = setting(0.01, "number", "the cosine ends at lr * min_lr_ratio (timm CosineLRScheduler, "
                                  "as ViFi-CLIP)", minimum=0, maximum=1)
    warmup_epochs: float = setting(5.0, "number", "linear warm-up from 0, in epochs (int(warmup_epochs * steps "
                                   "per epoch) steps; at most epochs)", minimum=0)
    weight_decay: float = setting(0.001, "number", "AdamW weight decay on every parameter, as ViFi-CLIP",
                                  minimum=0, maximum=1)
    betas: tuple[float, float] = setting((0.9, 0.98), "array", "AdamW betas",
                                         items={"type": "number", "minimum": 0, "exclusiveMaximum": 1},
                                         minItems=2, maxItems=2)
    eps: float = setting(1e-8, "number", "AdamW eps", exclusiveMinimum=0, maximum=1)
    batch_size: int = setting(256, "integer", "global batch = micro_batch x processes x accumulation steps",
                              minimum=1, maximum=1_000_000)
    micro_batch: int = setting(8, "integer", "clips per process per forward pass (hardware-dependent; our choice)",
                               minimum=1, maximum=100_000)
    max_logit_scale: float = setting(100.0, "number", "exp(logit_scale) is clamped to this after each step (our "
                                     "choice, as CLIP)", exclusiveMinimum=0)
    precision: str = setting("bf16", "string", "autocast dtype on CUDA (fp16 with a loss scaler); the CPU runs "
                             "fp32", enum=["bf16", "fp16", "fp32"])
    # --- data
    frames: int = setting(16, "integer", "frames per clip (ViFi-CLIP: 32; docs/protocol.md §4: 16)", minimum=1,
                          maximum=1024)
    prompt: str = setting("a photo of a {c}.", "string", "each class's text, {c} = the class text",
                          pattern=r".*\{c\}.*", allowed="a string holding {c}")
    # --- targets: label smoothing and mixup / cutmix on soft targets
    label_smoothing: float = setting(0.1, "number", "label smoothing", minimum=0, exclusiveMaximum=1)
    mixup_alpha: float = setting(0.8, "number", "mixup's Beta parameter (0 disables mixup)", minimum=0, maximum=100)
    cutmix_alpha: float = setting(1.0, "number", "cutmix's Beta parameter (0 disables cutmix)", minimum=0,
                                  maximum=100)
    mix_switch_prob: float = _p(0.5, "probability of cutmix when both are enabled")
    # --- spatial augmentation, the same for every frame of a clip
    crop_scales: tuple[float, ...] = setting((1.0, 0.875, 0.75, 0.66), "array", "crop sizes, as shares of the "
                                             "short side", items={"type": "number", "exclusiveMinimum": 0,
                                                                  "maximum": 1}, minItems=1)
    max_scale_gap: int = setting(1, "integer", "width and height scale indices differ by at most this", minimum=0)
    resize_ratio: float = setting(256 / 224, "number", "short side resized to image_size * ratio before the crop",
                                  minimum=1, maximum=4)
    flip_p: float = _p(0.5, "probability of a horizontal flip")
    color_jitter_p: float = _p(0.8, "probability of colour jitter")
    brightness: float = setting(0.4, "number", "brightness jitter strength", minimum=0, maximum=1)
    contrast: float = setting(0.4, "number", "contrast jitter strength", minimum=0, maximum=1)
    saturation: float = setting(0.2, "number", "saturation jitter strength", minimum=0, maximum=1)
    hue: float = setting(0.1, "number", "hue jitter, a share of a turn (a YIQ rotation)", minimum=0, maximum=0.5)
    grayscale_p: float = _p(0.2, "probability of greyscale")
    # --- run control
    seed: int = setting(1024, "integer", "seed of the clips' sampling and augmentation", minimum=0)
    num_workers: int = setting(8, "integer", "DataLoader workers per process", minimum=0, maximum=512)
    log_every: int = setting(50, "integer", "optimizer steps between log lines", minimum=1)
    save_every: int = setting(0, "integer", "optimizer steps between checkpoints (0: only at the end of each "
                              "epoch)", minimum=0)
    video_backend: str = setting("decord", "string", "video reader", enum=["decord", "pyav"])
    decode_timeout: float = setting(60.0, "number", "seconds allowed to read one video", exclusiveMinimum=0)
    max_replacements: int = setting(20, "integer", "undecodable videos replaced in a row before giving up",
                                    minimum=0)
    cache_frames: bool = setting(False, "boolean", "keep each video's decoded frames in memory after its first "
                                 "read (small data sets such as the demo; the same clips, only faster)")

    def __post_init__(self) -> None:
        object.__setattr__(self, "betas", tuple(self.betas))
        object.__setattr__(self, "crop_scales", tuple(self.crop_scales))
        check(self, "recipe")
        if self.warmup_epochs > self.epochs:
            raise bad_value("recipe", "warmup_epochs", self.warmup_epochs, f"must be at most epochs ({self.epochs})")

    @property
    def mixing(self) -> bool:
        return self.mixup_alpha > 0 or self.cutmix_alpha > 0

    def to_dict(self) -> dict[str, Any]:
        return dataclasses.asdict(self)


PRESETS: dict[str, dict[str, Any]] = {
    # docs/protocol.md §4: the "+ K400" fine-tuning.
    "k400": {},
    # docs/protocol.md §4-5: 16 shots of the base classes, ViFi-CLIP's base-to-novel recipe, with the
    # K400 recipe's clip length (16 frames, our choice; ViFi-CLIP trains with 32).
    "b2n": {"name": "b2n", "epochs": 11, "lr": 2e-6, "batch_size": 64},
    # The demo and the tests: the tiny model trained from scratch needs a far higher lr than
    # fine-tuning (but 5e-4 and more make it collapse to uniform predictions on the synthetic
    # data), and learns faster without mixing.
    "tiny": {
        "name": "tiny", "epochs": 10, "lr": 1e-4, "warmup_epochs": 1.0, "batch_size": 8,
        "micro_batch": 8, "frames": 8, "mixup_alpha": 0.0, "cutmix_alpha": 0.0,
        "num_workers": 2, "log_every": 5,
    },
}


def make_recipe(overrides: dict[str, Any], base: str = "k400", where: str = "recipe") -> Recipe:
    if base not in PRESETS:
        raise UserError(f"{where}: unknown base recipe {base!r} (known: {', '.join(PRESETS)})")
    if "name" not in overrides and overrides:
        overrides = {**overrides, "name": f"{PRESETS[base].get('name', base)}+custom"}
    try:
        return from_mapping(Recipe, overrides, where, base=Recipe(**PRESETS[base]))
    except UserError as e:
        raise UserError(f"{where}: {e}") if not str(e).startswith(where) else e from None


def load_recipe(value: str | Path | None) -> Recipe:
    """A preset name, or a YAML file of overrides (``base:`` chooses the preset)."""
    if value is None:
        return make_recipe({})
    s = str(value)
    if s in PRESETS:
        return make_recipe({}, base=s)
    p = Path(s)
    if not p.exists():
        raise UserError(f"recipe {s!r}: not a preset ({', '.join(PRESETS)}) and the file is not found")
    data = read_yaml(p, "recipe file")
    if not isinstance(data, dict):
        raise UserError(f"{p}: expected a mapping of recipe keys")
    base = data.pop("base", "k400")
    return make_recipe(data, base=str(base), where=str(p))


def recipe_fields() -> list[str]:
    return [f.name for f in fields(Recipe)]


__all__ = ["Recipe", "PRESETS", "load_recipe", "make_recipe", "recipe_fields"]
