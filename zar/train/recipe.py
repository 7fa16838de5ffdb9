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

from zar.core.fields import from_mapping
from zar.core.errors import UserError
from zar.core.files import read_yaml


@dataclass(frozen=True)
class Recipe:
    name: str = "k400"
    # --- optimisation (docs/protocol.md §4: AdamW betas 0.9/0.98, wd 0.001, cosine to lr/100, 5 warm-up epochs)
    epochs: int = 10
    lr: float = 8e-6
    min_lr_ratio: float = 0.01  # the cosine ends at lr * min_lr_ratio (timm CosineLRScheduler, as ViFi-CLIP)
    warmup_epochs: float = 5.0  # linear warm-up from 0, in epochs (int(warmup_epochs * steps per epoch) steps)
    weight_decay: float = 0.001  # on every parameter, as ViFi-CLIP does
    betas: tuple[float, float] = (0.9, 0.98)
    eps: float = 1e-8
    batch_size: int = 256  # global batch = micro_batch x processes x accumulation steps
    micro_batch: int = 8  # clips per process per forward pass (hardware-dependent; our choice)
    max_logit_scale: float = 100.0  # exp(logit_scale) is clamped to this after each step (our choice, as CLIP)
    precision: str = "bf16"  # autocast dtype on CUDA: bf16 | fp16 (with a loss scaler) | fp32; CPU runs fp32
    # --- data
    frames: int = 16  # frames per clip (ViFi-CLIP: 32; docs/protocol.md §4: 16)
    prompt: str = "a photo of a {c}."
    # --- targets: label smoothing and mixup / cutmix on soft targets
    label_smoothing: float = 0.1
    mixup_alpha: float = 0.8  # 0 disables mixup
    cutmix_alpha: float = 1.0  # 0 disables cutmix
    mix_switch_prob: float = 0.5  # probability of cutmix when both are enabled
    # --- spatial augmentation, the same for every frame of a clip
    crop_scales: tuple[float, ...] = (1.0, 0.875, 0.75, 0.66)
    max_scale_gap: int = 1  # width and height scale indices differ by at most this
    resize_ratio: float = 256 / 224  # short side resized to image_size * ratio before the crop
    flip_p: float = 0.5
    color_jitter_p: float = 0.8
    brightness: float = 0.4  # jitter strengths (our choice, the usual video values)
    contrast: float = 0.4
    saturation: float = 0.2
    hue: float = 0.1
    grayscale_p: float = 0.2
    # --- run control
    seed: int = 1024
    num_workers: int = 8  # DataLoader workers per process
    log_every: int = 50  # optimizer steps between log lines
    save_every: int = 0  # optimizer steps between checkpoints (0: only at the end of each epoch)
    video_backend: str = "decord"
    decode_timeout: float = 60.0
    max_replacements: int = 20  # undecodable videos replaced in a row before giving up
    cache_frames: bool = False  # keep each video's decoded frames in memory after its first read
    # (small data sets such as the demo; the clips are the same, only faster)

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 1:
            problems.append("epochs must be >= 1")
        if self.batch_size < 1 or self.micro_batch < 1:
            problems.append("batch_size and micro_batch must be >= 1")
        if self.frames < 1:
            problems.append("frames must be >= 1")
        if not 0 <= self.label_smoothing < 1:
            problems.append("label_smoothing must be in [0, 1)")
        if self.precision not in ("bf16", "fp16", "fp32"):
            problems.append("precision must be bf16, fp16 or fp32")
        if not self.crop_scales or any(not 0 < s <= 1 for s in self.crop_scales):
            problems.append("crop_scales must be in (0, 1]")
        if "{c}" not in self.prompt:
            problems.append("prompt must contain {c}")
        if self.warmup_epochs < 0 or self.warmup_epochs > self.epochs:
            problems.append("warmup_epochs must be in [0, epochs]")
        if self.mixup_alpha < 0 or self.cutmix_alpha < 0:
            problems.append("mixup_alpha and cutmix_alpha must be >= 0")
        if problems:
            raise UserError(f"recipe {self.name!r}: " + "; ".join(problems))

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
    return from_mapping(Recipe, overrides, where, base=Recipe(**PRESETS[base]))


def load_recipe(value: str | Path | None) -> Recipe:
    """A preset name, or a YAML file of overrides (``base:`` chooses the preset)."""
    if value is None:
        return make_recipe({})
    s = str(value)
    if s in PRESETS:
        return make_recipe({}, base=s)
    p = Path(s)
    if not p.is_file():
        raise UserError(f"recipe {s!r}: not a preset ({', '.join(PRESETS)}) and no such file")
    data = read_yaml(p, "recipe file")
    if not isinstance(data, dict):
        raise UserError(f"{p}: expected a mapping of recipe keys")
    base = data.pop("base", "k400")
    return make_recipe(data, base=str(base), where=str(p))


def recipe_fields() -> list[str]:
    return [f.name for f in fields(Recipe)]


__all__ = ["Recipe", "PRESETS", "load_recipe", "make_recipe", "recipe_fields"]
