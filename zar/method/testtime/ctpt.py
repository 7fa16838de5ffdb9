"""C-TPT (Yoon et al., ICLR 2024; hee-suk-yoon/C-TPT): ZAR's loss minus lambda times the
average text feature dispersion (the mean L2 distance of the classes' normalised text features
to their centroid), the same single AdamW step: tuning that keeps the classes apart, for
calibration. lambda = 50, the authors' value for their fine-grained sets (UCF101 among them)."""
from __future__ import annotations

from dataclasses import dataclass

from zar.core.fields import check, setting
from zar.method.testtime.method import Method


@dataclass(frozen=True)
class CtptConfig:
    weight: float = setting(50.0, "number", "lambda, the weight of the text features' dispersion (the authors' "
                            "value for fine-grained sets; 20 for their natural-shift sets)", minimum=0)

    def __post_init__(self):
        check(self, "ctpt")


def _build(model, class_texts, settings, device):
    from zar.method.tpt import Tuner

    return Tuner(model, class_texts, settings.tune, device, dispersion=settings.methods["ctpt"].weight)


METHOD = Method("ctpt", "C-TPT", "episodic", "Yoon et al., ICLR 2024 (C-TPT, hee-suk-yoon/C-TPT)", _build,
                CtptConfig, "C-TPT: ZAR's step with the text features' dispersion rewarded", tunes_prompt=True)
