"""Vanilla CLIP: the inference clip against the class prompts with the initial context, no
adaptation (what every other method starts from)."""
from __future__ import annotations

from zar.method.testtime.method import Method


def _build(model, class_texts, settings, device):
    from zar.method.tpt import TestTimeMethod

    return TestTimeMethod(model, class_texts, settings.tune, device)


METHOD = Method("vanilla", "Vanilla CLIP", "episodic", "Radford et al., ICML 2021 (CLIP)", _build)
