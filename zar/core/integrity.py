"""Content checksums for the files zar writes and reads back.

``torch.load`` does not check a zip archive's CRCs: flipped bytes inside the tensor data of an
embedding cache, an encode part file or a training state file load without complaint. Every
such file is therefore written as ``{"format": FORMAT, "sha256": <digest>, "payload": ...}``,
where the digest is a sha256 over a canonical serialisation of the payload (each tensor's
dtype, shape and bytes; containers with their kind and length, dict entries in key order;
plain values as JSON), and the digest is recomputed and compared on every load. Files are
still read with ``torch.load(weights_only=True)``: tensors and plain values only.

A digest over the content (not the file's bytes) lets the digest live inside the file and
stays the same whatever torch's zip layout; a damaged archive that torch cannot even open is
reported by the caller's ``torch.load`` error handling.
"""
from __future__ import annotations

import hashlib
import json
import os
import struct
from pathlib import Path
from typing import Any

import torch

from zar.core.errors import UserError
from zar.core.files import atomic_path

FORMAT = "zar-checked/1"


class IntegrityError(UserError):
    """A file's content does not match the checksum stored with it (``corrupt``), or it has
    none (an older or foreign file) or cannot be read."""

    def __init__(self, message: str, corrupt: bool = False):
        super().__init__(message)
        self.corrupt = corrupt


def digest(obj: Any) -> str:
    """sha256 (hex) of ``obj``'s canonical serialisation; TypeError for other objects than
    tensors, dicts, lists, tuples, str, int, float, bool and None."""
    h = hashlib.sha256()
    _feed(h, obj)
    return h.hexdigest()


def _atom(h, tag: bytes, data: bytes) -> None:
    h.update(tag + struct.pack("<Q", len(data)) + data)


def _plain(obj: Any) -> bytes:
    return json.dumps([type(obj).__name__, obj], allow_nan=True).encode("utf-8")


def _feed(h, obj: Any) -> None:
    if isinstance(obj, torch.Tensor):
        t = obj.detach().to("cpu").contiguous()
        if t.is_conj():
            t = t.resolve_conj()
        head = json.dumps([str(t.dtype), list(t.shape)]).encode("utf-8")
        _atom(h, b"T", head)
        flat = t.reshape(-1)
        data = flat.view(torch.uint8) if flat.dtype != torch.uint8 else flat
        h.update(struct.pack("<Q", data.numel()))
        if data.numel():
            h.update(data.numpy())
    elif isinstance(obj, dict):
        items = []
        for k, v in obj.items():
            if not isinstance(k, (str, int, float, bool)) and k is not None:
                raise TypeError(f"cannot checksum a dict key of type {type(k).__name__}")
            items.append((_plain(k), v))
        items.sort(key=lambda kv: kv[0])
        _atom(h, b"D", struct.pack("<Q", len(items)))
        for kb, v in items:
            _atom(h, b"K", kb)
            _feed(h, v)
    elif isinstance(obj, (list, tuple)):
        _atom(h, b"L" if isinstance(obj, list) else b"U", struct.pack("<Q", len(obj)))
        for v in obj:
            _feed(h, v)
    elif obj is None or isinstance(obj, (str, int, float, bool)):
        _atom(h, b"P", _plain(obj))
    else:
        raise TypeError(f"cannot checksum an object of type {type(obj).__name__}")


def wrap(payload: Any) -> dict[str, Any]:
    """The payload with its digest, as stored on disk."""
    return {"format": FORMAT, "sha256": digest(payload), "payload": payload}


def unwrap(path: str | os.PathLike, data: Any, what: str) -> Any:
    """The payload of a loaded file, after checking its digest; IntegrityError naming the file
    and the problem otherwise (``what`` says which kind of file it should be)."""
    if not isinstance(data, dict) or data.get("format") != FORMAT or "payload" not in data:
        raise IntegrityError(f"{path}: no content checksum; not a {what} written by this version of zar "
                             "(an older or foreign file cannot be verified)")
    stored = data.get("sha256")
    try:
        actual = digest(data["payload"])
    except TypeError as e:
        raise IntegrityError(f"{path}: corrupt {what}: {e}", corrupt=True) from None
    if actual != stored:
        raise IntegrityError(f"{path}: corrupt {what}: its content does not match the checksum stored "
                             f"with it (stored sha256 {stored}, content {actual})", corrupt=True)
    return data["payload"]


def save(path: str | os.PathLike, payload: Any) -> None:
    """Write ``wrap(payload)`` with ``torch.save``, atomically (a temporary file renamed on
    success). Written through a Python file object so that a full disk raises an OSError
    that ``atomic_path`` turns into a one-line UserError."""
    data = wrap(payload)
    with atomic_path(path) as tmp:
        with open(tmp, "wb") as f:
            torch.save(data, f)
            f.flush()
            os.fsync(f.fileno())


def load(path: str | os.PathLike, what: str) -> Any:
    """``torch.load(weights_only=True)`` then ``unwrap``; unreadable files are IntegrityError too."""
    path = Path(path)
    try:
        data = torch.load(path, map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise
    except Exception as e:
        first = (str(e).strip().splitlines() or [type(e).__name__])[0]
        raise IntegrityError(f"{path}: not a readable {what} ({type(e).__name__}: {first})") from None
    return unwrap(path, data, what)
