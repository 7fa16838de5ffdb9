"""Training state on disk: resumable state files and the final backbone.

- ``DIR/state/step_XXXXXXXX.pt``: everything needed to continue (model, optimizer, loss
  scaler, step, RNG states of every process, skipped videos). Written atomically with
  ``torch.save`` and read back with ``torch.load(weights_only=True)``: tensors and plain
  values only. A file holding any other pickled object is refused, never executed. The
  content carries a sha256 checked on load (``zar.core.integrity``): a corrupt file is refused.
- ``DIR/model.safetensors`` + ``DIR/model.json``: the trained CLIP, loadable as a backbone
  (``zar evaluate --backbone DIR``); the json names the architecture and the provenance, and
  ``weights_sha256`` (the safetensors file's sha256, verified when the backbone is loaded).
"""
from __future__ import annotations

import logging
import os
import pickle
import random
import re
from pathlib import Path
from typing import Any

import numpy as np
import torch

from zar.core import integrity
from zar.core.errors import UserError
from zar.core.files import atomic_path, sha256_file, write_json

log = logging.getLogger(__name__)

STATE_DIR = "state"
_STATE_RE = re.compile(r"^step_(\d{8})\.pt$")


# ----------------------------------------------------------------------------- RNG states
def rng_state() -> dict[str, Any]:
    """This process's torch, CUDA, numpy and Python RNG states as tensors and plain values."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, py_state, gauss_next = random.getstate()
    return {
        "torch": torch.get_rng_state(),
        "cuda": list(torch.cuda.get_rng_state_all()) if torch.cuda.is_available() else [],
        "numpy": {"kind": str(kind), "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
                  "pos": int(pos), "has_gauss": int(has_gauss), "cached": float(cached)},
        "python": {"version": int(version), "state": torch.tensor(py_state, dtype=torch.int64),
                   "gauss_next": gauss_next},
    }


def set_rng_state(s: dict[str, Any]) -> None:
    torch.set_rng_state(s["torch"])
    if s["cuda"] and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(s["cuda"])
    n = s["numpy"]
    np.random.set_state((n["kind"], n["keys"].numpy().astype(np.uint32), n["pos"], n["has_gauss"], n["cached"]))
    p = s["python"]
    random.setstate((p["version"], tuple(int(v) for v in p["state"].tolist()), p["gauss_next"]))


# ----------------------------------------------------------------------------- state files
def state_path(out: Path, step: int) -> Path:
    return Path(out) / STATE_DIR / f"step_{step:08d}.pt"


def list_states(out: Path) -> list[tuple[int, Path]]:
    d = Path(out) / STATE_DIR
    if not d.is_dir():
        return []
    found = [(int(m.group(1)), p) for p in d.iterdir() if (m := _STATE_RE.match(p.name))]
    return sorted(found)


def save_state(path: Path, state: dict[str, Any]) -> None:
    """Write a state file atomically, with a checksum of its content (``zar.core.integrity``)."""
    integrity.save(path, state)


def load_state(path: str | Path) -> dict[str, Any]:
    """Load a state file with ``weights_only=True``; refuse anything holding other objects,
    and any file whose content does not match its checksum."""
    path = Path(path)
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
        state = integrity.unwrap(path, state, "`zar train` state file")
    except integrity.IntegrityError as e:
        if e.corrupt:
            raise UserError(f"{e}; delete it to resume from the state file before it") from None
        raise
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except pickle.UnpicklingError as e:
        found, reason = unsafe_globals(path, e)
        if found:
            raise UserError(
                f"{path}: refused: the file holds pickled Python objects ({', '.join(found)}), not only tensors "
                "and plain values. zar never unpickles arbitrary objects; this is not a state file written by "
                "`zar train`") from None
        raise UserError(f"{path}: not a readable state file ({reason})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable state file ({unpickler_line(e)})") from None
    if not isinstance(state, dict) or "model" not in state or "step" not in state:
        raise UserError(f"{path}: not a `zar train` state file (no model/step entries)")
    return state


def unsafe_globals(path: Path, error: BaseException) -> tuple[list[str], str]:
    """The Python globals a checkpoint needs beyond tensors (empty if it is simply unreadable),
    and the reason ``torch.load(weights_only=True)`` gave."""
    try:
        found = list(torch.serialization.get_unsafe_globals_in_checkpoint(str(path)))
    except Exception:  # not a zip checkpoint: nothing to list
        found = []
    return found, unpickler_line(error)


def unpickler_line(e: BaseException) -> str:
    """The line of a refused load that names the refused global, else the first line."""
    text = str(e).strip()
    for line in text.splitlines():
        if "WeightsUnpickler error" in line or "Unsupported global" in line:
            return line.strip()
    return text.splitlines()[0] if text else type(e).__name__


def prune_states(out: Path, keep: set[int]) -> None:
    """Delete state files whose step is not in ``keep``."""
    for step, p in list_states(out):
        if step not in keep:
            p.unlink(missing_ok=True)


# ----------------------------------------------------------------------------- backbone
def write_backbone(out: Path, state_dict: dict[str, torch.Tensor], meta: dict[str, Any]) -> Path:
    """``out/model.safetensors`` + ``out/model.json`` (json last: its presence marks completion)."""
    from safetensors.torch import save

    if "arch" not in meta or "quick_gelu" not in meta:
        raise ValueError("backbone metadata needs 'arch' and 'quick_gelu'")
    out = Path(out)
    weights = out / "model.safetensors"
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous().clone() for k, v in state_dict.items()}
    # one metadata key: safetensors writes a metadata mapping in hash order, which changes from
    # process to process, so two keys gave other bytes for the same weights (the architecture is
    # in model.json)
    blob = save(tensors, metadata={"format": "pt"})
    del tensors
    with atomic_path(weights, suffix=".part.safetensors") as tmp:
        with open(tmp, "wb") as f:  # Python writes: a full disk raises ENOSPC (a one-line error)
            f.write(blob)
            f.flush()
            os.fsync(f.fileno())
        digest = sha256_file(tmp)
    del blob
    write_json(out / "model.json", {**meta, "weights_sha256": digest})
    return weights
