"""Training-time sampling and augmentation, as pure functions of tensors and seeds.

Every random choice is drawn from a generator seeded by ``stable_int(...)`` of the run seed
and where the sample sits (epoch, video index, position in the batch), never from global
RNG state, so a clip looks the same whatever the number of workers, processes or restarts.

- ``segment_indices``: TSN-style sampling, T equal segments over the video, one random
  frame in each.
- ``sample_clip_aug`` / ``apply_clip_aug``: multi-scale crop (scales 1, .875, .75, .66 of
  the short side after resizing it to ``image_size * 256/224``, at one of 5 fixed
  positions) resized to the model's size, horizontal flip, colour jitter (brightness,
  contrast, saturation as torchvision; hue as a YIQ rotation), greyscale, CLIP
  normalisation. One draw per clip: all its frames get the same augmentation.
- ``soft_targets``, ``mix_batch``, ``soft_cross_entropy``: label smoothing, then mixup or
  cutmix between the two clips of each pair (positions 2k, 2k+1 of the global batch).
  Pairing by global position (not by the per-process batch, as ViFi-CLIP does) makes the
  result independent of how the batch is split over processes and accumulation steps.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torch.nn.functional as F

from zar.core.files import stable_int


def clip_generator(*parts) -> torch.Generator:
    return torch.Generator().manual_seed(stable_int(*parts))


def _uniform(g: torch.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
    return lo + (hi - lo) * float(torch.rand((), generator=g, dtype=torch.float64))


def _randint(g: torch.Generator, n: int) -> int:
    return int(torch.randint(n, (), generator=g))


# ----------------------------------------------------------------------------- frames
def segment_indices(num_frames: int, t: int, seed: int) -> list[int]:
    """T equal segments over ``[0, num_frames)``, a random index in each (a pure function).

    Segment i is ``[floor(i n / T), floor((i + 1) n / T))``; when the video has fewer
    frames than T, an empty segment takes its start frame (frames repeat).
    """
    if num_frames < 1:
        raise ValueError("a video needs at least one frame")
    g = torch.Generator().manual_seed(seed)
    out = []
    for i in range(t):
        lo = (i * num_frames) // t
        hi = ((i + 1) * num_frames) // t
        span = max(hi - lo, 1)
        out.append(min(lo + _randint(g, span), num_frames - 1))
    return out


# ----------------------------------------------------------------------------- spatial
@dataclass(frozen=True)
class ClipAug:
    box: tuple[int, int, int, int]  # top, left, height, width in the decoded frame
    flip: bool
    jitter: tuple[tuple[str, float], ...]  # (op, factor) in the order applied; empty = none
    gray: bool


def crop_box(height: int, width: int, image_size: int, recipe, g: torch.Generator) -> tuple[int, int, int, int]:
    """Multi-scale crop: the box in the decoded frame's coordinates.

    The geometry is decided on the frame resized so its short side is
    ``round(image_size * resize_ratio)``, then mapped back, so the clip is cropped and
    resized once.
    """
    short = max(1, round(image_size * recipe.resize_ratio))
    f = min(height, width) / short  # decoded pixels per resized pixel
    rh, rw = height / f, width / f
    sizes = [int(short * s) for s in recipe.crop_scales]
    pairs = [(cw, ch) for i, cw in enumerate(sizes) for j, ch in enumerate(sizes)
             if abs(i - j) <= recipe.max_scale_gap]
    cw, ch = pairs[_randint(g, len(pairs))]
    ws, hs = (rw - cw) / 4, (rh - ch) / 4
    positions = [(0, 0), (4 * ws, 0), (0, 4 * hs), (4 * ws, 4 * hs), (2 * ws, 2 * hs)]
    x, y = positions[_randint(g, len(positions))]
    top, left = int(round(y * f)), int(round(x * f))
    h = max(1, min(int(round(ch * f)), height - top))
    w = max(1, min(int(round(cw * f)), width - left))
    return top, left, h, w


def sample_clip_aug(height: int, width: int, image_size: int, recipe, g: torch.Generator) -> ClipAug:
    box = crop_box(height, width, image_size, recipe, g)
    flip = _uniform(g) < recipe.flip_p
    jitter: tuple = ()
    if _uniform(g) < recipe.color_jitter_p:
        factors = {
            "brightness": _uniform(g, max(0.0, 1 - recipe.brightness), 1 + recipe.brightness),
            "contrast": _uniform(g, max(0.0, 1 - recipe.contrast), 1 + recipe.contrast),
            "saturation": _uniform(g, max(0.0, 1 - recipe.saturation), 1 + recipe.saturation),
            "hue": _uniform(g, -recipe.hue, recipe.hue),
        }
        order = torch.randperm(4, generator=g).tolist()
        names = list(factors)
        jitter = tuple((names[i], factors[names[i]]) for i in order)
    gray = _uniform(g) < recipe.grayscale_p
    return ClipAug(box, flip, jitter, gray)


def apply_clip_aug(frames: np.ndarray | torch.Tensor, aug: ClipAug, image_size: int,
                   mean, std, interpolation: str = "bicubic") -> torch.Tensor:
    """uint8 frames (T, H, W, 3) -> normalised float32 clip (T, 3, S, S)."""
    from torchvision.transforms.v2 import functional as TF

    x = torch.as_tensor(frames)
    if x.ndim != 4 or x.shape[-1] != 3:
        raise ValueError(f"expected frames (T, H, W, 3), got {tuple(x.shape)}")
    top, left, h, w = aug.box
    x = x[:, top:top + h, left:left + w, :].permute(0, 3, 1, 2).float().div_(255.0)
    x = F.interpolate(x, size=(image_size, image_size), mode=interpolation,
                      align_corners=False, antialias=True).clamp_(0.0, 1.0)
    if aug.flip:
        x = x.flip(-1)
    ops = {"brightness": TF.adjust_brightness, "contrast": TF.adjust_contrast,
           "saturation": TF.adjust_saturation, "hue": rotate_hue}
    for name, factor in aug.jitter:
        x = ops[name](x, factor)
    if aug.gray:
        x = TF.rgb_to_grayscale(x, num_output_channels=3)
    m = torch.tensor(mean, dtype=x.dtype).view(1, 3, 1, 1)
    s = torch.tensor(std, dtype=x.dtype).view(1, 3, 1, 1)
    return ((x - m) / s).contiguous()


_RGB_TO_YIQ = torch.tensor([[0.299, 0.587, 0.114], [0.596, -0.274, -0.322], [0.211, -0.523, 0.312]],
                           dtype=torch.float64)


def rotate_hue(x: torch.Tensor, factor: float) -> torch.Tensor:
    """Shift the hue of RGB images (..., 3, H, W) in [0, 1] by ``factor`` of a turn.

    A rotation of the chroma plane in YIQ space: luma is kept, greys stay grey. It stands
    in for the HSV round trip of torchvision's ``adjust_hue`` (20x slower on video clips);
    our choice.
    """
    if factor == 0:
        return x
    a = -2 * math.pi * factor  # the direction of torchvision's adjust_hue
    rot = torch.tensor([[1, 0, 0], [0, math.cos(a), -math.sin(a)], [0, math.sin(a), math.cos(a)]],
                       dtype=torch.float64)
    m = (torch.linalg.inv(_RGB_TO_YIQ) @ rot @ _RGB_TO_YIQ).to(x.dtype)
    return torch.einsum("ij,...jhw->...ihw", m, x).clamp_(0.0, 1.0)


# ----------------------------------------------------------------------------- targets
def soft_targets(labels: torch.Tensor, num_classes: int, smoothing: float) -> torch.Tensor:
    """One-hot with label smoothing: off = s / K, on = 1 - s + s / K."""
    off = smoothing / num_classes
    y = torch.full((labels.shape[0], num_classes), off, dtype=torch.float32, device=labels.device)
    y.scatter_(1, labels.long().view(-1, 1), 1.0 - smoothing + off)
    return y


@dataclass(frozen=True)
class PairMix:
    mode: str  # "mixup" | "cutmix"
    lam: float  # weight of each clip's own content and label
    box: tuple[int, int, int, int] | None  # cutmix region (y1, y2, x1, x2) taken from the partner


def pair_mix(seed: int, epoch: int, step: int, pair: int, height: int, width: int, recipe) -> PairMix:
    """The mixing of one pair of the global batch: a pure function of where the pair is."""
    rng = np.random.default_rng(stable_int(seed, "mix", epoch, step, pair))
    use_cutmix = recipe.cutmix_alpha > 0 and (recipe.mixup_alpha <= 0 or rng.random() < recipe.mix_switch_prob)
    if not use_cutmix:
        return PairMix("mixup", float(rng.beta(recipe.mixup_alpha, recipe.mixup_alpha)), None)
    lam = float(rng.beta(recipe.cutmix_alpha, recipe.cutmix_alpha))
    cut = math.sqrt(1.0 - lam)
    cw, ch = int(width * cut), int(height * cut)
    cx, cy = int(rng.integers(width)), int(rng.integers(height))
    x1, x2 = max(cx - cw // 2, 0), min(cx + cw // 2, width)
    y1, y2 = max(cy - ch // 2, 0), min(cy + ch // 2, height)
    area = (x2 - x1) * (y2 - y1)
    return PairMix("cutmix", 1.0 - area / (width * height), (y1, y2, x1, x2))


def mix_batch(clips: torch.Tensor, targets: torch.Tensor, positions: torch.Tensor,
              seed: int, epoch: int, step: int, recipe) -> tuple[torch.Tensor, torch.Tensor]:
    """Mix clips (B, T, 3, H, W) and soft targets (B, K) within pairs of global positions.

    ``positions`` are the clips' places in the step's global batch; the clips of pair k
    (positions 2k and 2k + 1) must sit next to each other in this batch.
    """
    if not recipe.mixing:
        return clips, targets
    pos = positions.tolist()
    if len(pos) % 2 or any(pos[i] % 2 or pos[i + 1] != pos[i] + 1 for i in range(0, len(pos), 2)):
        raise ValueError(f"mixing needs whole pairs of clips in each micro-batch, got positions {pos}")
    h, w = clips.shape[-2:]
    out_x, out_y = clips.clone(), targets.clone()
    for i in range(0, len(pos), 2):
        m = pair_mix(seed, epoch, step, pos[i] // 2, h, w, recipe)
        a, b = clips[i], clips[i + 1]
        if m.mode == "mixup":
            out_x[i] = m.lam * a + (1 - m.lam) * b
            out_x[i + 1] = m.lam * b + (1 - m.lam) * a
        else:
            y1, y2, x1, x2 = m.box
            out_x[i, ..., y1:y2, x1:x2] = b[..., y1:y2, x1:x2]
            out_x[i + 1, ..., y1:y2, x1:x2] = a[..., y1:y2, x1:x2]
        out_y[i] = m.lam * targets[i] + (1 - m.lam) * targets[i + 1]
        out_y[i + 1] = m.lam * targets[i + 1] + (1 - m.lam) * targets[i]
    return out_x, out_y


def soft_cross_entropy(logits: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Per-sample cross-entropy against soft targets: -sum_k y_k log softmax(z)_k."""
    return -(targets * torch.log_softmax(logits.float(), dim=-1)).sum(dim=-1)
