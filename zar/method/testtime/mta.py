"""MTA (Zanella & Ben Ayed, CVPR 2024, MeanShift for test-time augmentation; MaxZanella/MTA): no
gradient. The mode of the candidates' embeddings (the inference clip first, standing for their
original image, then the views) by a mean-shift whose points are weighted by inlierness scores:
a Gaussian kernel with a bandwidth per point (from its nearest 30% of the others), affinities
between candidates = the inner products of their probability vectors (at CLIP's temperature),
scores y = softmax((density + lambda_q * affinity y) / lambda_y); 5 outer iterations, each with
up to 5 score and 5 mode steps (stopping below 1e-6), the mode started at the inference clip and
renormalised every step. The prediction is the mode against the class prompts."""
from __future__ import annotations

from dataclasses import dataclass

from zar.core.fields import check, setting
from zar.method.testtime.method import Method


@dataclass(frozen=True)
class MtaConfig:
    lambda_y: float = setting(0.2, "number", "temperature of the inlierness scores' softmax", exclusiveMinimum=0)
    lambda_q: float = setting(4.0, "number", "weight of the affinity term in the inlierness scores", minimum=0)
    neighbours: float = setting(0.3, "number", "each point's bandwidth comes from its nearest share of the others",
                                exclusiveMinimum=0, maximum=1)
    outer: int = setting(5, "integer", "outer iterations (scores, then mode)", minimum=1, maximum=100)
    inner: int = setting(5, "integer", "at most this many score steps and mode steps per outer iteration",
                         minimum=1, maximum=100)
    tolerance: float = setting(1e-6, "number", "an inner loop stops when its step moves less", exclusiveMinimum=0)

    def __post_init__(self):
        check(self, "mta")


def mta_mode(x, logits, cfg: MtaConfig):
    """The weighted mode of one video's candidates ``x`` (N, D) (row 0 the inference clip) whose
    scaled logits are ``logits`` (N, K); (D,), unit norm."""
    import torch

    n = x.shape[0]
    k = max(1, int(cfg.neighbours * (n - 1)))
    near = torch.sort(torch.cdist(x, x), dim=1).values[:, 1:k + 1] ** 2
    bandwidth = torch.sqrt(0.5 * near.mean(dim=1)).clamp_min(1e-12)  # (N,); the clamp only for repeated points

    def kernel(mode):
        return torch.exp(-((x - mode) ** 2).sum(-1) / (2 * bandwidth ** 2))

    p = logits.softmax(dim=-1)
    affinity = p @ p.t()
    y = torch.full((n,), 1.0 / n, dtype=x.dtype, device=x.device)
    mode = x[0]
    for _ in range(cfg.outer):
        density = kernel(mode)
        for _ in range(cfg.inner):
            old = y
            y = torch.softmax((density + cfg.lambda_q * (affinity * y.unsqueeze(0)).sum(1)) / cfg.lambda_y, dim=-1)
            if (old - y).norm() < cfg.tolerance:
                break
        for _ in range(cfg.inner):
            old = mode
            w = kernel(mode) * y
            mode = (w.unsqueeze(1) * x).sum(0) / w.sum()
            mode = mode / mode.norm()
            if (old - mode).norm() < cfg.tolerance:
                break
    return mode


def _build(model, class_texts, settings, device):
    import torch

    from zar.method.tpt import Adaptation, TestTimeMethod

    cfg = settings.methods["mta"]

    class Mta(TestTimeMethod):
        def adapt(self, views, infer, before, ensemble):
            text = self.classifier()
            x = torch.cat([infer.unsqueeze(1), views], dim=1)  # (B, N, D)
            logits = torch.cat([before.unsqueeze(1), self.logits(views, text)], dim=1)
            modes = torch.stack([mta_mode(x[i], logits[i], cfg) for i in range(x.shape[0])])
            return Adaptation(self.logits(modes, text))

    return Mta(model, class_texts, settings.tune, device)


METHOD = Method("mta", "MTA", "episodic", "Zanella & Ben Ayed, CVPR 2024 (MTA, MaxZanella/MTA)", _build, MtaConfig,
                "MTA: the inlier-weighted mode of the candidates' embeddings")
