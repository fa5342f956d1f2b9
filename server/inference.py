"""The server's inference worker: every session's landmark steps batched, renders in parallel.

    inference = InferenceWorker(engine, landmarks, renders, metrics)
    inference.start()
    frame = await inference.render(portrait, steps, tick, finish)   # from a session's clock
    await inference.aclose()

Sessions ask for a frame when their 25 fps clock ticks. Whatever is queued when the
landmark thread is free runs as one batched ``PortraitEngine.advance`` there (Ec and the
LSTM step of all those sessions in one network call; the engine's session state lives on
that one thread). Each session's render (alignment, guidance, generator, compositing, and
``finish``, e.g. RGB to I420) then runs on its own on the ``renders`` pool, one thread per
core: ONNX Runtime, OpenCV and NumPy release the GIL, so renders of different sessions
run on different cores at once, beside the next batch's landmark step. An idle worker
serves a request at once (a batch of one: the lowest latency); under load, requests that
arrive while a batch steps are batched together next.

A session has one frame in flight at a time (its clock awaits it), so a session's render
never overlaps its own next landmark step. One session's failing render reaches only that
session. Jobs of sessions closed while queued are dropped.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from functools import partial
from typing import Any, TypeVar

from engine.audio.frontend import FrameFeatures
from engine.errors import EngineError
from engine.pipeline.portrait import PortraitEngine, PortraitFrame, PortraitSession, TickTimes
from engine.runtime.batching import MAX_BATCH
from server.metrics import ServerMetrics
from server.tasks import TaskSupervisor

logger = logging.getLogger(__name__)
T = TypeVar("T")


class SessionClosed(EngineError):
    """The session's pipeline was closed before its frame was made."""


@dataclass(eq=False)  # jobs are compared by identity
class _Job:
    session: PortraitSession
    steps: list[FrameFeatures]
    epoch: int  # the session's epoch when the steps were taken
    tick: int
    finish: Callable[[PortraitFrame], Any]
    future: asyncio.Future


@dataclass
class _Drawn:
    """What a render thread hands back for one job."""

    ok: bool
    value: Any  # finish(frame), or the exception
    seconds: float  # wall time of the render and finish


class InferenceWorker:
    def __init__(
        self,
        engine: PortraitEngine,
        landmarks: Executor,
        renders: Executor,
        metrics: ServerMetrics,
        on_rendered: Callable[[float], None] = lambda seconds: None,
    ) -> None:
        """landmarks: one thread, which owns the engine's state (every ``call`` and each
        batch's landmark step runs there); renders: the pool that draws the frames;
        on_rendered(seconds): each render's wall time, on the event loop (the capacity
        model's measurement)."""
        self.engine = engine
        self._landmarks = landmarks
        self._renders = renders
        self._metrics = metrics
        self._on_rendered = on_rendered
        self._queue: list[_Job] = []
        self._drawing: set[asyncio.Future] = set()  # renders in flight on the pool
        self._wake = asyncio.Event()
        self._tasks = TaskSupervisor("inference", self._failed)
        self._closed = False

    def start(self) -> None:
        self._tasks.spawn(self._run(), "batches")

    async def aclose(self) -> None:
        self._closed = True
        await self._tasks.aclose()
        for job in self._queue:
            job.future.cancel()
        self._queue.clear()
        # Renders in flight end on their own (one frame each); their callers hear them.
        await asyncio.gather(*self._drawing, return_exceptions=True)

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    @property
    def renders_in_flight(self) -> int:
        return len(self._drawing)

    async def call(self, fn: Callable[..., T], *args: object) -> T:
        """Run other engine work (opening a session, reading its state) on the landmark
        thread, so it never races a batch."""
        return await asyncio.get_running_loop().run_in_executor(self._landmarks, fn, *args)

    async def render(
        self,
        session: PortraitSession,
        steps: list[FrameFeatures],
        tick: int,
        finish: Callable[[PortraitFrame], Any],
    ) -> Any:
        """``finish(frame)`` of the session's next frame: ``steps`` stepped, drawn on loop
        tick ``tick``."""
        if self._closed:
            raise SessionClosed("the inference worker has stopped")
        future = asyncio.get_running_loop().create_future()
        job = _Job(session, steps, session.epoch, tick, finish, future)
        self._queue.append(job)
        self._metrics.inference_queue.set(len(self._queue))
        self._wake.set()
        return await job.future

    @property
    def healthy(self) -> bool:
        return not self._closed

    def _failed(self, name: str, exc: BaseException) -> None:
        logger.critical("the inference worker stopped (%r): no session gets frames now", exc)
        self._closed = True

    async def _run(self) -> None:
        loop = asyncio.get_running_loop()
        jobs: list[_Job] = []
        try:
            while True:
                await self._wake.wait()
                self._wake.clear()
                while self._queue:
                    jobs = self._take_batch()
                    self._metrics.inference_queue.set(len(self._queue))
                    live, failed, times = await loop.run_in_executor(
                        self._landmarks, self._advance, jobs
                    )
                    for job, exc in failed:
                        _settle(job.future, False, exc)
                    for job in live:
                        self._draw_later(loop, job)
                    jobs = []
                    self._observe(times)
        finally:  # stopped or failed: nobody may wait forever
            self._closed = True
            for job in jobs + self._queue:
                _settle(job.future, False, SessionClosed("the inference worker has stopped"))
            self._queue.clear()

    def _take_batch(self) -> list[_Job]:
        """Up to MAX_BATCH jobs, one per session (a second one waits for the next batch);
        jobs nobody waits for any more are dropped."""
        batch: list[_Job] = []
        later: list[_Job] = []
        seen: set[str] = set()
        for job in self._queue:
            if job.future.done():
                continue
            if len(batch) < MAX_BATCH and job.session.id not in seen:
                batch.append(job)
                seen.add(job.session.id)
            else:
                later.append(job)
        self._queue = later
        return batch

    def _advance(
        self, jobs: list[_Job]
    ) -> tuple[list[_Job], list[tuple[_Job, BaseException]], TickTimes | None]:
        """Landmark thread: one batched landmark step for the open sessions of ``jobs``.
        Returns the jobs to draw, the jobs that failed (with why) and the step's times."""
        live = [job for job in jobs if self.engine.is_open(job.session)]
        failed: list[tuple[_Job, BaseException]] = [
            (job, SessionClosed(f"session {job.session.id} is closed"))
            for job in jobs
            if job not in live
        ]
        try:
            times = self.engine.advance(
                [(job.session, job.steps) for job in live], [job.epoch for job in live]
            )
        except Exception as e:  # the runtime failed: every caller hears it
            logger.exception("the landmark step of %d sessions failed", len(live))
            return [], failed + [(job, e) for job in live], None
        return live, failed, times

    def _draw_later(self, loop: asyncio.AbstractEventLoop, job: _Job) -> None:
        drawing = loop.run_in_executor(self._renders, _draw, job)
        self._drawing.add(drawing)
        drawing.add_done_callback(partial(self._drawn, job))

    def _drawn(self, job: _Job, drawing: asyncio.Future) -> None:
        """Event loop: a render finished (or the pool shut down before it ran)."""
        self._drawing.discard(drawing)
        if drawing.cancelled():
            _settle(job.future, False, SessionClosed("the render pool has stopped"))
            return
        if (error := drawing.exception()) is not None:  # _draw catches Exception
            _settle(job.future, False, error)
            return
        drawn: _Drawn = drawing.result()
        self._metrics.stage_seconds.labels("render").observe(drawn.seconds)
        self._on_rendered(drawn.seconds)
        _settle(job.future, drawn.ok, drawn.value)

    def _observe(self, times: TickTimes | None) -> None:
        if times is None or not times.sessions:
            return
        self._metrics.batch_sessions.observe(times.sessions)
        self._metrics.stage_seconds.labels("landmarks").observe(times.landmarks)


def _draw(job: _Job) -> _Drawn:
    """A render thread: the session's frame drawn and finished; a failure goes to that
    session's caller only."""
    started = time.perf_counter()
    try:
        value, ok = job.finish(job.session.draw_frame(job.tick)), True
    except Exception as e:
        logger.exception("rendering session %s failed", job.session.id)
        value, ok = e, False
    return _Drawn(ok, value, time.perf_counter() - started)


def _settle(future: asyncio.Future, ok: bool, value: Any) -> None:
    if future.done():
        return  # its session stopped waiting (closed, cancelled)
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)
