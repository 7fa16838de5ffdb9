"""Method settings from a YAML/JSON file plus ``--set section.key=value`` overrides.

Sections: ``views`` (:class:`zar.views.ViewConfig`), ``tune`` (:class:`zar.tta.TuneConfig`)
and ``run`` (:class:`RunConfig`: device, batching, decoding). Unknown keys are errors.
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from zar.tta import TuneConfig
from zar.utils import UserError, read_yaml
from zar.views import ViewConfig


@dataclass(frozen=True)
class RunConfig:
    device: str = "auto"  # auto = cuda if available, else cpu
    batch_size: int = 256  # frames per image-encoder batch
    workers: int = 2  # video-reading worker processes (0 = in the main process)
    backend: str = "decord"  # video reader
    timeout: float = 120.0  # seconds allowed to read one video
    chunk: int = 200  # videos per resumable chunk written by `zar encode`
    store_dtype: str = "float32"  # dtype of cached embeddings (float32 or float16)

    def resolved_device(self) -> str:
        if self.device != "auto":
            return self.device
        import torch

        return "cuda" if torch.cuda.is_available() else "cpu"


SECTIONS = {"views": ViewConfig, "tune": TuneConfig, "run": RunConfig}


@dataclass(frozen=True)
class Settings:
    views: ViewConfig = ViewConfig()
    tune: TuneConfig = TuneConfig()
    run: RunConfig = RunConfig()

    def to_dict(self) -> dict[str, Any]:
        return {"views": self.views.to_dict(), "tune": self.tune.to_dict(), "run": dataclasses.asdict(self.run)}


def _coerce(value: str) -> Any:
    return yaml.safe_load(value)


def load_settings(path: str | Path | None = None, sets: list[str] | None = None) -> Settings:
    data: dict[str, dict[str, Any]] = {k: {} for k in SECTIONS}
    if path:
        raw = read_yaml(path, "settings file")
        if not isinstance(raw, dict):
            raise UserError(f"{path}: expected a mapping of sections {sorted(SECTIONS)}")
        for sec, vals in raw.items():
            if sec not in SECTIONS:
                raise UserError(f"{path}: unknown section {sec!r} (known: {sorted(SECTIONS)})")
            if not isinstance(vals, dict):
                raise UserError(f"{path}: section {sec!r} must be a mapping")
            data[sec].update(vals)
    for item in sets or []:
        if "=" not in item or "." not in item.split("=", 1)[0]:
            raise UserError(f"--set {item!r}: expected section.key=value, e.g. tune.steps=2")
        key, value = item.split("=", 1)
        sec, name = key.split(".", 1)
        if sec not in SECTIONS:
            raise UserError(f"--set {item!r}: unknown section {sec!r} (known: {sorted(SECTIONS)})")
        data[sec][name] = _coerce(value)
    out = {}
    for sec, cls in SECTIONS.items():
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = set(data[sec]) - known
        if unknown:
            raise UserError(f"settings: unknown key(s) {sorted(unknown)} in section {sec!r} (known: {sorted(known)})")
        try:
            out[sec] = cls(**data[sec])
        except TypeError as e:
            raise UserError(f"settings: section {sec!r}: {e}") from None
    return Settings(**out)


def add_settings_arguments(p) -> None:
    p.add_argument("--config", default=None, help="YAML file with sections views/tune/run (defaults: PROTOCOL.md)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set views.crops=9 --set tune.ratio=0.5 (repeatable)")
