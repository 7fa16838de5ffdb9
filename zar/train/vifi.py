"""`zar import-vifi CKPT --out DIR`: a ViFi-CLIP checkpoint as a zar backbone.

ViFi-CLIP saves ``{"model": state_dict, "optimizer", "lr_scheduler", "epoch", "config", ...}``
where the state dict is that of its wrapper around OpenAI's CLIP (keys possibly prefixed
by ``module.`` from DDP):

- ``image_encoder.*``: the visual tower (``conv1``, ``class_embedding``, ``transformer.resblocks.N.*``,
  ``ln_post``, ``proj``), i.e. open_clip's ``visual.*``;
- ``text_encoder.{transformer.*, positional_embedding, ln_final.*, text_projection}``: the
  text tower without its token embedding, i.e. open_clip's top-level names;
- ``logit_scale``;
- ``prompt_learner.*``: buffers of precomputed prompt token embeddings (not weights).

The wrapper holds no token embedding (prompts are embedded once with OpenAI's table and
stored as buffers, so the table is never trained); when the checkpoint lacks
``token_embedding.weight`` it is taken from the ``--base`` weights (default: OpenAI
ViT-B/16, which ViFi-CLIP starts from). Every open_clip key must be filled; keys that map
nowhere are reported.

The file is read with ``torch.load(weights_only=True)``: tensors and plain containers only.
ViFi-CLIP's ``config`` entry is a yacs ``CfgNode`` (a dict subclass); it is read as a plain
mapping. Any other Python object in the file is refused with the list of what it holds.
"""
from __future__ import annotations

import logging
import pickle
from collections import OrderedDict
from pathlib import Path
from typing import Any

import torch

from zar.train.checkpoint import unsafe_globals, write_backbone
from zar.core.errors import UserError
from zar.core.files import sha256_file
from zar.core.provenance import provenance

log = logging.getLogger(__name__)

# (their prefix, our prefix); the first that matches wins
KEY_RULES: tuple[tuple[str, str], ...] = (
    ("image_encoder.", "visual."),
    ("text_encoder.transformer.", "transformer."),
    ("text_encoder.positional_embedding", "positional_embedding"),
    ("text_encoder.ln_final.", "ln_final."),
    ("text_encoder.text_projection", "text_projection"),
    ("prompt_learner.token_embedding.", "token_embedding."),
    ("token_embedding.", "token_embedding."),
    ("logit_scale", "logit_scale"),
)
# known entries that are not CLIP weights
KNOWN_EXTRAS = ("prompt_learner.complete_text_embeddings", "prompt_learner.token_prefix",
                "prompt_learner.token_suffix", "prompt_learner.ctx")
# classes ViFi-CLIP's checkpoints hold besides tensors, read as plain mappings
_STAND_INS = [(OrderedDict, "yacs.config.CfgNode")]


def read_checkpoint(path: str | Path) -> dict[str, torch.Tensor]:
    """The model state dict inside a ViFi-CLIP checkpoint, read without running pickled code."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"{path}: file not found")
    try:
        with torch.serialization.safe_globals(_STAND_INS):
            ckpt = torch.load(path, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as e:
        with torch.serialization.safe_globals(_STAND_INS):
            found, reason = unsafe_globals(path, e)
        if not found:
            raise UserError(f"{path}: not a readable PyTorch checkpoint ({reason})") from None
        raise UserError(
            f"{path}: refused: besides tensors the file holds Python objects that zar will not unpickle "
            f"({', '.join(found)}): loading it could run code hidden in the file. A ViFi-CLIP "
            "checkpoint holds only tensors, plain values and a yacs config; this file is not one "
            "(get the checkpoint from ViFi-CLIP's release page again)") from None
    except (RuntimeError, EOFError, OSError, ValueError) as e:
        raise UserError(f"{path}: not a readable PyTorch checkpoint ({str(e).strip().splitlines()[0]})") from None
    state = ckpt
    if isinstance(ckpt, dict):
        for key in ("model", "state_dict"):
            if key in ckpt and isinstance(ckpt[key], dict):
                state = ckpt[key]
                break
    if not isinstance(state, dict) or not state or not all(isinstance(v, torch.Tensor) for v in state.values()):
        raise UserError(f"{path}: no state dict of tensors found (top-level keys: {sorted(ckpt)[:10]})")
    return dict(state)


def map_keys(state: dict[str, torch.Tensor]) -> tuple[dict[str, torch.Tensor], dict[str, str], list[str], list[str]]:
    """ViFi-CLIP names -> open_clip names: (mapped, {new name: checkpoint name}, known extras, unmapped)."""
    mapped: dict[str, torch.Tensor] = {}
    origin: dict[str, str] = {}
    extras, unmapped = [], []
    for key, value in state.items():
        k = key[len("module."):] if key.startswith("module.") else key
        for theirs, ours in KEY_RULES:
            if k == theirs or (theirs.endswith(".") and k.startswith(theirs)):
                new = ours + k[len(theirs):]
                if new in mapped:
                    raise UserError(f"checkpoint maps two keys onto {new!r} (second: {key!r})")
                mapped[new], origin[new] = value, key
                break
        else:
            (extras if k in KNOWN_EXTRAS else unmapped).append(key)
    return mapped, origin, extras, unmapped


def import_vifi(ckpt: str | Path, out: str | Path, base: str = "vitb16_openai") -> dict[str, Any]:
    """Write ``out/model.safetensors`` + ``out/model.json``; return the import report."""
    import open_clip

    from zar.model.backbone import IMAGENET_MEAN, IMAGENET_STD, auto_quick_gelu, build_model, parse_spec, register_configs

    spec = parse_spec(base)
    register_configs()
    quick = auto_quick_gelu(spec, None)
    target = open_clip.create_model(spec.arch, pretrained=None, force_quick_gelu=quick)
    want = {k: v for k, v in target.state_dict().items() if k != "attn_mask"}
    mapped, origin, extras, unmapped = map_keys(read_checkpoint(ckpt))
    stray = sorted(origin[k] for k in set(mapped) - set(want))
    mapped = {k: v for k, v in mapped.items() if k in want}
    missing = sorted(set(want) - set(mapped))
    filled: list[str] = []
    if missing:
        log.info("%d keys not in the checkpoint (%s); taking them from %s",
                 len(missing), ", ".join(missing[:4]), base)
        try:
            base_model, _ = build_model(spec, "cpu")
        except UserError as e:
            raise UserError(f"{ckpt}: lacks {len(missing)} keys ({', '.join(missing[:4])}) that come from the "
                            f"base weights --base {base}, which cannot be loaded: {e}") from None
        base_state = base_model.state_dict()
        for k in missing:
            mapped[k] = base_state[k]
        filled = missing
    bad = [f"{k}: checkpoint {tuple(mapped[k].shape)} vs {spec.arch} {tuple(want[k].shape)}"
           for k in want if tuple(mapped[k].shape) != tuple(want[k].shape)]
    if bad:
        raise UserError(f"{ckpt}: shapes do not fit {spec.arch}: " + "; ".join(bad[:5]))
    state = {k: mapped[k].float() for k in want}
    result = target.load_state_dict(state, strict=False)  # a final consistency check
    if [k for k in result.missing_keys if k != "attn_mask"] or result.unexpected_keys:
        raise UserError(f"{ckpt}: internal error: the mapped weights do not load into {spec.arch} ({result})")
    report = {"filled_from_base": filled, "ignored_extras": extras, "unused": unmapped + stray}
    meta = {"arch": spec.arch, "quick_gelu": quick, "format": "zar-backbone/1",
            # ViFi-CLIP trained these weights on 32-frame clips with ImageNet statistics and
            # bilinear resizing: zar evaluates them with that preprocessing
            "preprocess": {"mean": list(IMAGENET_MEAN), "std": list(IMAGENET_STD), "interpolation": "bilinear"},
            "train_frames": 32,
            "source": {"kind": "vifi-clip", "path": str(ckpt), "sha256": sha256_file(ckpt)},
            "base": spec.to_dict(), **report, "provenance": provenance()}
    write_backbone(Path(out), state, meta)
    if report["unused"]:
        log.warning("%d checkpoint keys were not used: %s", len(report["unused"]), ", ".join(report["unused"][:8]))
    return report


