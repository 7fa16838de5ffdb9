"""ZERO (Farina et al., NeurIPS 2024, "Frustratingly easy test-time adaptation of VLMs";
FarinaMatteo/zero): no gradient, no text encoder pass. Each candidate (the inference clip and
the views, the clip standing for their original image) is scored at CLIP's temperature; the
``gamma`` share of lowest entropy is kept (int(), as TPT); each kept candidate votes for its
top class (softmax at zero temperature: one-hot), the most voted class is the prediction.

Ties (ours, deterministic; the authors' fallback is broken): among the tied classes, the one
with the highest summed probability over the kept candidates, then the lower class index.
The logits recorded are log(vote share) (their softmax is the vote share, the confidence),
plus 1e-4 on the winning class, which orders tied classes only."""
from __future__ import annotations

from dataclasses import dataclass

from zar.core.fields import check, setting
from zar.method.testtime.method import Method


@dataclass(frozen=True)
class ZeroConfig:
    gamma: float = setting(0.1, "number", "share of the candidates (inference clip and views) kept, lowest entropy "
                           "first (the paper's 0.1; the authors' code uses 0.3)", exclusiveMinimum=0, maximum=1)

    def __post_init__(self):
        check(self, "zero")


def zero_vote(logits, gamma: float):
    """``logits`` (B, N, K) scaled candidates' logits -> (logits (B, K) as described above,
    kept (B, k) candidate indices)."""
    import torch

    from zar.method.tpt import select_confident

    kept = select_confident(logits, gamma)  # (B, k), lowest entropy first
    chosen = logits.gather(1, kept.unsqueeze(-1).expand(-1, -1, logits.shape[-1]))
    k, n_classes = chosen.shape[1], chosen.shape[2]
    votes = torch.nn.functional.one_hot(chosen.argmax(-1), n_classes).sum(1).double()  # (B, K)
    mass = chosen.double().softmax(-1).sum(1)  # < k + 1: orders classes with as many votes
    winner = (votes * (k + 1) + mass).argmax(-1)  # the first index among exact ties
    out = torch.log((votes / k).clamp_min(1e-12))
    out[torch.arange(len(out)), winner] += 1e-4  # orders tied classes only
    return out.to(logits.dtype), kept


def _build(model, class_texts, settings, device):
    import torch

    from zar.method.tpt import Adaptation, TestTimeMethod

    gamma = settings.methods["zero"].gamma

    class Zero(TestTimeMethod):
        def adapt(self, views, infer, before, ensemble):
            candidates = torch.cat([before.unsqueeze(1), self.logits(views, self.classifier())], dim=1)
            logits, kept = zero_vote(candidates, gamma)
            return Adaptation(logits, (kept - 1).tolist())  # views by index; -1 is the inference clip

    return Zero(model, class_texts, settings.tune, device)


METHOD = Method("zero", "ZERO", "episodic", "Farina et al., NeurIPS 2024 (ZERO, FarinaMatteo/zero)", _build,
                ZeroConfig, "ZERO: the confident candidates' one-hot votes")
