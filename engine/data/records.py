"""What the loaders return: one record per utterance or clip, and the skips they made."""

from dataclasses import dataclass, field
from pathlib import Path


@dataclass(frozen=True)
class Utterance:
    """One recording. ``emotion`` is always one of engine.constants.EMOTIONS."""

    path: Path
    dataset: str
    speaker: str
    emotion: str
    intensity: float  # 0..1: RAVDESS normal 0.5 / strong 1.0; MEAD level 1..3 -> 1/3..1
    sentence: str = ""  # sentence id, equal across emotions for the same text
    text: str = ""
    original_label: str = ""
    has_video: bool = False
    has_audio: bool = True


@dataclass
class LoadResult:
    """Records and the files that were skipped, each with its reason (never silent)."""

    records: list[Utterance] = field(default_factory=list)
    skipped: list[tuple[Path, str]] = field(default_factory=list)

    def skip(self, path: Path, reason: str) -> None:
        self.skipped.append((path, reason))
