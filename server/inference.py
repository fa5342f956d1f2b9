"""The server's one inference worker: every session's video frames, batched.

    inference = InferenceWorker(engine, executor, metrics)
    inference.start()
    frame = await inference.render(portrait, steps, tick, finish)   # from a session's clock
    await inference.aclose()

Sessions ask for a frame when their 25 fps clock ticks. Whatever is queued when the worker
is free runs as one ``PortraitEngine.tick`` on the executor thread: Ec and the LSTM step
batched over all those sessions, then each session's render. An idle worker serves a
request at once (a batch of one: the lowest latency); under load, requests that arrive
while a batch runs are batched together next (throughput). ``finish`` (e.g. RGB to I420)
runs on the executor too, so the event loop never touches pixels.

The landmark step runs once for the batch; each session's render runs on its own, so one
session's failing render reaches only that session. Jobs of sessions closed while queued
are dropped.
"""

import asyncio
import logging
import time
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import dataclass
from typing import Any

from engine.audio.frontend import FrameFeatures
from engine.errors import EngineError
from engine.pipeline.portrait import PortraitEngine, PortraitFrame, PortraitSession, TickTimes
from engine.runtime.batching import MAX_BATCH
from server.metrics import ServerMetrics
from server.tasks import TaskSupervisor

logger = logging.getLogger(__name__)


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


class InferenceWorker:
    def __init__(self, engine: PortraitEngine, executor: Executor, metrics: ServerMetrics) -> None:
        self.engine = engine
        self._executor = executor
        self._metrics = metrics
        self._queue: list[_Job] = []
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

    @property
    def queue_depth(self) -> int:
        return len(self._queue)

    async def call(self, fn: Callable, *args) -> Any:
        """Run other engine work (opening a session, reading its state) on the same
        thread as the ticks, so it never races them."""
        return await asyncio.get_running_loop().run_in_executor(self._executor, fn, *args)

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
                    outcomes, times = await loop.run_in_executor(self._executor, self._tick, jobs)
                    for job, (ok, value) in zip(jobs, outcomes, strict=True):
                        if job.future.done():
                            continue  # its session stopped waiting (closed, cancelled)
                        if ok:
                            job.future.set_result(value)
                        else:
                            job.future.set_exception(value)
                    jobs = []
                    self._observe(times)
        finally:  # stopped or failed: nobody may wait forever
            self._closed = True
            for job in jobs + self._queue:
                if not job.future.done():
                    job.future.set_exception(SessionClosed("the inference worker has stopped"))
            self._queue.clear()

    def _take_batch(self) -> list[_Job]:
        """Up to MAX_BATCH jobs, one per session (a second one waits for the next batch);
        jobs nobody waits for any more are dropped."""
        batch, later, seen = [], [], set()
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

    def _tick(self, jobs: list[_Job]) -> tuple[list[tuple[bool, Any]], TickTimes | None]:
        """Worker thread: one batched landmark step for ``jobs``, then each session's render
        on its own, so a failing render reaches only its session; (ok, result or
        exception) per job."""
        live = [job for job in jobs if self.engine.is_open(job.session)]
        outcomes: dict[int, tuple[bool, Any]] = {
            id(job): (False, SessionClosed(f"session {job.session.id} is closed"))
            for job in jobs
            if job not in live
        }
        try:
            times = self.engine.advance(
                [(job.session, job.steps) for job in live], [job.epoch for job in live]
            )
        except Exception as e:  # the runtime failed: every caller hears it
            logger.exception("the landmark step of %d sessions failed", len(live))
            outcomes |= {id(job): (False, e) for job in live}
            return [outcomes[id(job)] for job in jobs], None
        started = time.perf_counter()
        for job in live:
            try:
                outcomes[id(job)] = (True, job.finish(job.session.draw_frame(job.tick)))
            except Exception as e:  # it goes to that session's caller only
                logger.exception("rendering session %s failed", job.session.id)
                outcomes[id(job)] = (False, e)
        times.render = time.perf_counter() - started
        return [outcomes[id(job)] for job in jobs], times

    def _observe(self, times: TickTimes | None) -> None:
        if times is None or not times.sessions:
            return
        m = self._metrics
        m.batch_sessions.observe(times.sessions)
        m.stage_seconds.labels("landmarks").observe(times.landmarks)
        m.stage_seconds.labels("render").observe(times.render)
