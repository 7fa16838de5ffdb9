"""Settings as typed dataclass fields with their rules: one source for the command line,
the result files and the workflow's config schema.

A setting is declared with :func:`setting` (default, JSON-schema type and bounds, a
description); :func:`check` validates an instance (called from ``__post_init__``) and
refuses a bad value in one line naming the key, the value and what is allowed;
:func:`json_schema` writes the same rules as a JSON schema (the workflow's schema embeds
it, and a test keeps the two equal). :func:`from_mapping` is the one way a YAML mapping
becomes such a dataclass (settings, recipes, the demo dataset): unknown keys and values of
the wrong type are refused naming the file and the key.
"""
from __future__ import annotations

import dataclasses
import math
import types
import typing
from typing import Any, Mapping

from zar.core.errors import UserError

_TYPES = ("integer", "number", "string", "boolean", "array", "object")  # object: a mapping of names to items


def setting(default: Any, type: str, description: str, *, nullable: bool = False, items: dict | None = None,
            allowed: str | None = None, **rules: Any) -> Any:
    """A dataclass field with its rules (``minimum``, ``exclusiveMinimum``, ``maximum``,
    ``exclusiveMaximum``, ``enum``, ``minItems``, ``maxItems``, ``uniqueItems``, ``pattern``,
    ``minProperties``); lists and tuples take ``items`` rules, mappings (type ``object``) the
    rules of their values.
    ``allowed`` words the rules for error messages where the generated wording is obscure."""
    if type not in _TYPES:
        raise ValueError(f"unknown setting type {type!r}")
    meta = {"type": type, "description": description, "nullable": nullable, "items": items, "rules": rules,
            "allowed": allowed}
    if isinstance(default, (list, tuple)):
        return dataclasses.field(default_factory=lambda: tuple(default), metadata={"zar": meta})
    if isinstance(default, dict):
        return dataclasses.field(default_factory=lambda: dict(default), metadata={"zar": meta})
    return dataclasses.field(default=default, metadata={"zar": meta})


def _item_meta(items: dict) -> dict:
    """The rules of a list's items or a mapping's values, as a setting's (nested lists too)."""
    return {"type": items["type"], "rules": {k: v for k, v in items.items() if k not in ("type", "items")},
            "items": items.get("items"), "nullable": False}


def _describe(meta: dict) -> str:
    """What is allowed, in words: 'an integer >= 1', 'one of 1, 3, 5, 9', ..."""
    kinds = {"integer": "an integer", "number": "a finite number", "string": "a string", "boolean": "true or false",
             "array": "a list", "object": "a mapping of names"}
    r = meta["rules"]
    if meta.get("allowed"):
        return meta["allowed"]
    if "enum" in r:
        text = "one of " + ", ".join(map(str, r["enum"]))
    else:
        text = kinds[meta["type"]]
        if meta["type"] in ("array", "object") and meta["items"]:
            text += (" of " if meta["type"] == "array" else " to ") + _describe(_item_meta(meta["items"]))
            text = text.replace("an integer", "integers").replace("a finite number", "finite numbers")
        bounds = [f">= {r['minimum']}" if "minimum" in r else "", f"> {r['exclusiveMinimum']}"
                  if "exclusiveMinimum" in r else "", f"<= {r['maximum']}" if "maximum" in r else "",
                  f"< {r['exclusiveMaximum']}" if "exclusiveMaximum" in r else ""]
        bounds = [b for b in bounds if b]
        if bounds:
            text += " " + " and ".join(bounds)
        if r.get("minItems") and r.get("minItems") == r.get("maxItems"):
            text += f", exactly {r['minItems']} item{'s' if r['minItems'] > 1 else ''}"
        elif r.get("minItems"):
            text += f", at least {r['minItems']} item{'s' if r['minItems'] > 1 else ''}"
        if r.get("minProperties"):
            text += f", at least {r['minProperties']} entr{'ies' if r['minProperties'] > 1 else 'y'}"
        if r.get("uniqueItems"):
            text += ", no repeats"
        if "pattern" in r:
            text += f" matching {r['pattern']!r}"
    return text + (" (or null)" if meta.get("nullable") else "")


def _problem(value: Any, meta: dict) -> bool:
    """True when ``value`` breaks the rules of ``meta``."""
    import re

    if value is None:
        return not meta.get("nullable")
    typ, r = meta["type"], meta["rules"]
    if typ == "integer" and (isinstance(value, bool) or not isinstance(value, int)):
        return True
    if typ == "number" and (isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value)):
        return True
    if typ == "string" and not isinstance(value, str):
        return True
    if typ == "boolean" and not isinstance(value, bool):
        return True
    if typ == "array":
        if not isinstance(value, (list, tuple)):
            return True
        if len(value) < r.get("minItems", 0) or len(value) > r.get("maxItems", len(value)) \
                or (r.get("uniqueItems") and len(set(value)) != len(value)):
            return True
        return bool(meta["items"]) and any(_problem(v, _item_meta(meta["items"])) for v in value)
    if typ == "object":
        if not isinstance(value, dict) or not all(isinstance(k, str) for k in value) \
                or len(value) < r.get("minProperties", 0):
            return True
        return bool(meta["items"]) and any(_problem(v, _item_meta(meta["items"])) for v in value.values())
    if "enum" in r and value not in r["enum"]:
        return True
    if "minimum" in r and value < r["minimum"]:
        return True
    if "exclusiveMinimum" in r and value <= r["exclusiveMinimum"]:
        return True
    if "maximum" in r and value > r["maximum"]:
        return True
    if "exclusiveMaximum" in r and value >= r["exclusiveMaximum"]:
        return True
    if "pattern" in r and not re.fullmatch(r["pattern"], value):
        return True
    return False


def settings_fields(cls) -> dict[str, dict]:
    return {f.name: f.metadata["zar"] for f in dataclasses.fields(cls) if "zar" in f.metadata}


def check(obj: Any, section: str) -> None:
    """Refuse the first setting of ``obj`` that breaks its rules (one line, key = value: allowed)."""
    for name, meta in settings_fields(type(obj)).items():
        value = getattr(obj, name)
        if _problem(value, meta):
            raise UserError(f"setting {section}.{name} = {value!r}: must be {_describe(meta)}")


def bad_value(section: str, name: str, value: Any, allowed: str) -> UserError:
    """The error for a value that passes the field rules but not a rule across fields."""
    return UserError(f"setting {section}.{name} = {value!r}: {allowed}")


def json_schema(cls) -> dict[str, Any]:
    """A JSON schema (object, ``additionalProperties: false``) for the settings of ``cls``."""
    props: dict[str, Any] = {}
    for f in dataclasses.fields(cls):
        meta = f.metadata.get("zar")
        if meta is None:
            continue
        default = f.default if f.default is not dataclasses.MISSING else f.default_factory()
        prop: dict[str, Any] = {"description": meta["description"]}
        typ = meta["type"]
        prop["type"] = [typ, "null"] if meta["nullable"] else typ
        prop.update(meta["rules"])
        if typ == "array":
            prop["items"] = dict(meta["items"])
            default = list(default)
        if typ == "object":
            if meta["items"]:
                prop["additionalProperties"] = dict(meta["items"])
            default = {k: list(v) if isinstance(v, tuple) else v for k, v in default.items()}
        prop["default"] = default
        props[f.name] = prop
    return {"type": "object", "additionalProperties": False, "properties": props}


# ----------------------------------------------------------------------------- YAML -> dataclass
def from_mapping(cls, data: Any, where: str, *, base: Any = None, coerce: bool = True) -> Any:
    """An instance of the dataclass ``cls``: ``base`` (default: ``cls()``) with the keys of
    ``data`` replaced. An unknown key is an error naming ``where`` and the known keys; with
    ``coerce``, each value is checked against the field's annotation (``int``, ``float`` (an
    integer stands for it), ``str``, ``bool``, ``tuple`` and ``list`` (from a YAML list),
    ``dict``, ``X | None``); without, the class's own ``__post_init__`` checks them."""
    if not isinstance(data, Mapping):
        raise UserError(f"{where}: expected a mapping of {cls.__name__} keys, got {type(data).__name__}")
    names = [f.name for f in dataclasses.fields(cls)]
    unknown = sorted(set(data) - set(names))
    if unknown:
        raise UserError(f"{where}: unknown key(s) {unknown}; known keys: {', '.join(sorted(names))}")
    hints = typing.get_type_hints(cls) if coerce else {}
    values = {k: _coerce(hints[k], v, f"{where}: {k}") if coerce else v for k, v in data.items()}
    return dataclasses.replace(base if base is not None else cls(), **values)


def _coerce(tp: Any, value: Any, label: str) -> Any:
    origin, args = typing.get_origin(tp), typing.get_args(tp)
    if origin in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _coerce(inner[0], value, label) if len(inner) == 1 else value

    def wrong(kind: str):
        raise UserError(f"{label} must be {kind}, not {value!r}")

    if tp is bool:
        return value if isinstance(value, bool) else wrong("true or false")
    if tp is int:
        return value if isinstance(value, int) and not isinstance(value, bool) else wrong("an integer")
    if tp is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        return float(value) if ok else wrong("a number")
    if tp is str:
        return value if isinstance(value, str) else wrong("a string")
    if tp is tuple or origin is tuple:
        if not isinstance(value, (list, tuple)):
            wrong("a list")
        item = args[0] if args and (len(args) == 2 and args[1] is Ellipsis or len(set(args)) == 1) else None
        return tuple(_coerce(item, v, label) if item is not None else v for v in value)
    if tp is list or origin is list:
        return list(value) if isinstance(value, list) else wrong("a list")
    if tp is dict or origin is dict:
        return dict(value) if isinstance(value, dict) else wrong("a mapping")
    return value
