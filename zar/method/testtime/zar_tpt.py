"""ZAR: TPT on the video's views (docs/protocol.md §3): one AdamW step on the prompt's context
minimising the entropy of the confident views' mean prediction, then the inference clip."""
from __future__ import annotations

from zar.method.testtime.method import Method


def _build(model, class_texts, settings, device):
    from zar.method.tpt import Tuner

    return Tuner(model, class_texts, settings.tune, device)


METHOD = Method("zar", "ZAR (TPT on video views)", "episodic",
                "Liang et al., EI 2025 (ZAR); Shu et al., NeurIPS 2022 (TPT, azshue/TPT)", _build, tunes_prompt=True)
