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
from zar.method.sections import TuneConfig
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


def text_dispersion(text: torch.Tensor) -> torch.Tensor:
    """C-TPT's average text feature dispersion: the mean over classes of the L2 distance of
    each class's (normalised) text feature to their centroid; (..., K, D) -> (...)."""
    return (text - text.mean(dim=-2, keepdim=True)).norm(dim=-1).mean(dim=-1)


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


@dataclass
class Adaptation:
    """What a test-time method makes of a batch of B videos: its logits on each inference clip
    (B, K), and, where it has them, the views it kept, its loss and the tuned context."""

    after: torch.Tensor
    kept: torch.Tensor | list[list[int]] | None = None
    losses: torch.Tensor | None = None
    context: torch.Tensor | None = None


class TestTimeMethod:
    """A test-time method on cached embeddings (zar.method.testtime registers them). Every
    method starts from the same classifier, the class prompts with the initial context, and
    reports three predictions per video: its own (``adapt``), vanilla CLIP's on the inference
    clip and the views' vote, all from the same embeddings. This base is vanilla CLIP."""

    def __init__(self, model: torch.nn.Module, class_texts: list[str], cfg: TuneConfig = TuneConfig(),
                 device: str | torch.device = "cpu", truncate: bool = True):
        self.cfg = cfg
        self.device = torch.device(device)
        self.model = model
        for p in model.parameters():
            p.requires_grad_(False)
        self.prompt = PromptLearner(model, class_texts, ctx_init=cfg.ctx_init, template=cfg.template,
                                    truncate=truncate).to(self.device)
        self.logit_scale = model.logit_scale.detach().exp().float().to(self.device)
        self._text_init = self.text()

    def text(self, ctx: torch.Tensor | None = None) -> torch.Tensor:
        with torch.no_grad(), autocast(self.device):
            return self.prompt(ctx).float()

    def logits(self, feats: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        """Scaled logits of features (..., D) against text (K, D), or per video (B, ..., D) x (B, K, D)."""
        if text.dim() == 2:
            return self.logit_scale * feats.float() @ text.float().t()
        return self.logit_scale * feats.float() @ text.float().transpose(-1, -2)

    def classifier(self) -> torch.Tensor:
        """(K, D) the text features the video is first scored with (vanilla CLIP's)."""
        return self._text_init

    def start_from(self, text: torch.Tensor) -> None:
        """Score with these (K, D) normalised text features instead of the prompt's (e.g. a
        template ensemble: ``tune.classifier``)."""
        if text.shape != self._text_init.shape:
            raise ValueError(f"classifier of shape {tuple(text.shape)}, not {tuple(self._text_init.shape)}")
        self._text_init = text.to(self._text_init)

    def __call__(self, view_feats: torch.Tensor, infer_feat: torch.Tensor) -> TuneResult:
        """One video: ``view_feats`` (V, D) and ``infer_feat`` (D,), L2-normalised embeddings."""
        return self.tune(view_feats.unsqueeze(0), infer_feat.reshape(1, -1))[0]

    def tune(self, view_feats: torch.Tensor, infer_feats: torch.Tensor) -> list[TuneResult]:
        """A batch of videos: ``view_feats`` (B, V, D), ``infer_feats`` (B, D)."""
        t0 = time.perf_counter()
        views = view_feats.to(self.device).float()
        infer = infer_feats.to(self.device).float()
        text = self.classifier()
        before = self.logits(infer, text)  # (B, K)
        votes = torch.cat([before.unsqueeze(1), self.logits(views, text)], dim=1)
        ensemble = ensemble_log_probs(votes)  # inference clip + views, initial prompt
        a = self.adapt(views, infer, before, ensemble)
        return self._results(before, a, ensemble, time.perf_counter() - t0)

    def adapt(self, views: torch.Tensor, infer: torch.Tensor, before: torch.Tensor,
              ensemble: torch.Tensor) -> Adaptation:
        """The method's own prediction; vanilla CLIP keeps ``before``."""
        return Adaptation(before.clone())

    def _results(self, before, a: Adaptation, ensemble, seconds: float) -> list[TuneResult]:
        # one copy to the host per batch (not one per video and field): the records are built there
        b = before.shape[0]
        host = torch.stack([before, a.after.float(), ensemble]).cpu()
        kept = a.kept.tolist() if isinstance(a.kept, torch.Tensor) else a.kept or [[] for _ in range(b)]
        losses = a.losses.tolist() if a.losses is not None else [None] * b
        context = a.context.cpu() if a.context is not None else None
        return [TuneResult(host[0, i], host[1, i], host[2, i], kept[i], losses[i], seconds / b,
                           context[i] if context is not None else None) for i in range(b)]


class Tuner(TestTimeMethod):
    """ZAR (TPT on video views): tunes the prompt for each video from its per-view and
    inference-clip embeddings, then predicts on the inference clip (0 steps: vanilla CLIP).
    ``dispersion``: C-TPT's weight on the text features' dispersion (0 for ZAR)."""

    def __init__(self, model: torch.nn.Module, class_texts: list[str], cfg: TuneConfig = TuneConfig(),
                 device: str | torch.device = "cpu", truncate: bool = True, dispersion: float = 0.0):
        super().__init__(model, class_texts, cfg, device, truncate)
        self.dispersion = dispersion
        self._ctx: torch.nn.Parameter | None = None  # continual mode: the context carried across videos
        self._opt: torch.optim.Optimizer | None = None

    def _continual(self) -> bool:
        return self.cfg.mode == "continual" and self.cfg.steps > 0

    def classifier(self) -> torch.Tensor:
        if self._continual() and self._ctx is not None:
            return self.text(self._ctx.detach())[0]
        return self._text_init

    def adapt(self, views, infer, before, ensemble) -> Adaptation:
        b = infer.shape[0]
        if self._continual() and b != 1:
            raise ValueError("continual tuning carries the prompt from video to video: one video at a time")
        if not self.cfg.steps:
            return Adaptation(before.clone())
        kept: torch.Tensor | None = None
        losses: torch.Tensor | None = None
        ctx, opt = self._context(b, self._continual())
        for _ in range(self.cfg.steps):
            with autocast(self.device):
                text = self.prompt(ctx)  # (B, K, D)
            logits = self.logits(views, text)  # (B, V, K)
            if kept is None:  # the selection made at the first step is reused (TPT)
                kept = select_confident(logits.detach(), self.cfg.ratio)
            chosen = logits.gather(1, kept.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
            loss = marginal_entropy(chosen)  # (B,)
            if self.dispersion:
                loss = loss - self.dispersion * text_dispersion(text.float())
            if losses is None:
                losses = loss.detach()
            opt.zero_grad(set_to_none=True)
            loss.sum().backward()
            opt.step()
        after = self.logits(infer.unsqueeze(1), self.text(ctx.detach()))[:, 0]
        return Adaptation(after, kept, losses, ctx.detach())

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
