"""The emotion a session is asked to show, as set by control messages.

This is the *requested* state; turning it into emotion codes per frame (with transitions)
is the job of the model runtime.
"""

from dataclasses import dataclass
from typing import Literal

Mode = Literal["manual", "blend", "auto"]


@dataclass(frozen=True)
class EmotionState:
    mode: Mode = "manual"
    emotion: str = "neutral"  # manual: the category
    intensity: float = 1.0  # manual: 0..1
    blend_from: str | None = None  # blend: alpha * E(to) + (1 - alpha) * E(from)
    blend_to: str | None = None
    alpha: float = 0.0
    transition_ms: int = 300
    version: int = 0  # increases with every change

    def label(self) -> str:
        if self.mode == "blend":
            return f"{self.blend_from}>{self.blend_to} {self.alpha:.2f}"
        if self.mode == "auto":
            return "auto (from voice)"
        return f"{self.emotion} {self.intensity:.2f}"

    def to_json(self) -> dict:
        out: dict = {
            "mode": self.mode,
            "transition_ms": self.transition_ms,
            "version": self.version,
        }
        if self.mode == "manual":
            out |= {"emotion": self.emotion, "intensity": self.intensity}
        elif self.mode == "blend":
            out |= {"from": self.blend_from, "to": self.blend_to, "alpha": self.alpha}
        return out
