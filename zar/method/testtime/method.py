"""What a registered test-time method is (zar.method.testtime lists them)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Callable


@dataclass(frozen=True)
class Method:
    name: str
    title: str
    kind: str  # "episodic" | "online"
    source: str  # the paper and the authors' code it follows
    build: Callable[..., Any]  # (model, class_texts, settings, device) -> zar.method.tpt.TestTimeMethod
    settings: type | None = None  # its settings section (a dataclass of zar.core.fields settings)
    description: str = ""  # what its settings section is, for the schema
    tunes_prompt: bool = False  # needs a template with {ctx} and tune.steps > 0
