"""One landmark worker for all sessions: each tick, every network runs once on the batch.

    batcher = LandmarkBatcher(load_landmark_runtime())
    batcher.open("a", neutral_a)                       # (68, 2) frontal neutral face
    out = batcher.run([FrameRequest("a", window, code), FrameRequest("b", ...)])
    out["a"]                                           # (68, 2) frontal landmarks

Each session's LSTM state (h, c) and identity code live here between ticks; a tick
gathers them along the batch axis, runs Ec and one LSTM step on all requests at once, and
scatters the new states back. Sessions without a request that tick keep their state.
Results equal running each session alone (tests/engine/runtime/test_batching.py).
"""

from dataclasses import dataclass

import numpy as np

from engine.errors import EngineError
from engine.runtime.landmarks import LandmarkRuntime

MAX_BATCH = 64  # sessions per network call: GPU graphs and engine profiles stop there


@dataclass(frozen=True)
class FrameRequest:
    session: str
    window: np.ndarray  # (28, 12) MFCC window of this video frame
    emotion: np.ndarray  # (E,) emotion code for this frame


@dataclass
class _Session:
    neutral: np.ndarray  # (68, 2)
    identity: np.ndarray  # (I,)
    h: np.ndarray  # (L, D)
    c: np.ndarray  # (L, D)


class LandmarkBatcher:
    def __init__(self, runtime: LandmarkRuntime) -> None:
        self.runtime = runtime
        self._sessions: dict[str, _Session] = {}

    def __len__(self) -> int:
        return len(self._sessions)

    def open(self, session: str, neutral: np.ndarray) -> None:
        neutral = np.asarray(neutral, np.float32)
        if neutral.shape != (68, 2) or not np.isfinite(neutral).all():
            raise EngineError(f"neutral landmarks must be finite (68, 2), got {neutral.shape}")
        if session in self._sessions:
            raise EngineError(f"session {session!r} is already open")
        identity = self.runtime.identity(neutral[None])[0]
        zeros = np.zeros((self.runtime.layers, self.runtime.hidden), np.float32)
        self._sessions[session] = _Session(neutral, identity, zeros, zeros.copy())

    def reset(self, session: str) -> None:
        """Forget the session's past (silence, flush): the next frame starts from zero state."""
        state = self._get(session)
        state.h[:] = 0
        state.c[:] = 0

    def close(self, session: str) -> None:
        self._sessions.pop(session, None)

    def run(self, requests: list[FrameRequest]) -> dict[str, np.ndarray]:
        """One tick: (68, 2) frontal landmarks for every request, by session."""
        if not requests:
            return {}
        names = [r.session for r in requests]
        if len(set(names)) != len(names):
            raise EngineError("one frame per session per tick: a session appears twice")
        states = [self._get(name) for name in names]
        out: dict[str, np.ndarray] = {}
        for start in range(0, len(requests), MAX_BATCH):
            chunk = slice(start, start + MAX_BATCH)
            out |= self._run(requests[chunk], states[chunk])
        return out

    def _run(self, requests: list[FrameRequest], states: list[_Session]) -> dict[str, np.ndarray]:
        content = self.runtime.content(np.stack([r.window for r in requests]))
        emotion = np.stack([r.emotion for r in requests]).astype(np.float32)
        identity = np.stack([s.identity for s in states])
        h = np.stack([s.h for s in states], axis=1)  # (L, N, D)
        c = np.stack([s.c for s in states], axis=1)
        displacement, h, c = self.runtime.step(content, emotion, identity, h, c)
        out = {}
        for i, (request, state) in enumerate(zip(requests, states, strict=True)):
            state.h, state.c = h[:, i].copy(), c[:, i].copy()
            out[request.session] = state.neutral + displacement[i]
        return out

    def _get(self, session: str) -> _Session:
        try:
            return self._sessions[session]
        except KeyError:
            raise EngineError(f"no open session {session!r}") from None
