"""The one table that maps every data set's emotion labels onto the 8 MEAD emotions."""

from engine.constants import EMOTIONS
from engine.errors import EngineError


class LabelError(EngineError, ValueError):
    """A label that maps onto no emotion."""


#: label (lower case) -> MEAD emotion. RAVDESS "calm" is not a class of its own: it is a
#: low-arousal neutral delivery, so it counts as neutral.
EMOTION_ALIASES: dict[str, str] = {name: name for name in EMOTIONS} | {
    "calm": "neutral",
    "anger": "angry",
    "disgust": "disgusted",
    "fearful": "fear",
    "afraid": "fear",
    "happiness": "happy",
    "joy": "happy",
    "sadness": "sad",
    "surprise": "surprised",
}

#: RAVDESS emotion codes (third field of a file name).
RAVDESS_EMOTIONS = {
    "01": "neutral",
    "02": "calm",
    "03": "happy",
    "04": "sad",
    "05": "angry",
    "06": "fearful",
    "07": "disgust",
    "08": "surprised",
}


def to_mead_emotion(label: str) -> str:
    """Any supported emotion label -> one of engine.constants.EMOTIONS."""
    try:
        return EMOTION_ALIASES[label.strip().lower()]
    except (KeyError, AttributeError) as e:
        raise LabelError(
            f"unknown emotion label {label!r}; known: {sorted(EMOTION_ALIASES)}"
        ) from e
