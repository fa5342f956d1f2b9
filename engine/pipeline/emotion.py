"""One session's emotion code, frame by frame, from what was asked for.

    control = EmotionControl(space)                      # neutral until told otherwise
    control.set(EmotionState(emotion="happy", intensity=0.8, transition_ms=300))
    code = control.next(features.hops, features.voiced)  # (E,) for this video frame

Manual (a category at an intensity) and blend (alpha between two categories) are points
of the emotion space; auto follows the live voice (engine.model.emotion_space.VoiceEmotion)
only as far as its calibrated evidence goes (EmotionSpace.voice_point): from the last
manual or blend point (neutral by default), which it shows while the voice gives none. A
change of request moves the code from where it is to the new target over
``transition_ms``, eased, by interpolating codes (paper Fig. 1b): expressions morph
instead of jumping. Time is counted in video frames, so a render is deterministic.
"""

import numpy as np

from engine.constants import VIDEO_FPS
from engine.emotion_state import EmotionState
from engine.errors import EngineError
from engine.model.emotion_space import EmotionSpace, VoiceEmotion

FRAME_MS = 1000 / VIDEO_FPS
NEUTRAL = EmotionState()  # what a session shows until asked otherwise


class EmotionControl:
    def __init__(self, space: EmotionSpace, state: EmotionState = NEUTRAL) -> None:
        self._space = space
        self._voice = VoiceEmotion(space)
        self._fixed: np.ndarray | None = None
        self.state = state
        point = self._point(state)
        self._fallback = space.neutral if point is None else point
        self.code = self._fallback.copy()
        self._from = self.code
        self._frames, self._done = 0, 0
        self._voice_was_none = True
        self._voice_seen: np.ndarray | None = None  # the voice code voice_point was made from
        self._voice_point = self._fallback

    def check(self, state: EmotionState) -> None:
        """Raise EngineError if ``state`` names a category the model lacks."""
        self._point(state)

    def set(self, state: EmotionState) -> None:
        """Ask for a new emotion; raises EngineError for categories the model lacks."""
        point = self._point(state)
        self.state, self._fixed = state, None
        if point is not None:
            self._fallback = point
        self._voice_seen = None  # the voice's point is relative to the fallback
        self._start_transition(state.transition_ms)

    def set_code(self, code: np.ndarray, transition_ms: int = 0) -> None:
        """Show a code from elsewhere (another clip's emotion, paper Fig. 1a)."""
        self._fixed = np.asarray(code, np.float32).copy()
        self._start_transition(transition_ms)

    @property
    def voice_code(self) -> np.ndarray | None:
        """The live voice's emotion, or None while it gives no evidence."""
        return self._voice.code

    def next(self, hops: np.ndarray, voiced: bool) -> np.ndarray:
        """The code of the next video frame, given that frame's (4, 15) hops and VAD."""
        voice = self._voice.push(hops, voiced)
        if self.state.mode == "auto" and (voice is None) != self._voice_was_none:
            self._start_transition(self.state.transition_ms)  # the voice found or lost
        self._voice_was_none = voice is None
        target = self._target(voice)
        if self._done < self._frames:
            self._done += 1
            t = self._done / self._frames
            eased = t * t * (3 - 2 * t)  # smoothstep: no jolt at either end
            self.code = (self._from + eased * (target - self._from)).astype(np.float32)
        else:
            self.code = target
        return self.code

    def _target(self, voice: np.ndarray | None) -> np.ndarray:
        if self._fixed is not None:
            return self._fixed
        if self.state.mode == "auto":
            if voice is None:
                return self._fallback
            if voice is not self._voice_seen:  # a new estimate (every few frames)
                self._voice_seen = voice
                self._voice_point = self._space.voice_point(voice, self._fallback)
            return self._voice_point
        return self._fallback

    def _start_transition(self, transition_ms: int) -> None:
        self._from = self.code.copy()
        self._frames = max(0, round(transition_ms / FRAME_MS))
        self._done = 0

    def _point(self, state: EmotionState) -> np.ndarray | None:
        """The fixed point a manual or blend request names; None for auto."""
        space = self._space
        if state.mode == "manual":
            return space.category(state.emotion, state.intensity)
        if state.mode == "blend":
            target, source = state.blend_to, state.blend_from
            if target is None or source is None:  # every blend request names both
                raise EngineError(f"a blend names two emotions, got {source!r} and {target!r}")
            return space.blend(space.category(target), space.category(source), state.alpha)
        return None
