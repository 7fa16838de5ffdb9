"""Method settings from a YAML/JSON file plus ``--set section.key=value`` overrides.

Sections: ``views`` (:class:`zar.method.views.ViewConfig`), ``tune`` (:class:`TuneConfig`),
``run`` (:class:`RunConfig`: device, batching, decoding), and one per test-time method that has
settings of its own (named after it: ``zero``, ``mta``, ... from zar.method.testtime). Every
setting is declared once with its rules (:mod:`zar.core.fields`): the command line refuses a bad
value in one line, before any work, and the workflow's config schema holds the same rules
(``settings_schema``).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import yaml

from zar.core.fields import from_mapping, json_schema, settings_fields
from zar.core.errors import UserError
from zar.core.files import read_yaml
from zar.method.sections import RunConfig, TuneConfig
from zar.method.testtime import METHODS
from zar.method.views import ViewConfig

METHOD_SECTIONS = {m.name: m.settings for m in METHODS.values() if m.settings is not None}
SECTIONS = {"views": ViewConfig, "tune": TuneConfig, "run": RunConfig, **METHOD_SECTIONS}


SECTION_DESCRIPTIONS = {
    "views": "the views of a video and the inference clip (docs/protocol.md §3.1, §3.6)",
    "tune": "test-time tuning (docs/protocol.md §3.2-3.7)",
    "run": "devices, batching and video reading (no effect on the numbers but image_precision's, within bf16's "
           "precision)",
    **{m.name: f"{m.description} (docs/protocol.md §7)" for m in METHODS.values() if m.settings is not None},
}


def settings_schema() -> dict[str, Any]:
    """The JSON schema of the settings sections (the workflow config's ``method``): the same
    rules the command line applies, written out by :func:`zar.core.fields.json_schema`."""
    return {sec: {**json_schema(cls), "description": SECTION_DESCRIPTIONS[sec], "default": {}}
            for sec, cls in SECTIONS.items()}


@dataclass(frozen=True)
class Settings:
    views: ViewConfig = ViewConfig()
    tune: TuneConfig = TuneConfig()
    run: RunConfig = RunConfig()
    methods: dict[str, Any] = field(default_factory=lambda: {k: cls() for k, cls in METHOD_SECTIONS.items()})

    def to_dict(self) -> dict[str, Any]:
        return {"views": self.views.to_dict(), "tune": self.tune.to_dict(), "run": asdict(self.run),
                **{k: asdict(v) for k, v in self.methods.items()}}


def _coerce(item: str, value: str, kind: str | None) -> Any:
    """The value of ``--set key=value`` as YAML; a text setting takes the text as it is."""
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as e:
        if kind == "string":
            return value
        raise UserError(f"--set {item!r}: the value is not valid YAML ({str(e).splitlines()[0]})") from None
    return value if kind == "string" and not isinstance(parsed, str) else parsed


def load_settings(path: str | Path | None = None, sets: list[str] | None = None,
                  method: str = "zar") -> Settings:
    """Defaults, then the file, then ``--set`` items; ``method="vanilla"`` means no tuning steps."""
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
        kind = settings_fields(SECTIONS[sec]).get(name, {}).get("type")
        data[sec][name] = _coerce(item, value, kind)
    if method == "vanilla":
        data["tune"]["steps"] = 0
    # each section's own rules (zar.core.fields.check in __post_init__) judge the values
    made = {sec: from_mapping(cls, data[sec], f"settings section {sec!r}", coerce=False)
            for sec, cls in SECTIONS.items()}
    return Settings(made["views"], made["tune"], made["run"], {k: made[k] for k in METHOD_SECTIONS})


def add_settings_arguments(p) -> None:
    p.add_argument("--config", default=None,
                   help="YAML file with sections views/tune/run (defaults: docs/protocol.md)")
    p.add_argument("--set", action="append", default=[], metavar="SECTION.KEY=VALUE",
                   help="override one setting, e.g. --set views.crops=9 --set tune.ratio=0.5 (repeatable)")
