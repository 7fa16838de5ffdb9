"""Test-time prompt tuning (docs/protocol.md §3.2-3.7).

The two pure functions are TPT's core: confidence selection and marginal entropy. The
:class:`Tuner` tunes the prompt context for each video from its cached view embeddings and
predicts on the inference clip; every video starts from the initial context with a fresh
optimiser ("episodic"), unless ``mode="continual"``.

Videos are tuned in batches, each with its own context: the contexts of B videos are one
``(B, n_ctx, width)`` parameter and the loss is the sum of the videos' losses, so each
video's context gets exactly its own gradient, and AdamW (element-wise) gives each exactly
the step it would get alone.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

import torch

from zar.model.backbone import autocast
from zar.method.settings import TuneConfig
from zar.method.prompt import PromptLearner


def view_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Shannon entropy of softmax over the last axis."""
    logits = logits.float()
    return -(logits.softmax(dim=-1) * logits.log_softmax(dim=-1)).sum(dim=-1)


def select_confident(logits: torch.Tensor, ratio: float) -> torch.Tensor:
    """Indices of the ``int(V * ratio)`` views with the lowest entropy of softmax(logits).

    ``logits`` are the scaled logits (..., V, C); the result is (..., k). Stable ascending
    sort, so ties keep view order. No view is forced in (docs/protocol.md §3.3); a ratio that keeps
    no view is an error.
    """
    if logits.dim() < 2:
        raise ValueError(f"logits must be (..., views, classes), got {tuple(logits.shape)}")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"confidence ratio must be in (0, 1], got {ratio}")
    k = kept_count(logits.shape[-2], ratio)
    return torch.argsort(view_entropy(logits), dim=-1, descending=False, stable=True)[..., :k]


def kept_count(n_views: int, ratio: float) -> int:
    """``int(n_views * ratio)``; a setting that keeps no view is refused (the loss would be NaN)."""
    k = int(n_views * ratio)
    if k < 1:
        raise ValueError(f"confidence ratio {ratio} keeps int({n_views} * {ratio}) = 0 of {n_views} views; "
                         "raise tune.ratio or the number of views")
    return k


def require_views_kept(n_views: int, cfg: TuneConfig) -> None:
    """A tuning run (``cfg.steps`` > 0) keeps at least one of ``n_views`` views, or a UserError."""
    from zar.core.errors import UserError

    if cfg.steps:
        try:
            kept_count(n_views, cfg.ratio)
        except ValueError as e:
            raise UserError(str(e)) from None


def marginal_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the mean probability over the rows of ``logits`` (..., k, C), in log space."""
    logp = logits - logits.logsumexp(dim=-1, keepdim=True)
    avg = logp.logsumexp(dim=-2) - math.log(logp.shape[-2])
    avg = torch.clamp(avg, min=torch.finfo(avg.dtype).min)
    return -(avg * torch.exp(avg)).sum(dim=-1)


def ensemble_log_probs(logits: torch.Tensor) -> torch.Tensor:
    """log of the mean probability over the rows of ``logits`` (..., n, C): the views' vote."""
    logp = logits.float().log_softmax(dim=-1)
    return logp.logsumexp(dim=-2) - math.log(logp.shape[-2])


@dataclass
class TuneResult:
    logits_before: torch.Tensor  # (K,) on the inference clip, initial prompt (= vanilla CLIP)
    logits_after: torch.Tensor  # (K,) on the inference clip, tuned prompt
    logits_ensemble: torch.Tensor  # (K,) log mean probability of the inference clip and the views, initial prompt
    kept: list[int]  # indices of the views selected for the loss
    loss: float | None  # marginal entropy at the first step
    seconds: float
    context: torch.Tensor | None = None  # (n_ctx, width) the tuned context (None without tuning steps)


class Tuner:
    """Tunes the prompt for videos from their per-view and inference-clip embeddings."""

    def __init__(self, model: torch.nn.Module, class_texts: list[str], cfg: TuneConfig = TuneConfig(),
                 device: str | torch.device = "cpu", truncate: bool = True):
        self.cfg = cfg
        self.device = torch.device(device)
        for p in model.parameters():
            p.requires_grad_(False)
        self.prompt = PromptLearner(model, class_texts, ctx_init=cfg.ctx_init, template=cfg.template,
                                    truncate=truncate).to(self.device)
        self.logit_scale = model.logit_scale.detach().exp().float().to(self.device)
        self._text_init = self.text()
        self._ctx: torch.nn.Parameter | None = None  # continual mode: the context carried across videos
        self._opt: torch.optim.Optimizer | None = None

    def text(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad(), autocast(self.device):
            return self.prompt(ctx).float()

    def logits(self, feats: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Scaled logits of features (..., D) against text (K, D), or per video (B, ..., D) x (B, K, D)."""
        if text.dim() == 2:
            return self.logit_scale * feats.float() @ text.float().t()
        return self.logit_scale * feats.float() @ text.float().transpose(-1, -2)

    def __call__(self, view_feats: torch.Tensor, infer_feat: torch.Tensor) -> TuneResult:
        """One video: ``view_feats`` (V, D) and ``infer_feat`` (D,), L2-normalised embeddings."""
        return self.tune(view_feats.unsqueeze(0), infer_feat.reshape(1, -1))[0]

    def tune(self, view_feats: torch.Tensor, infer_feats: torch.Tensor) -> list[TuneResult]:
        """A batch of videos: ``view_feats`` (B, V, D), ``infer_feats`` (B, D)."""
        t0 = time.perf_counter()
        views = view_feats.to(self.device).float()
        infer = infer_feats.to(self.device).float()
        b = infer.shape[0]
        continual = self.cfg.mode == "continual" and self.cfg.steps > 0
        if continual and b != 1:
            raise ValueError("continual tuning carries the prompt from video to video: one video at a time")
        text_before = self.text(self._ctx.detach())[0] if continual and self._ctx is not None else self._text_init
        before = self.logits(infer, text_before)  # (B, K)
        votes = torch.cat([before.unsqueeze(1), self.logits(views, text_before)], dim=1)
        ensemble = ensemble_log_probs(votes)  # inference clip + views, initial prompt
        kept: torch.Tensor | None = None
        losses: torch.Tensor | None = None
        after = before
        if self.cfg.steps:
            ctx, opt = self._context(b, continual)
            for _ in range(self.cfg.steps):
                with autocast(self.device):
                    text = self.prompt(ctx)  # (B, K, D)
                logits = self.logits(views, text)  # (B, V, K)
                if kept is None:  # the selection made at the first step is reused (TPT)
                    kept = select_confident(logits.detach(), self.cfg.ratio)
                chosen = logits.gather(1, kept.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
                loss = marginal_entropy(chosen)  # (B,)
                if losses is None:
                    losses = loss.detach()
                opt.zero_grad(set_to_none=True)
                loss.sum().backward()
                opt.step()
            after = self.logits(infer.unsqueeze(1), self.text(ctx.detach()))[:, 0]
            tuned = ctx.detach()
        # one copy to the host per batch (not one per video and field): the records are built there
        host = torch.stack([before, after, ensemble]).cpu()
        kept_l = kept.tolist() if kept is not None else [[] for _ in range(b)]
        losses_l = losses.tolist() if losses is not None else [None] * b
        tuned = tuned.cpu() if self.cfg.steps else None
        seconds = (time.perf_counter() - t0) / b
        return [TuneResult(host[0, i], host[1, i] if self.cfg.steps else host[0, i].clone(), host[2, i], kept_l[i],
                           losses_l[i], seconds, tuned[i] if tuned is not None else None) for i in range(b)]

    def _context(self, b: int, continual: bool) -> tuple[torch.nn.Parameter, torch.optim.Optimizer]:
        """Episodic: B fresh contexts at their init and a fresh optimiser (moments, step count);
        continual: the context and optimiser carried over from the previous video."""
        if continual and self._ctx is not None:
            return self._ctx, self._opt
        init = self.prompt.ctx_init_vectors.detach()
        ctx = torch.nn.Parameter(init.unsqueeze(0).repeat(b, 1, 1).clone())
        opt = torch.optim.AdamW([ctx], lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)
        if continual:
            self._ctx, self._opt = ctx, opt
        return ctx, opt
