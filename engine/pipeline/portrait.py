"""The live pipeline: a shared engine and one ``PortraitSession`` per talking peer.

    engine = PortraitEngine.load("auto")                  # once per process
    session = engine.open("s1", avatar)                   # per peer (or per render)
    frames = engine.tick([(session, features, tick)])     # one video tick, all sessions
    frames[0].image                                       # (H, W, 3) uint8 RGB

Per frame: the session's EmotionControl gives the emotion code; the engine runs Ec and one
LSTM step for every session of the tick as one batch (engine.runtime.batching); each
session then poses its frontal landmarks like its avatar's loop frame for ``tick``
(3D-aware alignment, eq. 8), draws the guidance map, runs the avatar's generator and
composites the face into the frame. ``tick`` picks the loop frame (it runs on with the
video clock); ``features.index`` is the audio frame the landmarks come from.

The engine loads each avatar's generator once and shares it between that avatar's
sessions. Nothing here blocks on I/O; callers run ``tick`` on their inference worker.
"""

import logging
from dataclasses import dataclass

import numpy as np

from engine.audio.frontend import FrameFeatures
from engine.audio.mfcc import WindowSpec
from engine.avatar.bundle import Avatar
from engine.avatar.render import FaceRenderer, Rendered
from engine.emotion_state import EmotionState
from engine.errors import EngineError
from engine.face.align3d import align_3d
from engine.model.emotion_space import EmotionSpace
from engine.pipeline.emotion import NEUTRAL, EmotionControl
from engine.runtime.batching import FrameRequest, LandmarkBatcher
from engine.runtime.generator import load_generator_runtime
from engine.runtime.landmarks import LandmarkRuntime, load_landmark_runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortraitFrame:
    tick: int  # video tick: which loop frame was drawn on
    index: int  # audio frame the mouth comes from (FrameFeatures.index)
    image: np.ndarray  # (H, W, 3) uint8 RGB, the full frame
    frontal: np.ndarray  # (68, 2) predicted frontal landmarks (outer-eye distance = 1)
    posed: np.ndarray  # (68, 2) the same posed in image pixels
    emotion: np.ndarray  # (E,) the code this frame was made with


class PortraitSession:
    """One peer's pipeline state: its avatar, its emotion, its LSTM state (in the engine)."""

    def __init__(
        self, engine: "PortraitEngine", session_id: str, avatar: Avatar, emotion: EmotionControl
    ) -> None:
        self.id = session_id
        self.avatar = avatar
        self.emotion = emotion
        self._engine = engine
        self.renderer = engine.renderer(avatar)
        self._depth = avatar.track.neutral[:, 2]

    def request(self, features: FrameFeatures) -> FrameRequest:
        """What this session needs from the batched landmark step for one audio frame."""
        code = self.emotion.next(features.hops, features.voiced)
        return FrameRequest(self.id, features.mfcc, code)

    def pose(self, tick: int, frontal: np.ndarray) -> tuple[int, np.ndarray]:
        """(loop frame index, (68, 2) image pixels): frontal landmarks posed like the loop
        frame shown at ``tick`` (eq. 8)."""
        index = self.avatar.loop_index(tick)
        posed = align_3d(frontal[None], self._depth, self.avatar.track.pose.frame(index))[0]
        return index, posed

    def draw(self, tick: int, frontal: np.ndarray) -> tuple[Rendered, np.ndarray]:
        """Frontal (68, 2) landmarks drawn on loop frame ``tick`` of the avatar; also
        returns them posed like that frame, (68, 2) image pixels."""
        index, posed = self.pose(tick, frontal)
        return self.renderer.render(index, posed), posed

    def reset(self) -> None:
        """A new stretch of audio (after a gap or a flush): the LSTM starts from zero."""
        self._engine.batcher.reset(self.id)

    def close(self) -> None:
        self._engine.close(self)


class PortraitEngine:
    """What every session shares: the landmark runtime behind one batcher, the emotion
    space, and each avatar's generator, loaded once."""

    def __init__(self, runtime: LandmarkRuntime, backend: str = "auto") -> None:
        self.runtime = runtime
        self.backend = backend
        self.batcher = LandmarkBatcher(runtime)
        self.space = EmotionSpace.from_runtime(runtime)
        self.window = WindowSpec(runtime.lookahead_hops)  # front-ends must make these windows
        self._renderers: dict[str, FaceRenderer] = {}
        self._sessions: dict[str, PortraitSession] = {}

    @classmethod
    def load(cls, backend: str = "auto") -> "PortraitEngine":
        return cls(load_landmark_runtime(backend), backend)

    def __len__(self) -> int:
        return len(self._sessions)

    def renderer(self, avatar: Avatar) -> FaceRenderer:
        """The avatar's renderer (guidance, generator, compositing), loaded on first use."""
        key = str(avatar.directory.resolve())
        if key not in self._renderers:
            generator = load_generator_runtime(avatar, self.backend)
            self._renderers[key] = FaceRenderer(avatar, generator)
            logger.info("avatar %s: generator on %s", avatar.manifest.name, generator.name)
        return self._renderers[key]

    def open(
        self, session_id: str, avatar: Avatar, emotion: EmotionState = NEUTRAL
    ) -> PortraitSession:
        if session_id in self._sessions:
            raise EngineError(f"session {session_id!r} is already open")
        control = EmotionControl(self.space, emotion)
        session = PortraitSession(self, session_id, avatar, control)
        self.batcher.open(session_id, avatar.track.neutral[:, :2])
        self._sessions[session_id] = session
        return session

    def close(self, session: PortraitSession) -> None:
        self.batcher.close(session.id)
        self._sessions.pop(session.id, None)

    def tick(self, work: list[tuple[PortraitSession, FrameFeatures, int]]) -> list[PortraitFrame]:
        """One video tick: (session, audio frame, loop tick) for each session that has a
        frame due; at most one entry per session. Returns the frames in the same order."""
        ids = [session.id for session, _, _ in work]
        if len(set(ids)) != len(ids):
            raise EngineError("one frame per session per tick: a session appears twice")
        requests = [session.request(features) for session, features, _ in work]
        frontal = self.batcher.run(requests)
        frames = []
        for (session, features, tick), request in zip(work, requests, strict=True):
            face = frontal[session.id]
            rendered, posed = session.draw(tick, face)
            frames.append(
                PortraitFrame(tick, features.index, rendered.frame, face, posed, request.emotion)
            )
        return frames
