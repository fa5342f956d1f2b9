"""The live pipeline: a shared engine and one ``PortraitSession`` per talking peer.

    engine = PortraitEngine.load("auto")                  # once per process
    session = engine.open("s1", avatar)                   # per peer (or per render)
    frames, times = engine.tick([(session, [features], tick)])   # one tick, all sessions
    frames[0].image                                       # (H, W, 3) uint8 RGB

``tick`` is ``advance`` (the batched landmark step of every session) then each session's
``draw_frame``; the server's inference worker calls the two itself so that one session's
failing render does not fail the others.

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
import threading
import time
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
from engine.runtime.landmarks import DEFAULT_MODEL, LandmarkRuntime
from engine.runtime.loading import load_generator_runtime, load_landmark_runtime

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class PortraitFrame:
    tick: int  # video tick: which loop frame was drawn on
    index: int  # last audio frame the mouth comes from (FrameFeatures.index); -1: none yet
    image: np.ndarray  # (H, W, 3) uint8 RGB, the full frame
    frontal: np.ndarray  # (68, 2) predicted frontal landmarks (outer-eye distance = 1)
    posed: np.ndarray  # (68, 2) the same posed in image pixels
    emotion: np.ndarray  # (E,) the code this frame was made with


@dataclass
class TickTimes:
    """Seconds one ``PortraitEngine.tick`` spent per stage, for all its sessions."""

    landmarks: float = 0.0  # emotion control, Ec + LSTM steps (batched)
    render: float = 0.0  # alignment, guidance, generator, compositing
    sessions: int = 0


class PortraitSession:
    """One peer's pipeline state: its avatar, its emotion, its LSTM state (in the engine).

    Stepped on the engine's one landmark thread; ``draw_frame`` may run on another thread
    (a render pool) between its steps. ``set_emotion`` and ``reset`` may be called from
    any thread: they take effect at the start of the session's next tick.
    """

    def __init__(
        self, engine: "PortraitEngine", session_id: str, avatar: Avatar, emotion: EmotionControl
    ) -> None:
        self.id = session_id
        self.avatar = avatar
        self.emotion = emotion
        self._engine = engine
        self.renderer = engine.renderer(avatar)
        self._depth = avatar.track.neutral[:, 2]
        self.frontal = avatar.track.neutral[:, :2].astype(np.float32)  # the last prediction
        self.index = -1  # the last audio frame stepped
        self._lock = threading.Lock()  # the requests below come from another thread
        self._pending_emotion: EmotionState | None = None
        self.epoch = 0  # counts resets; audio frames of an older epoch are never stepped
        self._applied_epoch = 0

    def set_emotion(self, state: EmotionState) -> None:
        """Ask for an emotion (validated here, applied at the next tick)."""
        self.emotion.check(state)
        with self._lock:
            self._pending_emotion = state

    def reset(self) -> int:
        """A new stretch of audio (after a gap or a flush): at the next tick the LSTM starts
        from zero state and the face from the neutral pose. Returns the new epoch: audio
        frames handed over with an older one are dropped, not stepped."""
        with self._lock:
            self.epoch += 1
            return self.epoch

    def apply_pending(self) -> None:
        """Worker thread, start of a tick: take the requests made since the last one."""
        with self._lock:
            state, self._pending_emotion = self._pending_emotion, None
            epoch = self.epoch
        if state is not None:
            self.emotion.set(state)
        if epoch != self._applied_epoch:
            self._applied_epoch = epoch
            self._engine.batcher.reset(self.id)
            self.frontal = self.avatar.track.neutral[:, :2].astype(np.float32)

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

    def draw_frame(self, tick: int) -> PortraitFrame:
        """The session's current prediction drawn on loop tick ``tick``."""
        rendered, posed = self.draw(tick, self.frontal)
        return PortraitFrame(
            tick, self.index, rendered.frame, self.frontal, posed, self.emotion.code.copy()
        )

    def voice_emotion(self) -> dict | None:
        """The live voice's likeliest emotion and its calibrated probability ``p``, and
        ``shown``: the emotion auto mode moves towards and its intensity (0..1, from
        the evidence); None while the voice gives no evidence."""
        code = self.emotion.voice_code
        if code is None:
            return None
        space = self._engine.space
        p = space.probabilities(code)
        top = max(p, key=p.__getitem__)
        emotion, strength = space.evidence(code)
        return {
            "emotion": top,
            "p": round(p[top], 3),
            "shown": {"emotion": emotion, "intensity": round(strength, 3)},
        }

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
    def load(cls, backend: str = "auto", model: str = DEFAULT_MODEL) -> "PortraitEngine":
        """The shipped landmark ``model`` (engine.runtime.landmarks.MODELS) on ``backend``."""
        return cls(load_landmark_runtime(backend, model=model), backend)

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

    def is_open(self, session: PortraitSession) -> bool:
        return self._sessions.get(session.id) is session

    def tick(
        self, work: list[tuple[PortraitSession, list[FrameFeatures], int]]
    ) -> tuple[list[PortraitFrame], TickTimes]:
        """One video tick for several sessions: (session, the audio frames it has to step,
        in order, and the loop tick to draw on). ``advance`` all of them, then ``draw``
        each. Returns one frame per entry, in order, and where the time went."""
        times = self.advance([(session, steps) for session, steps, _ in work])
        started = time.perf_counter()
        frames = [session.draw_frame(tick) for session, _, tick in work]
        times.render = time.perf_counter() - started
        return frames, times

    def advance(
        self,
        work: list[tuple[PortraitSession, list[FrameFeatures]]],
        epochs: list[int] | None = None,
    ) -> TickTimes:
        """Step each session through its audio frames: every frame steps its LSTM (Ec +
        step batched across sessions, one audio frame per session per call). A session
        with none keeps its previous prediction (silence before the first audio, a late
        network). ``epochs``: the session epoch each entry's frames belong to; frames of
        an epoch that a reset has ended are dropped."""
        ids = [session.id for session, _ in work]
        if len(set(ids)) != len(ids):
            raise EngineError("one entry per session per tick: a session appears twice")
        times = TickTimes(sessions=len(work))
        started = time.perf_counter()
        for session, _ in work:
            session.apply_pending()
        if epochs is not None:
            work = [
                (session, steps if epoch == session.epoch else [])
                for (session, steps), epoch in zip(work, epochs, strict=True)
            ]
        for depth in range(max((len(steps) for _, steps in work), default=0)):
            requests = [s.request(steps[depth]) for s, steps in work if depth < len(steps)]
            frontal = self.batcher.run(requests)
            for session, steps in work:
                if depth < len(steps):
                    session.frontal, session.index = frontal[session.id], steps[depth].index
        times.landmarks = time.perf_counter() - started
        return times
