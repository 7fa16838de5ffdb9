"""Prompt ensembling (Radford et al., ICML 2021, CLIP): each class's text feature is the mean of
its normalised features over a set of templates, renormalised; the inference clip against
them, no tuning. The template sets are CLIP's published ones (openai/CLIP data/prompts.md,
commit e184f608): Kinetics-700 (28 templates, the default) and UCF101 (48)."""
from __future__ import annotations

from dataclasses import dataclass

from zar.core.fields import check, setting
from zar.method.testtime.method import Method

TEMPLATES = {
    "kinetics700": (
        'a photo of {}.', 'a photo of a person {}.', 'a photo of a person using {}.', 'a photo of a person doing {}.',
        'a photo of a person during {}.', 'a photo of a person performing {}.', 'a photo of a person practicing {}.',
        'a video of {}.', 'a video of a person {}.', 'a video of a person using {}.', 'a video of a person doing {}.',
        'a video of a person during {}.', 'a video of a person performing {}.', 'a video of a person practicing {}.',
        'a example of {}.', 'a example of a person {}.', 'a example of a person using {}.',
        'a example of a person doing {}.', 'a example of a person during {}.', 'a example of a person performing {}.',
        'a example of a person practicing {}.', 'a demonstration of {}.', 'a demonstration of a person {}.',
        'a demonstration of a person using {}.', 'a demonstration of a person doing {}.',
        'a demonstration of a person during {}.', 'a demonstration of a person performing {}.',
        'a demonstration of a person practicing {}.',
    ),
    "ucf101": (
        'a photo of a person {}.', 'a video of a person {}.', 'a example of a person {}.',
        'a demonstration of a person {}.', 'a photo of the person {}.', 'a video of the person {}.',
        'a example of the person {}.', 'a demonstration of the person {}.', 'a photo of a person using {}.',
        'a video of a person using {}.', 'a example of a person using {}.', 'a demonstration of a person using {}.',
        'a photo of the person using {}.', 'a video of the person using {}.', 'a example of the person using {}.',
        'a demonstration of the person using {}.', 'a photo of a person doing {}.', 'a video of a person doing {}.',
        'a example of a person doing {}.', 'a demonstration of a person doing {}.', 'a photo of the person doing {}.',
        'a video of the person doing {}.', 'a example of the person doing {}.',
        'a demonstration of the person doing {}.', 'a photo of a person during {}.', 'a video of a person during {}.',
        'a example of a person during {}.', 'a demonstration of a person during {}.', 'a photo of the person during {}.',
        'a video of the person during {}.', 'a example of the person during {}.',
        'a demonstration of the person during {}.', 'a photo of a person performing {}.',
        'a video of a person performing {}.', 'a example of a person performing {}.',
        'a demonstration of a person performing {}.', 'a photo of the person performing {}.',
        'a video of the person performing {}.', 'a example of the person performing {}.',
        'a demonstration of the person performing {}.', 'a photo of a person practicing {}.',
        'a video of a person practicing {}.', 'a example of a person practicing {}.',
        'a demonstration of a person practicing {}.', 'a photo of the person practicing {}.',
        'a video of the person practicing {}.', 'a example of the person practicing {}.',
        'a demonstration of the person practicing {}.',
    ),
}


@dataclass(frozen=True)
class EnsembleConfig:
    templates: str = setting("kinetics700", "string", "CLIP's template set: kinetics700 (28 templates) or ucf101 "
                             "(48)", enum=sorted(TEMPLATES))

    def __post_init__(self):
        check(self, "ensemble")


def ensemble_classifier(model, class_texts: list[str], templates, device):
    """(K, D) normalise(mean over templates of normalise(text feature of template(class)))."""
    import torch
    import torch.nn.functional as F

    from zar.method.prompt import PromptLearner
    from zar.model.backbone import autocast

    feats = []
    for t in templates:
        pl = PromptLearner(model, class_texts, template=t.replace("{}", "{c}")).to(device)
        with torch.no_grad(), autocast(device):
            feats.append(pl().float())
    return F.normalize(torch.stack(feats).mean(0), dim=-1)


def _build(model, class_texts, settings, device):
    from zar.method.tpt import Adaptation, TestTimeMethod

    class Ensemble(TestTimeMethod):
        def __init__(self, *a, **kw):
            super().__init__(*a, **kw)
            self.ensemble = ensemble_classifier(model, class_texts, TEMPLATES[settings.methods["ensemble"].templates],
                                                self.device)

        def adapt(self, views, infer, before, ensemble):
            return Adaptation(self.logits(infer, self.ensemble))

    return Ensemble(model, class_texts, settings.tune, device)


METHOD = Method("ensemble", "Prompt ensemble", "episodic", "Radford et al., ICML 2021 (CLIP's template sets)", _build,
                EnsembleConfig, "prompt ensembling: the mean text feature over CLIP's template set")
