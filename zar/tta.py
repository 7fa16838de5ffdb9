"""Test-time prompt tuning (PROTOCOL §3.2-3.7).

The two pure functions are TPT's core: confidence selection and marginal entropy. The
:class:`Tuner` tunes the prompt context for ONE video from its cached view embeddings and
predicts on the inference clip; the context and the optimiser state are reset before every
video ("episodic"), unless ``mode="continual"``.
"""
from __future__ import annotations

import math
import time
from dataclasses import asdict, dataclass

import torch

from zar.backbone import autocast
from zar.prompt import PromptLearner
from zar.utils import UserError


def select_confident(logits: torch.Tensor, ratio: float) -> torch.Tensor:
    """Indices of the ``int(V * ratio)`` views with the lowest entropy of softmax(logits).

    ``logits`` are the scaled logits (V, C). Stable ascending sort, so ties keep view order.
    No view is forced in (PROTOCOL §3.3); a ratio that keeps no view is an error.
    """
    if logits.dim() != 2:
        raise ValueError(f"logits must be (views, classes), got {tuple(logits.shape)}")
    if not 0.0 < ratio <= 1.0:
        raise ValueError(f"confidence ratio must be in (0, 1], got {ratio}")
    logits = logits.float()
    entropy = -(logits.softmax(dim=1) * logits.log_softmax(dim=1)).sum(dim=1)
    k = kept_count(logits.shape[0], ratio)
    return torch.argsort(entropy, descending=False, stable=True)[:k]


def kept_count(n_views: int, ratio: float) -> int:
    """``int(n_views * ratio)``; a setting that keeps no view is refused (the loss would be NaN)."""
    k = int(n_views * ratio)
    if k < 1:
        raise ValueError(f"confidence ratio {ratio} keeps int({n_views} * {ratio}) = 0 of {n_views} views; "
                         "raise tune.ratio or the number of views")
    return k


def marginal_entropy(logits: torch.Tensor) -> torch.Tensor:
    """Entropy of the mean probability over the rows of ``logits`` (k, C), in log space."""
    logp = logits - logits.logsumexp(dim=-1, keepdim=True)
    avg = logp.logsumexp(dim=0) - math.log(logp.shape[0])
    avg = torch.clamp(avg, min=torch.finfo(avg.dtype).min)
    return -(avg * torch.exp(avg)).sum(dim=-1)


@dataclass(frozen=True)
class TuneConfig:
    """Test-time tuning settings; defaults are PROTOCOL §3 (TPT's optimiser settings)."""

    steps: int = 1
    lr: float = 5e-3
    ratio: float = 0.8  # confidence selection: keep int(views * ratio)
    weight_decay: float = 0.01  # torch AdamW default
    ctx_init: str = "a video of a"
    mode: str = "episodic"  # or "continual": keep the tuned prompt across videos

    def __post_init__(self):
        if self.steps < 0:
            raise UserError(f"tune.steps must be >= 0, got {self.steps}")
        if not 0.0 < self.ratio <= 1.0:
            raise UserError(f"tune.ratio must be in (0, 1], got {self.ratio}")
        if self.mode not in ("episodic", "continual"):
            raise UserError(f"tune.mode must be 'episodic' or 'continual', got {self.mode!r}")

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class TuneResult:
    logits_before: torch.Tensor  # (K,) on the inference clip, initial prompt (= vanilla CLIP)
    logits_after: torch.Tensor  # (K,) on the inference clip, tuned prompt
    kept: list[int]  # indices of the views selected for the loss
    loss: float | None  # marginal entropy at the first step
    seconds: float


class Tuner:
    """Tunes the prompt for one video at a time, from per-view and inference-clip embeddings."""

    def __init__(self, model: torch.nn.Module, class_texts: list[str], cfg: TuneConfig = TuneConfig(),
                 device: str | torch.device = "cpu"):
        self.cfg = cfg
        self.device = torch.device(device)
        for p in model.parameters():
            p.requires_grad_(False)
        self.prompt = PromptLearner(model, class_texts, ctx_init=cfg.ctx_init).to(self.device)
        self.logit_scale = model.logit_scale.detach().exp().float().to(self.device)
        self.optimizer: torch.optim.Optimizer | None = None
        with torch.no_grad(), autocast(self.device):
            self._text_init = self.prompt().float()

    def new_optimizer(self) -> torch.optim.Optimizer:
        return torch.optim.AdamW([self.prompt.ctx], lr=self.cfg.lr, weight_decay=self.cfg.weight_decay)

    def reset(self) -> None:
        """Context back to its init AND a fresh optimiser (moments, step count)."""
        self.prompt.reset()
        self.optimizer = self.new_optimizer()

    def logits(self, feats: torch.Tensor, text: torch.Tensor) -> torch.Tensor:
        return self.logit_scale * feats.float() @ text.float().t()

    def __call__(self, view_feats: torch.Tensor, infer_feat: torch.Tensor) -> TuneResult:
        """``view_feats`` (V, D) and ``infer_feat`` (D,): L2-normalised video embeddings."""
        t0 = time.perf_counter()
        view_feats = view_feats.to(self.device).float()
        infer_feat = infer_feat.to(self.device).float().reshape(1, -1)
        if self.cfg.mode == "episodic" or self.optimizer is None:
            self.reset()
            text_before = self._text_init
        else:
            with torch.no_grad(), autocast(self.device):
                text_before = self.prompt().float()
        logits_before = self.logits(infer_feat, text_before)[0]
        if self.cfg.steps == 0:
            return TuneResult(logits_before, logits_before.clone(), [], None, time.perf_counter() - t0)
        kept: torch.Tensor | None = None
        first_loss = None
        for _ in range(self.cfg.steps):
            with autocast(self.device):
                text = self.prompt()
            logits = self.logits(view_feats, text)
            if kept is None:  # selection made at the first step is reused (TPT)
                kept = select_confident(logits.detach(), self.cfg.ratio)
            loss = marginal_entropy(logits[kept])
            if first_loss is None:
                first_loss = float(loss.detach())
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
        with torch.no_grad(), autocast(self.device):
            text_after = self.prompt().float()
        logits_after = self.logits(infer_feat, text_after)[0]
        return TuneResult(logits_before, logits_after, kept.tolist(), first_loss, time.perf_counter() - t0)
