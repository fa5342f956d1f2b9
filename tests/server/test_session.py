"""A Session fed directly by a fake microphone track: odd formats and broken samples."""

import asyncio
import fractions
from concurrent.futures import ThreadPoolExecutor

import av
import numpy as np
import pytest
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

from engine.avatar.bundle import AvatarLibrary
from engine.pipeline.portrait import PortraitEngine
from server.bench.client import wait_for
from server.inference import InferenceWorker
from server.metrics import ServerMetrics
from server.session import Session
from server.settings import ServerSettings


class FakeMicrophone(MediaStreamTrack):
    """Yields prepared audio frames in real time, then ends."""

    kind = "audio"

    def __init__(self, frames: list[av.AudioFrame]) -> None:
        super().__init__()
        self._frames = list(frames)

    async def recv(self) -> av.AudioFrame:
        if not self._frames:
            raise MediaStreamError
        frame = self._frames.pop(0)
        await asyncio.sleep(frame.samples / frame.sample_rate)
        return frame


def frames(signal: np.ndarray, rate: int, fmt: str, layout: str, chunk: int) -> list[av.AudioFrame]:
    """(channels, n) signal -> frames of ``chunk`` samples stamped in samples."""
    out = []
    for start in range(0, signal.shape[1], chunk):
        part = signal[:, start : start + chunk]
        data = part if av.AudioFormat(fmt).is_planar else part.T.reshape(1, -1)
        frame = av.AudioFrame.from_ndarray(np.ascontiguousarray(data), format=fmt, layout=layout)
        frame.sample_rate = rate
        frame.pts = start
        frame.time_base = fractions.Fraction(1, rate)
        out.append(frame)
    return out


@pytest.fixture
async def session():
    engine = PortraitEngine.load("onnx")
    settings = ServerSettings(window=engine.window)
    closed = []
    executor = ThreadPoolExecutor(1)
    renders = ThreadPoolExecutor(2)
    metrics = ServerMetrics()
    inference = InferenceWorker(engine, executor, renders, metrics)
    inference.start()
    avatar = AvatarLibrary(settings.avatars_dir).get("default")
    s = Session(
        "test",
        "token",
        avatar,
        settings,
        metrics,
        executor,
        executor,
        inference,
        engine.open("test", avatar),
        closed.append,
    )
    s.start()
    yield s
    await s.aclose("test over")
    assert closed == [s] and len(engine) == 0
    await inference.aclose()
    executor.shutdown()
    renders.shutdown()


async def test_surround_44k_float_with_nan_and_overs_is_repaired_and_analysed(session, speech):
    import scipy.signal

    rate, seconds = 44_100, 3
    mono = scipy.signal.resample_poly(speech[: 16_000 * seconds], 441, 160).astype(np.float32)
    surround = np.repeat(mono[None, :] * 3.0, 6, axis=0)  # loud: many samples beyond +-1
    surround[:, 1000:1100] = np.nan
    surround[2, 5000:5100] = np.inf
    session.attach_microphone(FakeMicrophone(frames(surround, rate, "fltp", "5.1", 441)))
    await wait_for(lambda: session.stats_message()["voice"], timeout=seconds + 2)
    stats = session.stats_message()
    assert stats["repaired_samples"] > 100  # NaN/inf zeroed, overs clipped (counted after downmix)
    assert stats["audio_level_db"] > -30
    assert stats["audio_frames"] > 0


async def test_8k_mono_int16_silence_then_speech(session, speech):
    import scipy.signal

    rate = 8_000
    talk = scipy.signal.resample_poly(speech[: 16_000 * 2], 1, 2)
    signal = np.concatenate([np.zeros(rate), talk])
    pcm = np.clip(signal * 32767, -32768, 32767).astype(np.int16)[None, :]
    session.attach_microphone(FakeMicrophone(frames(pcm, rate, "s16", "mono", 160)))
    await wait_for(lambda: session.stats_message()["audio_level_db"] is not None, timeout=3)
    assert not session.stats_message()["voice"]  # the first second is silence
    await wait_for(lambda: session.stats_message()["voice"], timeout=4)
    assert session.stats_message()["repaired_samples"] == 0


async def test_flush_drops_queued_audio_and_returns_to_idle_at_once(session, speech):
    from server.control import Flush

    audio = session._audio.subscribe()
    mouth = lambda: np.linalg.norm(session.portrait.frontal[66] - session.portrait.frontal[62])
    neutral = session.avatar.track.neutral[:, :2]
    rate = 48_000
    talk = np.repeat(speech[16_000 : 16_000 * 5], 3)[None, :].astype(np.float32)
    session.attach_microphone(FakeMicrophone(frames(talk, rate, "flt", "mono", 960)))
    await wait_for(lambda: mouth() > np.linalg.norm(neutral[66] - neutral[62]) + 0.01, timeout=8)
    await wait_for(lambda: session._ready, timeout=2)  # analysed audio waiting for playout
    session.apply(Flush())
    assert not session._ready and session.stats_message()["queue_delay_ms"] == 0
    # The microphone goes on: its new audio shows only after the pipeline delay (at least
    # look-ahead + frame, 164 ms), so the next 130 ms hold no face and no voice from before.
    assert session.pipeline_delay_s > 0.16
    await asyncio.sleep(0.05)  # more than a video tick
    np.testing.assert_allclose(session.portrait.frontal, neutral, atol=1e-6)  # mouth at rest
    while not audio._queue.empty():
        audio._queue.get_nowait()
    returned = [await asyncio.wait_for(audio.recv(), 1) for _ in range(4)]
    assert all(not np.any(frame.to_ndarray()) for frame in returned)  # no old voice plays on
    audio.stop()
