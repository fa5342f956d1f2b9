"""The inference worker: sessions batched, renders in parallel, faults isolated, closed
sessions dropped."""

import asyncio
import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engine.audio.frontend import AudioFrontEnd, FrontEndOptions
from engine.avatar.bundle import AvatarLibrary
from engine.pipeline.portrait import PortraitEngine
from server.inference import InferenceWorker, SessionClosed
from server.metrics import ServerMetrics
from server.settings import DEFAULT_AVATARS

RENDER_THREADS = 2


@pytest.fixture
async def worker():
    landmarks, renders = ThreadPoolExecutor(1), ThreadPoolExecutor(RENDER_THREADS)
    engine = PortraitEngine.load("onnx")
    inference = InferenceWorker(engine, landmarks, renders, ServerMetrics())
    inference.start()
    yield inference
    await inference.aclose()
    landmarks.shutdown()
    renders.shutdown()


@pytest.fixture(scope="module")
def avatar():
    return AvatarLibrary(DEFAULT_AVATARS).get("default")


def records(engine, speech, seconds=1):
    frontend = AudioFrontEnd(options=FrontEndOptions(window=engine.window))
    return frontend.push(speech[: 16000 * seconds]) + frontend.finish()


async def test_sessions_asking_together_share_a_batch_and_get_their_own_frames(
    worker, avatar, speech
):
    engine = worker.engine
    a, b = engine.open("a", avatar), engine.open("b", avatar)
    steps = records(engine, speech)[:10]
    frames = await asyncio.gather(
        worker.render(a, steps, 3, lambda f: f), worker.render(b, steps[:4], 9, lambda f: f)
    )
    assert [f.tick for f in frames] == [3, 9] and [f.index for f in frames] == [9, 3]
    assert worker._metrics.batch_sessions._sum.get() == 2  # one batch of both
    alone = engine.open("alone", avatar)
    (expected,), _ = engine.tick([(alone, steps, 3)])
    np.testing.assert_allclose(frames[0].frontal, expected.frontal, atol=1e-5)
    for s in (a, b, alone):
        s.close()


async def test_a_failing_session_does_not_take_its_batch_down(worker, avatar, speech):
    engine = worker.engine
    good, bad = engine.open("good", avatar), engine.open("bad", avatar)

    def broken(tick, frontal):
        raise RuntimeError("this session's renderer broke")

    bad.draw = broken
    steps = records(engine, speech)[:3]
    reference = engine.open("reference", avatar)
    expected = engine.tick([(reference, steps, 0)])[0][0].frontal
    reference.close()
    results = await asyncio.gather(
        worker.render(good, steps, 0, lambda f: f.image.shape),
        worker.render(bad, steps, 0, lambda f: f),
        return_exceptions=True,
    )
    assert results[0] == (*avatar.frames.shape[1:3], 3)
    np.testing.assert_allclose(good.frontal, expected, atol=1e-5)  # stepped once, not twice
    assert isinstance(results[1], RuntimeError) and "renderer broke" in str(results[1])
    good.close()
    with pytest.raises(SessionClosed):  # closed while its request waited
        await worker.render(good, [], 0, lambda f: f)
    bad.close()
    assert len(engine) == 0


async def test_renders_of_different_sessions_run_at_once_on_the_pool(worker, avatar, speech):
    """Each render waits at a barrier for the others: drawn one after another, the first
    would time out there (a count, not a clock: the same on any machine)."""
    engine = worker.engine
    sessions = [engine.open(f"s{i}", avatar) for i in range(RENDER_THREADS)]
    together = threading.Barrier(RENDER_THREADS, timeout=10)
    threads = set()
    for session in sessions:
        draw = session.draw

        def meet(tick, frontal, draw=draw):
            threads.add(threading.current_thread().name)
            together.wait()
            return draw(tick, frontal)

        session.draw = meet
    steps = records(engine, speech)[:2]
    frames = await asyncio.gather(*(worker.render(s, steps, 0, lambda f: f) for s in sessions))
    assert [f.index for f in frames] == [steps[-1].index] * RENDER_THREADS
    assert len(threads) == RENDER_THREADS and not together.broken
    assert worker.renders_in_flight == 0
    for session in sessions:
        session.close()


async def test_a_stopped_render_pool_fails_the_waiting_session(avatar):
    landmarks, renders = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
    inference = InferenceWorker(PortraitEngine.load("onnx"), landmarks, renders, ServerMetrics())
    inference.start()
    session = inference.engine.open("s", avatar)
    renders.shutdown()  # no thread will draw its frame
    with pytest.raises((SessionClosed, RuntimeError)):
        await asyncio.wait_for(inference.render(session, [], 0, lambda f: f), 5)
    await inference.aclose()
    landmarks.shutdown()


async def test_a_stopped_worker_fails_every_waiting_session_and_says_so(avatar):
    executor, renders = ThreadPoolExecutor(1), ThreadPoolExecutor(1)
    inference = InferenceWorker(PortraitEngine.load("onnx"), executor, renders, ServerMetrics())
    inference.start()
    session = inference.engine.open("s", avatar)
    executor.shutdown()  # the worker's thread is gone: its next batch fails
    with pytest.raises((SessionClosed, RuntimeError)):
        await asyncio.wait_for(inference.render(session, [], 0, lambda f: f), 5)
    await asyncio.sleep(0)
    assert not inference.healthy
    with pytest.raises(SessionClosed):  # and nobody waits forever afterwards
        await inference.render(session, [], 0, lambda f: f)
    await inference.aclose()
    renders.shutdown()


def test_audio_handed_over_before_a_reset_is_never_stepped(avatar, speech):
    engine = PortraitEngine.load("onnx")
    session = engine.open("s", avatar)
    steps = records(engine, speech)[:5]
    stale_epoch = session.epoch
    session.reset()  # a flush while those frames were queued
    engine.advance([(session, steps)], [stale_epoch])
    np.testing.assert_allclose(session.frontal, avatar.track.neutral[:, :2], atol=1e-6)
    assert session.index == -1  # nothing stepped
    engine.advance([(session, steps)], [session.epoch])
    assert session.index == steps[-1].index
    session.close()
