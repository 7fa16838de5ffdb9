"""The test-time methods zar compares, one module each, one interface: given a batch of
videos' cached view embeddings and inference-clip embeddings, the class texts and the frozen
model, a method returns its logits on each inference clip (and, where it has them, the views
it kept, its loss, the tuned context); every method also reports vanilla CLIP's prediction
and the views' vote from the same embeddings (:class:`zar.method.tpt.TestTimeMethod`).

A method is a :class:`Method` in :data:`METHODS` (adding one is one module here that
declares ``METHOD``, found by itself, plus its test; then ``make schema``): its name (what ``zar tune --method`` and the workflow's config take),
a title, whether it is episodic (each video alone) or online (state carried from video to
video: its result depends on the order), its citation, its own settings (a settings section
named after it, validated, recorded in every result and described in the config schema, like
``tune.*``) and how to build it. docs/protocol.md §7 describes each with its source.
"""
from __future__ import annotations

from zar.core.errors import UserError
from zar.method.testtime.method import Method


def _methods() -> dict[str, Method]:
    """Every module of this package that declares a ``METHOD``, by name (alphabetical)."""
    import importlib
    import pkgutil

    found: dict[str, Method] = {}
    for info in pkgutil.iter_modules(__path__):
        module = importlib.import_module(f"{__name__}.{info.name}")
        m = getattr(module, "METHOD", None)
        if m is None:
            continue
        if m.name in found:
            raise RuntimeError(f"{module.__name__}: test-time method {m.name!r} is declared twice")
        found[m.name] = m
    return dict(sorted(found.items()))


METHODS: dict[str, Method] = _methods()


def get(name: str) -> Method:
    try:
        return METHODS[name]
    except KeyError:
        raise UserError(f"unknown test-time method {name!r} (zar knows {', '.join(METHODS)})") from None


def build(name: str, model, class_texts: list[str], settings, device):
    """The method ``name`` set up for these classes (``settings``: zar.method.settings.Settings),
    starting from the classifier ``tune.classifier`` names."""
    method = get(name)
    if settings.tune.classifier == "prompt":
        return method.build(model, class_texts, settings, device)
    if method.tunes_prompt:
        raise UserError(f"tune.classifier = {settings.tune.classifier}: {name} tunes the prompt's context, which a "
                        "template ensemble does not have; use it with a method that does not tune")
    from zar.method.testtime.ensemble import TEMPLATES, ensemble_classifier

    adapter = method.build(model, class_texts, settings, device)
    adapter.start_from(ensemble_classifier(model, class_texts, TEMPLATES[settings.methods["ensemble"].templates],
                                           adapter.device))
    return adapter
