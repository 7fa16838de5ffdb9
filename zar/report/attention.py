"""Where the image encoder looks: attention maps of an open_clip ViT (the paper's Figure 2).

The attention weights are recomputed from each residual block's input (captured by a
forward pre-hook) with ``need_weights=True``, averaged over heads; the model's own forward
is left as it is. Two maps per image, over the patch grid:

- ``last``: the class token's attention to the patches in the last block;
- ``rollout``: attention rollout (Abnar & Zuidema 2020): per block ``0.5 * A + 0.5 * I``,
  rows renormalised, multiplied from the first block to the last; the class token's row.

Frames are preprocessed as the inference clip is (`zar.method.frames.prepare_video`: short side to
the model's image size, centre crop; CLIP normalisation).
"""
from __future__ import annotations

import logging
from typing import Any

import numpy as np
import torch

from zar.core.errors import UserError

log = logging.getLogger(__name__)

MODES = ("last", "rollout")


def _vit(model: torch.nn.Module):
    visual = getattr(model, "visual", model)
    blocks = getattr(getattr(visual, "transformer", None), "resblocks", None)
    if blocks is None or not hasattr(visual, "grid_size"):
        raise UserError(f"{type(visual).__name__}: not an open_clip vision transformer; attention maps need a ViT")
    return visual, blocks


@torch.no_grad()
def block_attentions(model: torch.nn.Module, images: torch.Tensor) -> list[torch.Tensor]:
    """Head-averaged attention weights of every block of the image tower, (B, L, L) each.

    ``images`` are normalised float images (B, 3, S, S). Row i of a matrix is what token i
    attends to; token 0 is the class token, then the patches row by row.
    """
    visual, blocks = _vit(model)
    inputs: list[torch.Tensor] = []

    def grab(_module, args, kwargs):
        inputs.append(args[0] if args else kwargs["q_x"])

    handles = [blk.register_forward_pre_hook(grab, with_kwargs=True) for blk in blocks]
    try:
        visual(images)
    finally:
        for h in handles:
            h.remove()
    out = []
    for blk, x in zip(blocks, inputs):
        y = blk.ln_1(x)
        _, w = blk.attn(y, y, y, need_weights=True, average_attn_weights=True)
        out.append(w.float())  # (B, L, L) whatever the block's layout
    return out


def cls_maps(attentions: list[torch.Tensor], grid: tuple[int, int], mode: str = "last") -> torch.Tensor:
    """(B, gh, gw): the class token's attention to each patch (``last`` block or ``rollout``)."""
    if mode not in MODES:
        raise UserError(f"attention mode {mode!r}: choose from {MODES}")
    gh, gw = grid
    n_prefix = attentions[-1].shape[-1] - gh * gw
    if n_prefix < 1:
        raise UserError(f"the image tower has no class token (tokens {attentions[-1].shape[-1]}, grid {gh}x{gw})")
    if mode == "last":
        a = attentions[-1]
    else:
        eye = torch.eye(attentions[0].shape[-1], dtype=attentions[0].dtype, device=attentions[0].device)
        a = None
        for w in attentions:
            step = 0.5 * w + 0.5 * eye
            step = step / step.sum(dim=-1, keepdim=True)
            a = step if a is None else step @ a
    return a[:, 0, n_prefix:].reshape(-1, gh, gw)


def normalise_frames(frames: torch.Tensor, mean, std) -> torch.Tensor:
    """uint8 (N,3,S,S) -> CLIP-normalised float, as the video encoder feeds the model."""
    m = torch.tensor(mean).view(1, 3, 1, 1)
    s = torch.tensor(std).view(1, 3, 1, 1)
    return (frames.float() / 255.0 - m) / s


def attention_maps(model: torch.nn.Module, frames: torch.Tensor, mean, std, mode: str = "last") -> np.ndarray:
    """(N, gh, gw) maps for uint8 frames (N, 3, S, S) at the model's image size."""
    visual, _ = _vit(model)
    device = next(model.parameters()).device
    images = normalise_frames(frames, mean, std).to(device)
    grid = tuple(int(g) for g in visual.grid_size)
    return cls_maps(block_attentions(model, images), grid, mode).cpu().numpy()


def pick_videos(rows: list, n: int) -> list:
    """Candidates in order: the first video of ``n`` classes spread evenly over the class
    indices present, then every other video (so unreadable ones can be replaced)."""
    first: dict[int, Any] = {}
    for r in rows:
        first.setdefault(r.class_index, r)
    classes = sorted(first)
    if not classes:
        return []
    take = sorted({classes[int(round(i))] for i in np.linspace(0, len(classes) - 1, num=min(n, len(classes)))})
    chosen = [first[c] for c in take]
    return chosen + [r for r in rows if r not in chosen]


def middle_frames(rows: list, n: int, frames: int, pre, backend: str = "decord", timeout: float = 60.0):
    """Up to ``n`` (row, uint8 frame (3,S,S)): the middle frame of each video's inference clip,
    preprocessed by `zar.method.frames.prepare_video` (so exactly what the model sees at inference)."""
    from zar.method.frames import Unreadable, prepare_video
    from zar.method.views import ViewConfig

    cfg = ViewConfig(frames=frames, rates=(1,), samples_per_rate=1, crops=1)
    out = []
    for row in pick_videos(rows, n):
        if len(out) == n:
            break
        prepared = prepare_video(row, cfg, pre, backend, timeout)
        if isinstance(prepared, Unreadable):
            log.warning("skipped %s: %s", row.path, prepared.error)
            continue
        clip = prepared.infer_frames
        out.append((row, clip[clip.shape[0] // 2]))
    if not out:
        raise UserError("no readable video for the attention maps")
    return out
