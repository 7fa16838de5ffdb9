"""What `zar evaluate`, `zar tune` and `zar encode` do first, in one place: the settings
(defaults, ``--config``, ``--set``), the device, the backbone and, when needed, the model
with the preprocessing the views ask for; the class list, the classes' prompt texts and the
labelled video list; the check that tuning keeps at least one view."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any



@dataclass
class Job:
    settings: Any  # zar.method.settings.Settings
    device: str
    spec: Any  # zar.model.backbone.BackboneSpec
    _built: tuple | None = field(default=None, repr=False)

    def model(self) -> tuple[Any, Any]:
        """(model, preprocessing), built on first use (after the cheap checks)."""
        if self._built is None:
            from zar.model.backbone import build_model, view_preprocess

            model, pre = build_model(self.spec, device=self.device)
            self._built = model, view_preprocess(pre, self.settings.views)
        return self._built

    def class_texts(self, classes) -> list[str]:
        """Each class's text for the prompts, as ``tune.class_text`` asks (the class list's
        text, or the class name with underscores as spaces)."""
        from zar.core.splitfiles import class_text

        if self.settings.tune.class_text == "name":
            return [class_text(name) for name in classes.names]
        return list(classes.texts)

    def check_views_kept(self, n_views: int) -> None:
        """Tuning keeps ``ratio`` of ``n_views`` views: at least one, or a clear error."""
        from zar.method.tpt import require_views_kept

        require_views_kept(n_views, self.settings.tune)


def start(args, method: str = "zar") -> Job:
    """The settings, device and backbone of a verb's arguments (``--config``, ``--set``,
    ``--backbone``); a ``method`` (zar.method.testtime) that does not tune the prompt means no
    tuning steps."""
    from zar.method.settings import load_settings
    from zar.method.testtime import get
    from zar.model.backbone import parse_spec

    settings = load_settings(args.config, args.set, method="zar" if get(method).tunes_prompt else "vanilla")
    return Job(settings, settings.run.resolved_device(), parse_spec(args.backbone))


def labelled_videos(classes_path, videos_path, root=None, ext=None):
    """The class list and the video list, every video with a class of that list."""
    from zar.core.splitfiles import read_classes, read_videos

    classes = read_classes(classes_path)
    return classes, read_videos(videos_path, classes, root, ext)
