"""A session's control side: where it pushes state and stats (ControlSink), and the
emotion state a validated control command (server.control) asks for."""

from dataclasses import replace
from typing import Protocol

from engine.emotion_state import EmotionState
from server.control import Auto, Blend, Command, Flush, SetEmotion


class ControlSink(Protocol):
    """Where a session pushes state and stats: a control socket (server.control_socket)."""

    def send(self, message: dict) -> None: ...

    async def close(self, reason: str) -> None: ...


def command_emotion(command: Command, emotion: EmotionState) -> EmotionState:
    """The state ``command`` asks for after ``emotion``, one version on. Flush keeps the
    emotion (the session drops its queued audio)."""
    version = emotion.version + 1
    if isinstance(command, SetEmotion):
        emotion = EmotionState(
            mode="manual",
            emotion=command.emotion,
            intensity=command.intensity,
            transition_ms=command.transition_ms,
            version=version,
        )
    elif isinstance(command, Blend):
        emotion = EmotionState(
            mode="blend",
            blend_from=command.source,
            blend_to=command.target,
            alpha=command.alpha,
            transition_ms=command.transition_ms,
            version=version,
        )
    elif isinstance(command, Auto):
        emotion = replace(
            emotion, mode="auto", transition_ms=command.transition_ms, version=version
        )
    elif isinstance(command, Flush):
        emotion = replace(emotion, version=version)
    return emotion
