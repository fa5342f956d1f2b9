"""``evp render``: a speech file in, the avatar speaking it out as MP4 with the audio muxed.

It runs the live server's session pipeline (engine.pipeline.portrait) on the audio as the
server would receive it: 48 kHz mono in 20 ms frames through the streaming front-end, one
PortraitEngine tick per 40 ms video frame. Offline there is no network, so video frame
k (audio [40k, 40k + 40) ms) is stamped k / 25 s and the original audio starts at 0:
lips and voice are in sync by construction (the live server delays its returned audio by
the pipeline delay to get the same alignment).

The output is written to ``OUT.partial`` and renamed when complete, so a failed render
never leaves a half-written file under the asked-for name.
"""

import logging
import sys
import time
import uuid
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

import av
import numpy as np

from engine.audio.decode import read_audio
from engine.audio.frontend import AudioFrontEnd, FrontEndOptions
from engine.avatar.bundle import Avatar
from engine.constants import SAMPLE_RATE, VIDEO_FPS, WEBRTC_SAMPLE_RATE
from engine.emotion_state import EmotionState
from engine.errors import EngineError
from engine.pipeline.portrait import PortraitEngine, PortraitSession

logger = logging.getLogger(__name__)

CHUNK = WEBRTC_SAMPLE_RATE // 50  # 20 ms, as WebRTC delivers it
AUDIO_BITRATE = 128_000
AUTO = EmotionState(mode="auto")  # the voice's own emotion


@dataclass(frozen=True)
class EmotionChoice:
    """What the render shows: a request as the control socket would send it, or the
    emotion of another clip (``audio``)."""

    state: EmotionState = AUTO
    audio: Path | None = None

    def label(self) -> str:
        return f"from {self.audio}" if self.audio else self.state.label()


def render_video(
    audio_path: Path,
    out: Path,
    engine: PortraitEngine,
    avatar: Avatar,
    emotion: EmotionChoice = EmotionChoice(),
    landmarks_out: Path | None = None,
    crf: int = 18,
) -> dict:
    if out.suffix.lower() != ".mp4":
        raise EngineError(f"{out}: the output must be an .mp4 file")
    if landmarks_out is not None and landmarks_out.suffix != ".npy":
        raise EngineError(f"{landmarks_out}: --landmarks-out must be a .npy file")
    for path in filter(None, (out, landmarks_out)):
        if path.is_dir():
            raise EngineError(f"{path} is a directory; name a file")
    audio = read_audio(audio_path, WEBRTC_SAMPLE_RATE)
    code = None
    if emotion.audio is not None:
        code = engine.space.from_signal(read_audio(emotion.audio, SAMPLE_RATE))
    partials = [_partial(out)] + ([_partial(landmarks_out)] if landmarks_out else [])
    started = time.perf_counter()
    session = engine.open(f"render-{uuid.uuid4().hex}", avatar, emotion.state)
    try:
        if code is not None:
            session.emotion.set_code(code)
        frontal, codes = _render(audio, partials[0], engine, session, crf, started)
        if landmarks_out is not None:
            with open(partials[1], "wb") as f:  # np.save would append .npy to the name
                np.save(f, np.stack(frontal).astype(np.float32))
        for partial, final in zip(partials, filter(None, (out, landmarks_out)), strict=True):
            partial.replace(final)
    except OSError as e:
        raise EngineError(f"cannot write {out}: {e}") from e
    finally:
        session.close()
        for partial in partials:
            partial.unlink(missing_ok=True)
    seconds = time.perf_counter() - started
    probabilities = engine.space.probabilities(np.mean(codes, axis=0))
    return {
        "out": str(out),
        "frames": len(frontal),
        "seconds": round(len(audio) / WEBRTC_SAMPLE_RATE, 3),
        "render_fps": round(len(frontal) / seconds, 1),
        "backend": {"landmarks": engine.runtime.name, "generator": session.renderer.generator.name},
        "avatar": avatar.manifest.name,
        "emotion": emotion.label(),
        "mean_emotion_classified_as": max(probabilities, key=probabilities.__getitem__),
        "landmarks_out": None if landmarks_out is None else str(landmarks_out),
    }


def _partial(path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    return path.with_name(f".{path.name}.{uuid.uuid4().hex[:8]}.partial")


def _render(
    audio: np.ndarray,
    path: Path,
    engine: PortraitEngine,
    session: PortraitSession,
    crf: int,
    started: float,
) -> tuple[list[np.ndarray], list[np.ndarray]]:
    """Stream ``audio`` through the session into an MP4 at ``path``; returns the frontal
    landmarks and emotion codes of every frame."""
    frontend = AudioFrontEnd(WEBRTC_SAMPLE_RATE, FrontEndOptions(window=engine.window))
    frontal: list[np.ndarray] = []
    codes: list[np.ndarray] = []
    try:
        container = av.open(str(path), mode="w", format="mp4")
    except av.error.FFmpegError as e:
        raise EngineError(f"cannot write {path.parent}: {e}") from e
    with container:
        writer = _Writer(container, session.avatar.size, crf)
        for start in range(0, len(audio) + CHUNK, CHUNK):
            chunk = audio[start : start + CHUNK]
            records = frontend.push_input(chunk) if len(chunk) else frontend.finish()
            for features in records:
                (frame,), _ = engine.tick([(session, [features], features.index)])
                writer.video(frame.image)
                frontal.append(frame.frontal)
                codes.append(frame.emotion)
                _progress(len(frontal), len(audio), started)
        writer.audio(audio)
        writer.close()
    return frontal, codes


class _Writer:
    """H.264 video at 25 fps and AAC audio from 0 s into one MP4 container."""

    def __init__(
        self, container: av.container.OutputContainer, size: tuple[int, int], crf: int
    ) -> None:
        self._container = container
        self._video = container.add_stream("libx264", rate=VIDEO_FPS)
        self._video.width, self._video.height = size
        self._video.pix_fmt = "yuv420p"
        self._video.options = {"crf": str(crf), "preset": "fast"}
        self._audio = container.add_stream("aac", rate=WEBRTC_SAMPLE_RATE)
        self._audio.layout = "mono"
        self._audio.bit_rate = AUDIO_BITRATE
        self._frames = 0

    def video(self, image: np.ndarray) -> None:
        frame = av.VideoFrame.from_ndarray(image, format="rgb24")
        frame.pts, frame.time_base = self._frames, Fraction(1, VIDEO_FPS)
        self._frames += 1
        self._mux(self._video.encode(frame))

    def audio(self, samples: np.ndarray) -> None:
        for start in range(0, len(samples), CHUNK):
            frame = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(samples[None, start : start + CHUNK]),
                format="flt",
                layout="mono",
            )
            frame.sample_rate = WEBRTC_SAMPLE_RATE
            frame.pts, frame.time_base = start, Fraction(1, WEBRTC_SAMPLE_RATE)
            self._mux(self._audio.encode(frame))

    def close(self) -> None:
        self._mux(self._video.encode(None))
        self._mux(self._audio.encode(None))

    def _mux(self, packets: list[av.Packet]) -> None:
        for packet in packets:
            self._container.mux(packet)


def _progress(frames: int, samples: int, started: float) -> None:
    if frames % (10 * VIDEO_FPS) == 0:
        total = samples * VIDEO_FPS // WEBRTC_SAMPLE_RATE
        rate = frames / (time.perf_counter() - started)
        print(f"evp render: {frames}/{total} frames, {rate:.0f} fps", file=sys.stderr, flush=True)
