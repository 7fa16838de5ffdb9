"""Build CLIP backbones through open_clip from a small spec.

A spec is ``{arch, pretrained, quick_gelu}``:

- ``arch``: an open_clip architecture name (``ViT-B-16``) or one shipped with zar
  (``ZAR-Tiny``, a 64-px, 2-layer model for tests and the demo).
- ``pretrained``: an open_clip tag (``openai``), a local weights file, a checkpoint written by
  ``zar train`` (a ``.safetensors`` file with a ``.json`` beside it), or ``None``/``"none"`` for
  random initialisation.
- ``quick_gelu``: ``None`` = decide automatically (the OpenAI weights need QuickGELU; plain
  ``ViT-B-16`` with them silently gives wrong features).

Weights are fp32. Named backbones (``vitb16_openai``, ``tiny``) map to specs.
"""
from __future__ import annotations

import contextlib
import functools
import json
import logging
import os
import socket
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlparse

import torch

from zar.core.errors import UserError, first_line

log = logging.getLogger(__name__)

CONFIG_DIR = Path(__file__).resolve().parent / "configs"
# CLIP's normalisation and bicubic resize (docs/protocol.md §1): our convention for every
# backbone we load or train. A checkpoint's model.json may name other preprocessing (ViFi-CLIP's
# released weights were trained with ImageNet statistics and bilinear resizing), which is then
# used to evaluate it.
CLIP_MEAN = (0.48145466, 0.4578275, 0.40821073)
CLIP_STD = (0.26862954, 0.26130258, 0.27577711)
IMAGENET_MEAN = (0.485, 0.456, 0.406)  # ViFi-CLIP: mean [123.675, 116.28, 103.53] / 255
IMAGENET_STD = (0.229, 0.224, 0.225)  # ViFi-CLIP: std [58.395, 57.12, 57.375] / 255


@dataclass(frozen=True)
class BackboneSpec:
    arch: str = "ViT-B-16"
    pretrained: str | None = "openai"
    quick_gelu: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


NAMED: dict[str, BackboneSpec] = {
    "vitb16_openai": BackboneSpec("ViT-B-16", "openai"),
    "tiny": BackboneSpec("ZAR-Tiny", None),
}

_registered = False


def register_configs() -> None:
    """Make the architectures shipped in ``zar/model/configs`` known to open_clip (once)."""
    global _registered
    if not _registered:
        import open_clip

        open_clip.add_model_config(str(CONFIG_DIR))
        _registered = True


def parse_spec(value: str | dict | BackboneSpec) -> BackboneSpec:
    """A spec from a name (``vitb16_openai``), ``ARCH:PRETRAINED``, a dict, JSON text or a
    JSON file, or a checkpoint written by ``zar train`` (its ``.safetensors`` file or directory)."""
    if isinstance(value, BackboneSpec):
        return value
    if isinstance(value, dict):
        unknown = set(value) - {"arch", "pretrained", "quick_gelu"}
        if unknown:
            raise UserError(f"backbone spec: unknown keys {sorted(unknown)}")
        if "arch" not in value:
            raise UserError(f"backbone spec {value}: 'arch' is required")
        pre = value.get("pretrained")
        return BackboneSpec(value["arch"], None if pre in (None, "none", "") else str(pre),
                            value.get("quick_gelu"))
    s = str(value)
    if s in NAMED:
        return NAMED[s]
    if s.lstrip().startswith("{"):
        try:
            return parse_spec(json.loads(s))
        except json.JSONDecodeError as e:
            raise UserError(f"backbone {s!r}: not valid JSON ({e})") from None
    p = Path(s)
    if p.is_dir() and (p / "model.safetensors").is_file():
        p = p / "model.safetensors"
    if p.suffix == ".safetensors" and p.is_file():
        return checkpoint_spec(p)
    if p.suffix == ".json" and p.is_file():
        from zar.core.files import read_json

        data = read_json(p, "backbone spec")
        if not isinstance(data, dict) or "arch" not in data:
            raise UserError(f"{p}: a backbone spec is a JSON object with 'arch' (and 'pretrained', 'quick_gelu')")
        return parse_spec(data)
    if ":" in s and not p.exists():
        arch, pre = s.split(":", 1)
        return parse_spec({"arch": arch, "pretrained": pre})
    raise UserError(
        f"backbone {s!r}: not a known name ({', '.join(NAMED)}), not ARCH:PRETRAINED, "
        "and not a spec .json or a zar checkpoint (.safetensors with .json beside it)"
    )


def checkpoint_meta(weights: Path) -> dict[str, Any]:
    """The ``.json`` beside a zar checkpoint (architecture, activation, weights' sha256)."""
    meta_path = Path(weights).with_suffix(".json")
    if not meta_path.is_file():
        raise UserError(f"{weights}: no {meta_path.name} beside it saying which architecture it is")
    try:
        with open(meta_path, encoding="utf-8") as f:
            meta = json.load(f)
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as e:
        raise UserError(f"{meta_path}: not readable JSON ({e})") from None
    if not isinstance(meta, dict) or "arch" not in meta:
        raise UserError(f"{meta_path}: no 'arch' key")
    return meta


def checkpoint_spec(weights: Path) -> BackboneSpec:
    meta = checkpoint_meta(weights)
    return BackboneSpec(str(meta["arch"]), str(weights), bool(meta.get("quick_gelu", False)))


def backbone_meta(spec: BackboneSpec) -> dict[str, Any]:
    """The ``model.json`` of a checkpoint written by `zar train` / `zar import-vifi`, or {}."""
    if not spec.pretrained or not spec.pretrained.endswith(".safetensors"):
        return {}
    if not Path(spec.pretrained).with_suffix(".json").is_file():
        return {}
    return checkpoint_meta(Path(spec.pretrained))


def training_frames(spec: BackboneSpec) -> int | None:
    """Frames per clip the backbone was fine-tuned with (None: not fine-tuned by us, or unknown)."""
    meta = backbone_meta(spec)
    return meta.get("recipe", {}).get("frames") or meta.get("train_frames")


# ----------------------------------------------------------------------------- weights
def hf_cache_dir() -> str:
    from huggingface_hub import constants

    return str(constants.HF_HUB_CACHE)


def _tag_cfg(arch: str, tag: str) -> dict | None:
    import open_clip

    cfg = open_clip.get_pretrained_cfg(arch, tag)
    return cfg or None


def _cached_tag_file(cfg: dict, cache_dir: str | None) -> str | None:
    """The local file of a pretrained tag if it is already in the cache, else None."""
    hub = cfg.get("hf_hub", "")
    if hub:
        from huggingface_hub import try_to_load_from_cache

        model_id, filename = os.path.split(hub)
        names = [filename] if filename else ["open_clip_model.safetensors", "open_clip_pytorch_model.bin"]
        if filename and filename.endswith(".bin"):
            names.insert(0, filename[: -len(".bin")] + ".safetensors")
        for name in names:
            hit = try_to_load_from_cache(model_id, name, cache_dir=cache_dir)
            if isinstance(hit, str) and os.path.isfile(hit):
                return hit
    url = cfg.get("url", "")
    if url:
        target = Path(cache_dir or os.path.expanduser("~/.cache/clip")) / os.path.basename(url)
        if target.is_file():
            return str(target)
    return None


def _reachable(url: str, timeout: float = 3.0) -> bool:
    u = urlparse(url)
    port = u.port or (443 if u.scheme == "https" else 80)
    try:
        with socket.create_connection((u.hostname, port), timeout=timeout):
            return True
    except OSError:
        return False


def _hub_offline_reason() -> str | None:
    from huggingface_hub import constants

    if constants.HF_HUB_OFFLINE:
        return "HF_HUB_OFFLINE is set"
    if not _reachable(constants.ENDPOINT):
        return f"{constants.ENDPOINT} cannot be reached"
    return None


def resolve_weights(spec: BackboneSpec, cache_dir: str | None = None, allow_download: bool = True) -> str | None:
    """A local weights file for the spec, downloading a tag once if the network allows.

    Fails within seconds (not open_clip's ~46 s of retries) when the weights are neither
    cached nor reachable, with a message naming the cache and how to pre-fetch them.
    """
    pre = spec.pretrained
    if pre is None:
        return None
    if os.path.isfile(pre):
        return pre
    cfg = _tag_cfg(spec.arch, pre)
    if cfg is None:
        raise UserError(
            f"pretrained {pre!r}: not a file and not an open_clip tag of {spec.arch} "
            f"(tags: {', '.join(_tags(spec.arch)) or 'none'})"
        )
    hit = _cached_tag_file(cfg, cache_dir)
    if hit:
        return hit
    where = cache_dir or hf_cache_dir()
    reason = _hub_offline_reason() if allow_download else "downloads are disabled"
    if reason:
        raise UserError(
            f"weights {spec.arch}:{pre} are not in the cache {where} and cannot be downloaded "
            f"({reason}). Pre-fetch them on a machine with internet:\n"
            f"    zar fetch-weights --arch {spec.arch} --pretrained {pre}\n"
            f"then copy the cache directory here (or set HF_HUB_CACHE to it), or pass a local "
            f"weights file as pretrained."
        )
    from open_clip.pretrained import download_pretrained

    log.info("downloading %s:%s into %s", spec.arch, pre, where)
    path = download_pretrained(cfg, cache_dir=cache_dir)
    if not path:
        raise UserError(f"weights {spec.arch}:{pre}: download gave no file")
    return path


def _tags(arch: str) -> list[str]:
    import open_clip

    return open_clip.list_pretrained_tags_by_model(arch)


def auto_quick_gelu(spec: BackboneSpec, weights: str | None) -> bool:
    if spec.quick_gelu is not None:
        return bool(spec.quick_gelu)
    if spec.arch.endswith("-quickgelu"):
        return False  # the config already has it
    if spec.pretrained and not os.path.isfile(spec.pretrained):
        cfg = _tag_cfg(spec.arch, spec.pretrained) or {}
        return bool(cfg.get("quick_gelu", False))
    if weights and _is_openai_archive(weights):
        return True
    return False


def _is_openai_archive(path: str) -> bool:
    """OpenAI's released CLIP files are TorchScript zip archives; they need QuickGELU."""
    try:
        with zipfile.ZipFile(path) as z:
            return any(n.endswith("constants.pkl") or "/code/" in n for n in z.namelist())
    except (zipfile.BadZipFile, OSError):
        return False


# ----------------------------------------------------------------------------- building
@dataclass(frozen=True)
class Preprocess:
    image_size: int
    mean: tuple[float, float, float] = CLIP_MEAN
    std: tuple[float, float, float] = CLIP_STD
    interpolation: str = "bicubic"  # or "bilinear"

    def to_dict(self) -> dict[str, Any]:
        return {"mean": list(self.mean), "std": list(self.std), "interpolation": self.interpolation}


def view_preprocess(pre: Preprocess, views) -> Preprocess:
    """The preprocessing a run's views ask for (``views.preprocess``): the backbone's, or
    ViFi-CLIP's evaluation pipeline's (ImageNet mean and std, bilinear resizing)."""
    if views.preprocess == "vifi":
        return Preprocess(pre.image_size, IMAGENET_MEAN, IMAGENET_STD, "bilinear")
    return pre


def tokenizer_of(model: torch.nn.Module):
    """The tokenizer of the architecture a model was built as (by :func:`build_model`)."""
    arch = getattr(model, "zar_arch", None)
    if arch is None:
        raise UserError("this model was not built by zar.model.backbone.build_model: its tokenizer is unknown")
    return _tokenizer(arch)


@functools.cache
def _tokenizer(arch: str):
    """One tokenizer per architecture and process (building one reads the BPE vocabulary: 0.08 s)."""
    import open_clip

    register_configs()
    return open_clip.get_tokenizer(arch)


def checkpoint_preprocess(spec: BackboneSpec, image_size: int) -> Preprocess:
    """The preprocessing a checkpoint was trained with (its model.json), CLIP's otherwise."""
    pre = backbone_meta(spec).get("preprocess")
    if not pre:
        return Preprocess(image_size)
    if pre.get("interpolation") not in ("bicubic", "bilinear") or len(pre.get("mean", [])) != 3 \
            or len(pre.get("std", [])) != 3:
        raise UserError(f"{Path(spec.pretrained).with_suffix('.json')}: 'preprocess' needs mean and std (3 values "
                        f"each) and interpolation bicubic or bilinear, got {pre!r}")
    return Preprocess(image_size, tuple(pre["mean"]), tuple(pre["std"]), pre["interpolation"])


def build_model(spec: BackboneSpec | str | dict, device: str | torch.device = "cpu",
                cache_dir: str | None = None) -> tuple[torch.nn.Module, Preprocess]:
    """The CLIP model (fp32, eval mode) and its preprocessing settings."""
    import open_clip

    spec = parse_spec(spec)
    register_configs()
    if spec.arch not in open_clip.list_models():
        raise UserError(f"unknown architecture {spec.arch!r}; open_clip knows e.g. ViT-B-16, and zar ships ZAR-Tiny")
    weights = resolve_weights(spec, cache_dir=cache_dir)
    quick = auto_quick_gelu(spec, weights)
    if weights and weights.endswith(".safetensors") and Path(weights).with_suffix(".json").is_file():
        meta = checkpoint_spec(Path(weights))  # a zar checkpoint says its architecture and activation
        if meta.arch != spec.arch:
            raise UserError(f"{weights}: a {meta.arch} checkpoint, but the spec asks for {spec.arch}")
        quick = bool(meta.quick_gelu) if spec.quick_gelu is None else bool(spec.quick_gelu)
        with _no_random_init():  # every weight comes from the file (a missing one is an error below)
            model = open_clip.create_model(spec.arch, pretrained=None, force_quick_gelu=quick)
        load_checkpoint_weights(model, weights)
    elif weights is None:
        # random initialisation, seeded: every process builds the same "untrained" model
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(0)
            model = open_clip.create_model(spec.arch, pretrained=None, force_quick_gelu=quick)
    else:
        try:
            model = open_clip.create_model(spec.arch, pretrained=weights, force_quick_gelu=quick)
        except Exception as e:  # a damaged or foreign weights file: one line, not a traceback
            raise UserError(f"{weights}: cannot load as {spec.arch} weights ({type(e).__name__}: "
                            f"{first_line(e)})") from None
    model = model.to(device).eval()
    model.zar_arch = spec.arch  # its tokenizer: tokenizer_of(model)
    size = model.visual.image_size
    size = size[0] if isinstance(size, (tuple, list)) else int(size)
    log.info("backbone %s pretrained=%s quick_gelu=%s image_size=%d", spec.arch, spec.pretrained, quick, size)
    return model, checkpoint_preprocess(spec, size)


_INIT_FUNCTIONS = ("normal_", "uniform_", "trunc_normal_", "kaiming_uniform_", "kaiming_normal_", "xavier_uniform_",
                   "xavier_normal_", "orthogonal_", "constant_", "zeros_", "ones_")


@contextlib.contextmanager
def _no_random_init():
    """Build a model without drawing its random initial weights (about 1 s of a job's start-up
    for ViT-B/16 on a CPU) when every weight is loaded from a file right after: torch.nn.init's
    functions leave their tensor as it is. Buffers computed outright (the causal mask) are
    unaffected, and :func:`load_checkpoint_weights` refuses a file that misses any weight.
    open_clip's "No pretrained weights loaded ... Model initialized randomly" (on the root
    logger) is not true here, so it is not shown."""
    saved = {name: getattr(torch.nn.init, name) for name in _INIT_FUNCTIONS}
    root = logging.getLogger()
    notice = lambda record: "initialized randomly" not in record.getMessage()  # noqa: E731
    root.addFilter(notice)
    try:
        for name in _INIT_FUNCTIONS:
            setattr(torch.nn.init, name, lambda tensor, *args, **kwargs: tensor)
        yield
    finally:
        root.removeFilter(notice)
        for name, fn in saved.items():
            setattr(torch.nn.init, name, fn)


def load_checkpoint_weights(model: torch.nn.Module, path: str) -> None:
    """Load a zar checkpoint's weights (safetensors: no code can be unpickled), after checking
    the file's sha256 against the ``weights_sha256`` its ``.json`` records."""
    from safetensors.torch import load_file

    from zar.core.files import sha256_file

    expected = checkpoint_meta(Path(path)).get("weights_sha256")
    if expected is None:
        log.warning("%s: its .json records no weights_sha256 (written by an older zar): not verified", path)
    else:
        try:
            actual = sha256_file(path)
        except OSError as e:
            raise UserError(f"{path}: cannot read ({e.strerror})") from None
        if actual != expected:
            raise UserError(f"{path}: corrupt backbone weights: sha256 {actual}, but "
                            f"{Path(path).with_suffix('.json').name} records {expected}")
    try:
        state = load_file(path)
    except Exception as e:
        raise UserError(f"{path}: cannot read as safetensors ({first_line(e)})") from None
    want = model.state_dict()
    bad = [f"{k}: file {tuple(v.shape)} vs model {tuple(want[k].shape)}"
           for k, v in state.items() if k in want and tuple(v.shape) != tuple(want[k].shape)]
    if bad:
        raise UserError(f"{path}: weights do not fit the architecture ({len(bad)} shapes differ, e.g. {bad[0]})")
    missing, unexpected = model.load_state_dict(state, strict=False)
    missing = [k for k in missing if k != "attn_mask"]
    if missing or unexpected:
        raise UserError(f"{path}: weights do not fit the architecture (missing {missing[:5]}, unexpected {unexpected[:5]})")


def autocast(device: torch.device | str, precision: str = "bf16"):
    """Mixed precision on CUDA with fp32 weights (``precision`` bf16, the default for inference
    and training, or fp16; fp32: none); a no-op context on the CPU."""
    import contextlib

    if torch.device(device).type == "cuda" and precision in ("bf16", "fp16"):
        return torch.autocast("cuda", dtype=torch.bfloat16 if precision == "bf16" else torch.float16)
    return contextlib.nullcontext()
