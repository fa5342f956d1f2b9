"""The control protocol (DESIGN §8): validate JSON messages into typed commands.

Every rejection says which field was wrong and what is accepted, so that streamers'
scripts can be fixed from the error message alone.
"""

from dataclasses import dataclass
from typing import Any

from engine.constants import EMOTIONS

MAX_TRANSITION_MS = 10_000
DEFAULT_TRANSITION_MS = 300


class ControlError(ValueError):
    """A control message that cannot be applied; the message is sent to the client."""


@dataclass(frozen=True)
class SetEmotion:
    emotion: str
    intensity: float = 1.0
    transition_ms: int = DEFAULT_TRANSITION_MS


@dataclass(frozen=True)
class Blend:
    source: str  # "from" on the wire
    target: str  # "to" on the wire
    alpha: float
    transition_ms: int = DEFAULT_TRANSITION_MS


@dataclass(frozen=True)
class Auto:
    transition_ms: int = DEFAULT_TRANSITION_MS


@dataclass(frozen=True)
class Flush:
    pass


Command = SetEmotion | Blend | Auto | Flush

_FIELDS = {
    "set_emotion": {"type", "emotion", "intensity", "transition_ms"},
    "blend": {"type", "from", "to", "alpha", "transition_ms"},
    "auto": {"type", "transition_ms"},
    "flush": {"type"},
}


def parse_command(message: Any) -> Command:
    """A decoded JSON message -> a Command, or ControlError saying what is wrong."""
    if not isinstance(message, dict):
        raise ControlError("a control message must be a JSON object with a 'type'")
    kind = message.get("type")
    if not isinstance(kind, str) or kind not in _FIELDS:
        raise ControlError(f"unknown message type {kind!r}; expected one of {sorted(_FIELDS)}")
    unknown = set(message) - _FIELDS[kind]
    if unknown:
        raise ControlError(
            f"{kind}: unknown field(s) {sorted(unknown)}; allowed: {sorted(_FIELDS[kind])}"
        )
    if kind == "set_emotion":
        return SetEmotion(
            emotion=_emotion(message, "emotion", required=True),
            intensity=_unit(message, "intensity", 1.0),
            transition_ms=_transition(message),
        )
    if kind == "blend":
        return Blend(
            source=_emotion(message, "from", required=True),
            target=_emotion(message, "to", required=True),
            alpha=_unit(message, "alpha", None),
            transition_ms=_transition(message),
        )
    if kind == "auto":
        return Auto(transition_ms=_transition(message))
    return Flush()


def parse_emotion_spec(spec: str) -> SetEmotion:
    """'happy' or 'happy:0.8' -> SetEmotion (used by the offer and the CLI)."""
    name, _, level = spec.partition(":")
    message: dict[str, Any] = {"type": "set_emotion", "emotion": name}
    if level:
        try:
            message["intensity"] = float(level)
        except ValueError as e:
            raise ControlError(f"intensity in {spec!r} must be a number in [0, 1]") from e
    command = parse_command(message)
    assert isinstance(command, SetEmotion)
    return command


def _emotion(message: dict, key: str, required: bool) -> str:
    value = message.get(key)
    if value is None and required:
        raise ControlError(f"{message['type']}: missing '{key}'; one of {list(EMOTIONS)}")
    if value not in EMOTIONS:
        raise ControlError(
            f"{message['type']}: {key}={value!r} is not an emotion; one of {list(EMOTIONS)}"
        )
    return str(value)  # one of EMOTIONS: already a str


def _unit(message: dict, key: str, default: float | None) -> float:
    value = message.get(key, default)
    if value is None:
        raise ControlError(f"{message['type']}: missing '{key}', a number in [0, 1]")
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not 0 <= value <= 1:
        raise ControlError(f"{message['type']}: {key} must be a number in [0, 1], got {value!r}")
    return float(value)


def _transition(message: dict) -> int:
    value = message.get("transition_ms", DEFAULT_TRANSITION_MS)
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not 0 <= value <= MAX_TRANSITION_MS
    ):
        raise ControlError(
            f"{message['type']}: transition_ms must be a number in [0, {MAX_TRANSITION_MS}], "
            f"got {value!r}"
        )
    return int(value)
