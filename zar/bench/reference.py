"""The method written out plainly, for `zar bench pipeline` to time zar's path against: per
video, each view read, resized, cropped and encoded on its own; the text tower over the full
77-token context; one AdamW step on the context; the model's fp32 weights under autocast."""
from __future__ import annotations

import time

import torch
import torch.nn.functional as F

from zar.bench.device import sync
from zar.method import views as V
from zar.model.backbone import autocast


class ReferenceText:
    """The class prompts with a learnable context, through the text tower at all 77 positions."""

    def __init__(self, model, class_texts, tune, device):
        from zar.model.backbone import tokenizer_of

        self.model, self.device = model, device
        tok = tokenizer_of(model)
        self.n_ctx = int((tok([tune.ctx_init])[0] != 0).sum()) - 2
        self.tokens = tok([f"{tune.ctx_init} {c}." for c in class_texts]).to(device)
        with torch.no_grad():
            self.emb = model.token_embedding(self.tokens).float()
        self.scale = model.logit_scale.exp().float()

    def init_context(self) -> torch.Tensor:
        return self.emb[0, 1:1 + self.n_ctx].clone().requires_grad_(True)

    def __call__(self, ctx: torch.Tensor) -> torch.Tensor:
        m, k = self.model, self.tokens.shape[0]
        x = torch.cat([self.emb[:, :1], ctx.unsqueeze(0).expand(k, -1, -1), self.emb[:, 1 + self.n_ctx:]], dim=1)
        with autocast(self.device):
            x = m.transformer(x + m.positional_embedding, attn_mask=m.attn_mask)
            x = m.ln_final(x)
            x = x[torch.arange(k), self.tokens.argmax(dim=-1)] @ m.text_projection
        return F.normalize(x.float(), dim=-1)


def clip_embedding(vr, idx, short: int, position: str, model, pre, device, timer: dict) -> torch.Tensor:
    """One clip read on its own (``timer["read"]`` gets the seconds), resized, cropped, encoded."""
    from torchvision.transforms.v2 import InterpolationMode
    from torchvision.transforms.v2 import functional as TF

    t0 = time.perf_counter()
    frames = torch.from_numpy(vr.get_batch(list(map(int, idx))).asnumpy()).permute(0, 3, 1, 2)
    vr.seek(0)
    timer["read"] += time.perf_counter() - t0
    h, w = V.resized_shape(*frames.shape[-2:], short)
    frames = TF.resize(frames, [h, w], interpolation=InterpolationMode.BICUBIC, antialias=True)
    top, left, s, _ = V.crop_box(h, w, pre.image_size, position)
    mean = torch.tensor(pre.mean, device=device).view(1, 3, 1, 1)
    std = torch.tensor(pre.std, device=device).view(1, 3, 1, 1)
    x = (frames[..., top:top + s, left:left + s].to(device).float() / 255 - mean) / std
    with torch.no_grad(), autocast(device):
        f = model.encode_image(x).float()
    return F.normalize(f.mean(0), dim=-1)


def tune_plainly(views: torch.Tensor, infer: torch.Tensor, text: ReferenceText, tune) -> int:
    """TPT written out: the confident views' marginal entropy, AdamW steps, the prediction."""
    ctx = text.init_context()
    opt = torch.optim.AdamW([ctx], lr=tune.lr, weight_decay=tune.weight_decay)
    for _ in range(tune.steps):
        logits = text.scale * views @ text(ctx).t()
        p = logits.softmax(-1)
        entropy = -(p * logits.log_softmax(-1)).sum(-1)
        kept = entropy.argsort()[:int(len(views) * tune.ratio)]
        p_bar = p[kept].mean(0)
        loss = -(p_bar * p_bar.clamp_min(1e-30).log()).sum()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        return int((text.scale * infer @ text(ctx).t()).argmax())


def reference_path(rows, settings, model, pre, class_texts, device) -> dict:
    """Seconds per video by stage on the plain path (read, encode, tune, total)."""
    import decord

    cfg, timer = settings.views, {"read": 0.0}
    text = ReferenceText(model, class_texts, settings.tune, device)
    read = encode = tune_s = 0.0
    t_all = time.perf_counter()
    for row in rows:
        t0 = time.perf_counter()
        vr = decord.VideoReader(row.path, num_threads=1)
        n = len(vr)
        read += time.perf_counter() - t0
        t0 = time.perf_counter()
        feats = [clip_embedding(vr, V.clip_indices(n, cfg, row.video_id, view.rate, view.sample),
                                cfg.view_short_side(pre.image_size), view.crop, model, pre, device, timer)
                 for view in V.view_plan(cfg)]
        infer = clip_embedding(vr, V.inference_indices(n, cfg.infer_frames), pre.image_size, "center", model, pre,
                               device, timer)
        sync(device)
        encode += time.perf_counter() - t0
        t0 = time.perf_counter()
        tune_plainly(torch.stack(feats), infer, text, settings.tune)
        sync(device)
        tune_s += time.perf_counter() - t0
    n = len(rows)
    return {"read": (read + timer["read"]) / n, "encode": (encode - timer["read"]) / n, "tune": tune_s / n,
            "total": (time.perf_counter() - t_all) / n, "images": cfg.n_views * cfg.frames + cfg.infer_frames}
