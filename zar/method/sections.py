"""The settings sections the method's modules read: ``tune`` (:class:`TuneConfig`, the
test-time tuning) and ``run`` (:class:`RunConfig`: devices, batching, video reading); the
``views`` section is :class:`zar.method.views.ViewConfig`. Every setting is declared once with
its rules (:mod:`zar.core.fields`); :mod:`zar.method.settings` gathers the sections."""
from __future__ import annotations

from dataclasses import asdict, dataclass

from zar.core.errors import UserError
from zar.core.fields import bad_value, check, setting


@dataclass(frozen=True)
class TuneConfig:
    """Test-time tuning settings (:mod:`zar.method.tpt`); defaults are docs/protocol.md §3 (TPT's optimiser settings)."""

    steps: int = setting(1, "integer", "AdamW steps on the context per video (0 = vanilla CLIP)", minimum=0)
    lr: float = setting(5e-3, "number", "AdamW learning rate of the context", exclusiveMinimum=0)
    ratio: float = setting(0.8, "number", "confidence selection: keep the int(views x ratio) views of lowest "
                           "entropy", exclusiveMinimum=0, maximum=1)
    weight_decay: float = setting(0.01, "number", "AdamW weight decay (torch's default)", minimum=0)
    ctx_init: str = setting("a video of a", "string", "the context words, n_ctx = their token count",
                            pattern=r".*\S.*", allowed="a string of words")
    template: str = setting("{ctx} {c}.", "string", "each class's text: {ctx} = the (tuned) context, "
                            "{c} = the class text; '{c}' is the class name alone (no context, vanilla only)",
                            pattern=r".*\{c\}.*", allowed="a string holding {c}")
    mode: str = setting("episodic", "string", "episodic: reset the prompt for every video; continual: keep "
                        "it across videos", enum=["episodic", "continual"])
    class_text: str = setting("dataset", "string", "each class's {c}: dataset (the class list's text: underscores "
                              "as spaces, UCF101's CamelCase split into lower-case words) or name (the class name with "
                              "underscores as spaces, as ViFi-CLIP's label files spell it: 'ApplyEyeMakeup')",
                              enum=["dataset", "name"])
    classifier: str = setting("prompt", "string", "the classifier every method starts from: prompt (the template "
                              "above) or ensemble (the mean text feature over CLIP's template set ensemble.templates; "
                              "only for the methods that do not tune the prompt)", enum=["prompt", "ensemble"])

    def __post_init__(self):
        check(self, "tune")
        why = check_template(self.template, tuned=self.steps > 0)
        if why:
            raise bad_value("tune", "template", self.template, why)

    def to_dict(self) -> dict:
        return asdict(self)


def check_template(template: str, tuned: bool) -> str | None:
    """Why ``template`` cannot make the class prompts (or be tuned), or None."""
    if template.count("{c}") != 1:
        return "must hold {c} (the class text) exactly once"
    if template.count("{ctx}") > 1 or ("{ctx}" in template and not template.startswith("{ctx}")):
        return "may hold {ctx} (the tuned context) only once, at its start"
    if tuned and "{ctx}" not in template:
        return "needs {ctx} (the tuned context) at its start when the prompt is tuned (tune.steps > 0)"
    return None


@dataclass(frozen=True)
class RunConfig:
    device: str = setting("auto", "string", "auto (cuda when available, else cpu), cpu, cuda or cuda:N",
                          pattern=r"^(auto|cpu|cuda(:[0-9]+)?)$", allowed="auto, cpu, cuda or cuda:N")
    batch_size: int = setting(256, "integer", "frames per image-encoder batch", minimum=1)
    workers: int = setting(2, "integer", "video-reading worker processes (0 = in the main process)", minimum=0)
    backend: str = setting("decord", "string", "video reader (PyAV is the exact fallback of decord)",
                           enum=["decord", "pyav"])
    timeout: float = setting(120.0, "number", "seconds allowed to read one video", exclusiveMinimum=0)
    chunk: int = setting(200, "integer", "videos per resumable chunk written by `zar encode`", minimum=1)
    image_precision: str = setting("autocast", "string", "image tower precision: autocast (fp32 weights, bf16 "
                                   "autocast on CUDA; the protocol) or bf16 (a bf16 copy of the tower: faster on "
                                   "CUDA, features within bf16's precision)", enum=["autocast", "bf16"])
    store_dtype: str = setting("float32", "string", "dtype of the cached embeddings", enum=["float32", "float16"])
    tune_batch: int = setting(16, "integer", "videos tuned together, each with its own context (the "
                              "results do not depend on it; continual mode tunes one at a time)", minimum=1)
    non_finite: str = setting("stop", "string", "a video whose logits or loss are NaN or infinite: stop (the run "
                              "fails naming it) or skip (recorded as skipped with the reason); never scored",
                              enum=["stop", "skip"])

    def __post_init__(self):
        check(self, "run")

    def resolved_device(self) -> str:
        import torch

        if self.device == "auto":
            return "cuda" if torch.cuda.is_available() else "cpu"
        if self.device.startswith("cuda"):
            if not torch.cuda.is_available():
                raise UserError(f"setting run.device = {self.device!r}: no CUDA device is available here "
                                "(use auto or cpu)")
            index = int(self.device.split(":")[1]) if ":" in self.device else 0
            if index >= torch.cuda.device_count():
                raise UserError(f"setting run.device = {self.device!r}: this machine has "
                                f"{torch.cuda.device_count()} CUDA device(s)")
        return self.device
