"""emotion_wild/ (styletalk's style clips: web videos, rights unknown, training only): the
emotion each clip shows, checked by eye.

The file names say an emotion; looking at each clip (three frames of each, tiled) showed
that several say the wrong one. LABELS holds what the faces show; clips whose face shows
no single emotion are left out with the reason. Identities: furious_talk1 and
furious_talk2 are one man; every other clip name is its own person.
"""

from dataclasses import dataclass
from pathlib import Path

from engine.errors import EngineError


@dataclass(frozen=True)
class WildClip:
    path: Path
    identity: str  # "wild-<who>"
    emotion: str  # engine.constants.EMOTIONS


#: {clip stem: (identity, emotion as seen)}; the name's label where the face agrees.
LABELS: dict[str, tuple[str, str]] = {
    "Obama_clip3": ("obama", "neutral"),
    "trump_clip1": ("trump", "neutral"),
    "spata_clip1": ("spata", "angry"),  # named neutral; he shouts with bared teeth
    "furious_talk1_clip1": ("furious", "angry"),
    "furious_talk1_clip2": ("furious", "angry"),
    "furious_talk2_clip1": ("furious", "angry"),
    "furious_talk2_clip2": ("furious", "surprised"),  # named angry: eyes wide, mouth open
    "furious_talk2_clip6": ("furious", "happy"),  # named angry: he laughs
    "happyenglish_clip1": ("happyenglish", "happy"),
    "happyenglish_clip2": ("happyenglish", "happy"),
    "vscodehappy_clip1": ("vscodehappy", "happy"),
    "sad_emotion_clip1": ("sad_emotion", "sad"),
    "sadfather_clip1": ("sadfather", "sad"),
    "sadgirl_clip1": ("sadgirl", "sad"),
}

#: Left out, and why.
UNCLEAR = {
    "furious_talk2_clip3": "named angry: he smiles and laughs, now and then sneering",
    "furious_talk2_clip4": "named angry: a sneer between disgust and contempt",
    "furious_talk2_clip5": "named angry: a pained grimace, closer to sad or disgusted",
    "furious_talk2_clip7": "named angry: squints and purses, mocking",
    "nice_clip1": "mild happy or neutral, with grimaces",
    "surprisegirl_clip2": "named surprised: raised brows with a broad smile, as much happy",
}


def load_wild(root: Path) -> list[WildClip]:
    """The labelled clips present under ``root`` (others are skipped)."""
    if not root.is_dir():
        raise EngineError(f"emotion_wild folder {root} does not exist")
    clips = [
        WildClip(path, f"wild-{LABELS[path.stem][0]}", LABELS[path.stem][1])
        for path in sorted(root.glob("*.mp4"))
        if path.stem in LABELS
    ]
    if not clips:
        raise EngineError(f"no labelled emotion_wild clip under {root}")
    return clips
