"""TDA (Karmanov et al., CVPR 2024, training-free dynamic adapter; kdiAAA/TDA), the first online
method: its caches carry over from video to video, so the result depends on the order (zar
runs it over ``orders`` seeded orders of the list and reports their mean and spread).

Per video, as the authors' code does it for UCF101 and their other single-view sets: the
inference clip's feature f, CLIP's logits (scaled), pseudo-label = their argmax, entropy H (in
nats, divided by log2 of the number of classes, as their code does). The caches are updated
FIRST: the positive cache keeps, per pseudo-label, the ``pos_capacity`` lowest-entropy (f, H);
a full class replaces its highest-entropy entry only by a strictly lower one. The negative
cache does the same with ``neg_capacity`` entries, for videos whose normalised entropy lies
strictly between ``neg_entropy`` bounds, storing the classes whose probability lies strictly
between ``neg_mask`` bounds. Then logits = CLIP's + pos_alpha * exp(-pos_beta (1 - f.K+)) L+
- neg_alpha * exp(-neg_beta (1 - f.K-)) L-. Defaults: the authors' UCF101 config."""
from __future__ import annotations

import math
from dataclasses import dataclass

from zar.core.fields import check, setting
from zar.method.testtime.method import Method


@dataclass(frozen=True)
class TdaConfig:
    pos_capacity: int = setting(3, "integer", "positive cache entries per class", minimum=1)
    pos_alpha: float = setting(3.0, "number", "weight of the positive cache (the authors' UCF101 value)", minimum=0)
    pos_beta: float = setting(8.0, "number", "sharpness of the positive cache's affinity", minimum=0)
    neg_capacity: int = setting(2, "integer", "negative cache entries per class", minimum=1)
    neg_alpha: float = setting(0.117, "number", "weight of the negative cache", minimum=0)
    neg_beta: float = setting(1.0, "number", "sharpness of the negative cache's affinity", minimum=0)
    neg_entropy: tuple[float, ...] = setting((0.2, 0.5), "array", "a video enters the negative cache when its "
                                             "normalised entropy lies strictly between these",
                                             items={"type": "number", "minimum": 0}, minItems=2, maxItems=2)
    neg_mask: tuple[float, ...] = setting((0.03, 1.0), "array", "the negative cache stores the classes whose "
                                          "probability lies strictly between these",
                                          items={"type": "number", "minimum": 0, "maximum": 1}, minItems=2, maxItems=2)
    orders: int = setting(3, "integer", "seeded orders of the list the method is run over (mean and std)",
                          minimum=1, maximum=100)

    def __post_init__(self):
        object.__setattr__(self, "neg_entropy", tuple(self.neg_entropy))
        object.__setattr__(self, "neg_mask", tuple(self.neg_mask))
        check(self, "tda")


def update_cache(cache: dict, label: int, item: tuple, capacity: int) -> None:
    """Keep, per class, the ``capacity`` entries of lowest entropy (``item[1]``), sorted by it;
    a full class takes a new entry only if it beats the highest entropy there."""
    entries = cache.setdefault(label, [])
    if len(entries) < capacity:
        entries.append(item)
    elif item[1] < entries[-1][1]:
        entries[-1] = item
    entries.sort(key=lambda e: e[1])


def cache_logits(f, cache: dict, alpha: float, beta: float, n_classes: int, mask: tuple | None = None):
    """alpha * exp(-beta (1 - f . keys)) @ values: values one-hot of the class (positive cache)
    or the stored probabilities within ``mask`` as 0/1 (negative cache)."""
    import torch

    keys, values = [], []
    for label in sorted(cache):
        for entry in cache[label]:
            keys.append(entry[0])
            if mask is None:
                values.append(torch.nn.functional.one_hot(torch.tensor(label), n_classes).to(f.dtype))
            else:
                values.append(((entry[2] > mask[0]) & (entry[2] < mask[1])).to(f.dtype))
    affinity = f @ torch.stack(keys).t()
    return alpha * torch.exp(-beta * (1 - affinity)) @ torch.stack(values).to(f.device)


def _build(model, class_texts, settings, device):
    import torch

    from zar.method.tpt import Adaptation, TestTimeMethod

    cfg = settings.methods["tda"]

    class Tda(TestTimeMethod):
        online = True

        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.reset()

        def reset(self) -> None:
            self.pos, self.neg = {}, {}

        def adapt(self, views, infer, before, ensemble):
            out = []
            n_classes = before.shape[-1]
            for f, logits in zip(infer, before):  # in order: each video updates the caches the next reads
                p = logits.softmax(-1)
                loss = float(-(p * logits.log_softmax(-1)).sum())
                label = int(logits.argmax())
                update_cache(self.pos, label, (f, loss), cfg.pos_capacity)
                if cfg.neg_entropy[0] < loss / math.log2(n_classes) < cfg.neg_entropy[1]:
                    update_cache(self.neg, label, (f, loss, p), cfg.neg_capacity)
                final = logits + cache_logits(f, self.pos, cfg.pos_alpha, cfg.pos_beta, n_classes)
                if self.neg:
                    final = final - cache_logits(f, self.neg, cfg.neg_alpha, cfg.neg_beta, n_classes, cfg.neg_mask)
                out.append(final)
            return Adaptation(torch.stack(out))

    return Tda(model, class_texts, settings.tune, device)


METHOD = Method("tda", "TDA", "online", "Karmanov et al., CVPR 2024 (TDA, kdiAAA/TDA)", _build, TdaConfig,
                "TDA: positive and negative caches carried from video to video")
