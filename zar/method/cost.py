"""What one video costs: FLOPs of the inference clip (the figure papers quote) and of the
whole method (every view frame, the text passes, the tuning step), counted by torch's
FlopCounterMode on the model itself (attention included)."""
from __future__ import annotations

import torch


def flops(model, pre, views, class_texts: list[str], tune=None, device="cpu") -> dict[str, float]:
    """GFLOPs (2 per multiply-add) per video for these views, classes and tuning settings.

    ``gflops_inference_clip`` counts the inference clip's frames through the image encoder
    (the paper's "281 GFLOPs" for ViT-B/16 are these, as multiply-adds); the total adds the
    tuning views (``n_views x frames``, as the method defines them, although the encoder
    computes a frame shared by several views once), the text passes before and after tuning
    and each step's forward and backward pass through the text tower.
    """
    from torch.nn.attention import SDPBackend, sdpa_kernel
    from torch.utils.flop_counter import FlopCounterMode

    from zar.method.prompt import PromptLearner
    from zar.method.tpt import TuneConfig, marginal_entropy

    tune = tune or TuneConfig()
    s = pre.image_size
    img = torch.zeros(1, 3, s, s, device=device)
    # In eval mode nn.MultiheadAttention takes a fused fast path that the counter does not see,
    # and fused attention kernels are not counted either: train mode (CLIP has no dropout) and
    # the plain-maths attention make every multiply-add visible.
    was_training = model.training
    model.train()
    try:
        with sdpa_kernel(SDPBackend.MATH):
            with FlopCounterMode(display=False) as fc:
                with torch.no_grad():
                    model.encode_image(img)
            per_frame = fc.get_total_flops()
            pl = PromptLearner(model, list(class_texts), ctx_init=tune.ctx_init, template=tune.template).to(device)
            with FlopCounterMode(display=False) as fc:
                with torch.no_grad():
                    pl()
            text_fwd = fc.get_total_flops()
            text_fwd_bwd = 0
            if tune.steps and pl.n_ctx:
                ctx = pl.ctx_init_vectors.detach().clone().unsqueeze(0).requires_grad_(True)
                with FlopCounterMode(display=False) as fc:
                    feats = pl(ctx)[0]
                    marginal_entropy(feats[:1] @ feats.t()).backward()
                text_fwd_bwd = fc.get_total_flops()
    finally:
        model.train(was_training)
    view_frames = views.n_views * views.frames
    text = text_fwd + (tune.steps * text_fwd_bwd + text_fwd if tune.steps else 0)
    return {
        "gflops_per_frame": per_frame / 1e9,
        "gflops_inference_clip": views.infer_frames * per_frame / 1e9,
        "gflops_views": view_frames * per_frame / 1e9,
        "gflops_text": text / 1e9,
        "gflops_per_video_total": ((view_frames + views.infer_frames) * per_frame + text) / 1e9,
        "view_frames": view_frames,
    }
