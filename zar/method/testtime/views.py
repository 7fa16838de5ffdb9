"""The views' vote, no tuning: the mean of the softmax probabilities of the inference clip and
the 48 views under the initial prompt (what averaging the augmentations alone gives)."""
from __future__ import annotations

from zar.method.testtime.method import Method


def _build(model, class_texts, settings, device):
    from zar.method.tpt import Adaptation, TestTimeMethod

    class ViewsVote(TestTimeMethod):
        def adapt(self, views, infer, before, ensemble):
            return Adaptation(ensemble.clone())  # log of the mean probability: its softmax is that mean

    return ViewsVote(model, class_texts, settings.tune, device)


METHOD = Method("views", "48 views, no tuning", "episodic", "the views' vote (ensembling the test-time views)",
                _build)
