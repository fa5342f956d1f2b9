"""One talking peer: its WebRTC connection, audio analysis, playout clock, tracks and tasks.

Data flow inside a session::

    peer mic --(aiortc)--> _receive_audio --(audio thread)--> AudioFrontEnd --> _ready frames
                                  \\--> AudioHistory (mono, input rate)
    video_clock (25 fps)  : PlayoutClock -> audio frames due -> InferenceWorker (batched
                            with other sessions: emotion, Ec + LSTM, 3D-aware pose,
                            guidance, generator, compositing, I420) -> video Broadcast
    return_voice (50 Hz)  : PlayoutClock -> samples due -> audio Broadcast
    Broadcasts --> the peer's senders and every viewer's senders (SessionConnections)

The clocks are server.session_clocks, the connections server.session_connections, the
control commands' emotion server.session_control.

Both output loops ask the same PlayoutClock what media time is due, so the returned voice
and the video frame made from it leave together, ``pipeline_delay_s`` after the audio came.
Every analysed audio frame steps the session's LSTM, in order, even when the video clock
shows only the last of several (after a stall); between audio the face holds its last
prediction on the moving loop.
"""

import asyncio
import logging
import math
import time
from collections import deque
from collections.abc import Awaitable, Callable
from concurrent.futures import Executor
from functools import partial
from typing import cast

from aiortc import RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack
from av import AudioFrame

from engine.audio.frontend import FrameFeatures, FrontEndOptions
from engine.audio.pcm import PcmReport
from engine.audio.resample import StreamingResampler
from engine.avatar.bundle import Avatar
from engine.constants import PTS_PER_VIDEO_FRAME, SAMPLE_RATE, VIDEO_FPS, VIDEO_PERIOD_S
from engine.emotion_state import EmotionState
from engine.errors import EngineError
from engine.pipeline.h264 import H264Stream
from engine.pipeline.portrait import PortraitSession
from engine.playout import PlayoutClock, PlayoutMargin
from server.audio_input import RETURN_AUDIO_RATE, Epoch, analyse, continues, new_epoch
from server.capacity import Capacity
from server.control import Command, ControlError, Flush
from server.frame_stamp import loud_hops
from server.inference import InferenceWorker
from server.media import AudioHistory, audio_frame_to_planar, yuv420p_frame
from server.metrics import ServerMetrics
from server.offer import OfferError
from server.session_clocks import return_voice, video_clock
from server.session_connections import SessionConnections
from server.session_control import ControlSink, command_emotion
from server.session_media import finish_frame, packet_payload, return_audio_frame
from server.session_stats import SessionStats, export
from server.settings import ServerSettings
from server.tasks import TaskSupervisor
from server.tracks import Broadcast

logger = logging.getLogger(__name__)
CLOSE_WAIT_S = 2.0  # for control sockets to close (aiohttp waits 10 s for a silent client)


class Session:
    def __init__(
        self,
        session_id: str,
        token: str,
        avatar: Avatar,
        settings: ServerSettings,
        metrics: ServerMetrics,
        analysis: Executor,
        encode: Executor,
        inference: InferenceWorker,
        portrait: PortraitSession,
        on_closed: Callable[["Session"], None],
        emotion: EmotionState | None = None,
        stamp_frames: bool = False,
        capacity: Capacity | None = None,
    ) -> None:
        """capacity: the server's model (server.capacity); it sets the frame step every
        session is served at and hears each tick. None: always every tick."""
        self.id = session_id
        self.token = token
        self.avatar = avatar
        self.emotion = emotion or EmotionState()
        self.portrait = portrait
        self._inference = inference
        self._capacity = capacity
        self._encode = encode  # the encode pool, off the render threads
        self._stamp_frames = stamp_frames  # evp bench live: the audio frame in the picture
        self._settings = settings
        self._metrics = metrics
        # The audio front-end, on a thread of its own: behind the renders, analysis (one
        # 20 ms packet at a time) would fall further behind whenever they take a whole
        # frame period, and latency would grow.
        self._analysis = analysis
        self._on_closed = on_closed
        window = settings.window
        assert window is not None, "the model's window is set at startup (server.app)"
        self._frontend_options = FrontEndOptions(window=window)
        # The delay the model and the frame need; the margin on top follows measurement.
        self._base_delay_s = (
            VIDEO_PERIOD_S
            + window.lookahead_seconds
            + StreamingResampler(RETURN_AUDIO_RATE, SAMPLE_RATE).delay_seconds
        )
        self._margin = PlayoutMargin(settings.margin)
        self._clock = PlayoutClock(self._base_delay_s + self._margin.value_s)
        self._tasks = TaskSupervisor(f"session {session_id}", self._task_failed)
        self._video = Broadcast("video", yuv420p_frame, max_queue=2)  # receivers without H.264
        self._encoder = H264Stream(*avatar.size)
        self._h264 = Broadcast(
            "video", packet_payload, max_queue=2, on_overflow=self._encoder.request_keyframe
        )
        self._audio = Broadcast("audio", return_audio_frame, max_queue=5)
        self._connections = SessionConnections(
            settings,
            metrics,
            self._video,
            self._h264,
            self._audio,
            self._encoder,
            on_microphone=self.attach_microphone,
            close_session=self.request_close,
            spawn=self._tasks.spawn,
        )
        self._control_channels: set[ControlSink] = set()
        self._epoch: Epoch | None = None
        self._history: AudioHistory | None = None
        self._ready: deque[FrameFeatures] = deque()
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=256)  # (media_end_s, arrival)
        self._shown: FrameFeatures | None = None
        self._voice_emotion: dict | None = None
        self._stats = SessionStats()
        self._last_audio_at: float | None = None
        self._close_task: asyncio.Task | None = None
        self._flushes = 0  # an epoch built across a flush is dropped (_epoch_for)
        self._closing = False
        self.closed = asyncio.Event()

    # ---------------------------------------------------------------- lifecycle

    async def accept_offer(self, sdp: str) -> RTCSessionDescription:
        """Apply the peer's offer and return our answer. Raises OfferError on bad offers."""
        return await self._connections.accept_offer(sdp)

    async def add_viewer(self, sdp: str) -> RTCSessionDescription:
        """Answer a receive-only offer with this session's video and audio. Raises
        OfferError on bad offers, at the most viewers or while the session closes."""
        if self._closing:
            raise OfferError("this session is closing; ask the talker for a new link")
        return await self._connections.add_viewer(sdp)

    def attach_microphone(self, track: MediaStreamTrack) -> None:
        """Analyse and return the audio of ``track`` (any rate, layout and sample format)."""
        self._tasks.spawn(self._receive_audio(track), "receive-audio")

    def start(self) -> None:
        clock, capacity = self._clock, self._capacity
        video = video_clock(clock, capacity, self._send_due, self._count_dropped)
        self._tasks.spawn(video, "video-clock")
        self._tasks.spawn(return_voice(clock, lambda: self._history, self._audio), "audio-clock")
        self._tasks.spawn(self._stats_loop(), "stats")
        self._tasks.spawn(self._watchdog(), "watchdog")

    def request_close(self, reason: str) -> None:
        """Close from anywhere (callbacks, tasks of this session) without awaiting."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(
                self.aclose(reason), name=f"session {self.id}:close"
            )
            self._close_task.add_done_callback(self._closed_with)

    def _closed_with(self, task: asyncio.Task) -> None:
        if not task.cancelled() and (exc := task.exception()) is not None:
            logger.error("session %s: closing failed", self.id, exc_info=exc)

    async def aclose(self, reason: str = "closed") -> None:
        """Stop every task, end every track and connection, free buffers. Idempotent."""
        if self._closing:
            await self.closed.wait()
            return
        self._closing = True
        logger.info("session %s closing: %s", self.id, reason)
        try:
            await self._tasks.aclose()
            self._video.close()
            self._h264.close()
            self._audio.close()
            # Each step runs whatever the one before did: a control socket that fails or
            # never answers its close must not keep the connections or the engine open.
            await self._close_channels(reason)
            await self._step("connections", self._connections.aclose())
            await self._step("engine session", self._inference.call(self.portrait.close))
        finally:  # whatever failed above, the session is gone and its slot is free
            self._metrics.forget_session(self.id)
            self._epoch = None
            self._history = None
            self._ready.clear()
            self.closed.set()
            self._on_closed(self)

    async def _close_channels(self, reason: str) -> None:
        """Close the control sockets together, giving up on silent ones after CLOSE_WAIT_S."""
        closing = [channel.close(reason) for channel in list(self._control_channels)]
        try:
            results = await asyncio.wait_for(
                asyncio.gather(*closing, return_exceptions=True), CLOSE_WAIT_S
            )
        except asyncio.TimeoutError:
            logger.warning("session %s: gave up closing its control sockets", self.id)
            return
        for result in results:
            if isinstance(result, Exception):
                logger.warning("session %s: a control socket failed to close: %r", self.id, result)

    async def _step(self, what: str, step: Awaitable[object]) -> None:
        try:
            await step
        except Exception:
            logger.exception("session %s: closing its %s failed", self.id, what)

    def _task_failed(self, name: str, exc: BaseException) -> None:
        self.request_close(f"task {name} failed: {exc!r}")

    @property
    def task_count(self) -> int:
        return self._tasks.active

    @property
    def audio_frames_received(self) -> int:
        return self._stats.counters.audio_frames

    @property
    def viewer_count(self) -> int:
        return self._connections.viewer_count

    # ---------------------------------------------------------------- control

    def add_control_channel(self, channel: ControlSink) -> None:
        self._control_channels.add(channel)

    def remove_control_channel(self, channel: ControlSink) -> None:
        self._control_channels.discard(channel)

    def apply(self, command: Command) -> None:
        """Apply a validated control command and push the new state to every socket.
        Raises ControlError (and changes nothing) if the model cannot show it."""
        emotion = command_emotion(command, self.emotion)
        try:
            self.portrait.set_emotion(emotion)
        except EngineError as e:
            raise ControlError(str(e)) from e
        if isinstance(command, Flush):
            self._flush()
        self.emotion = emotion
        self._broadcast_control(self.state_message())

    def _flush(self) -> None:
        """Drop queued audio and analysis: playout returns to idle until new audio."""
        self._flushes += 1
        self._epoch = None
        self._history = None
        self._reset_playout()

    def _reset_playout(self) -> None:
        """Forget analysed frames and the clock: a new epoch's frames number from 0, the
        LSTM starts again and the face relaxes to its neutral pose."""
        self._ready.clear()
        self._arrivals.clear()
        self._clock.reset()
        self._margin.reset()
        self._shown = None
        self.portrait.reset()

    def state_message(self) -> dict:
        return {
            "type": "state",
            "session_id": self.id,
            "avatar": self.avatar.manifest.name,
            "emotion": self.emotion.to_json(),
            "pipeline_delay_ms": round(self.pipeline_delay_s * 1000, 1),
        }

    def _broadcast_control(self, message: dict) -> None:
        for channel in self._control_channels:
            channel.send(message)

    # ---------------------------------------------------------------- input audio

    async def _receive_audio(self, track: MediaStreamTrack) -> None:
        loop = asyncio.get_running_loop()
        while True:
            try:
                frame = cast(AudioFrame, await track.recv())  # an audio track's
            except MediaStreamError:
                return
            arrival = loop.time()
            self._last_audio_at = arrival
            self._stats.counters.audio_frames += 1
            self._metrics.audio_frames.inc()
            planar = audio_frame_to_planar(frame)
            rate = frame.sample_rate
            media_start: float | None = None
            if frame.pts is not None:
                assert frame.time_base is not None  # aiortc's decoders set both
                media_start = float(frame.pts * frame.time_base)
            epoch = await self._epoch_for(media_start, rate, planar.shape[1])
            if epoch is None:
                continue  # late duplicate or reordered frame: already covered
            gap = (
                0
                if media_start is None
                else max(0, round((media_start - epoch.next_media_s) * rate))
            )
            started = time.perf_counter()
            features, returned, report = await loop.run_in_executor(
                self._analysis, analyse, epoch, planar, gap
            )
            self._metrics.frontend_seconds.observe(time.perf_counter() - started)
            if self._epoch is not epoch:
                continue  # flushed while we were analysing
            self._count_repairs(report)
            media_end = epoch.next_media_s + (gap + planar.shape[1]) / rate
            history_start = round((epoch.next_media_s - epoch.media_start_s) * RETURN_AUDIO_RATE)
            assert self._history is not None  # made with each epoch (_epoch_for)
            self._history.write(history_start, returned)
            epoch.next_media_s = media_end
            self._clock.on_input(media_end - epoch.media_start_s, arrival)
            self._arrivals.append((media_end - epoch.media_start_s, arrival))
            self._ready.extend(features)
            self._follow_margin(features, loop.time())

    @property
    def pipeline_delay_s(self) -> float:
        """From the end of an audio frame's arrival line to its frame and voice leaving."""
        return self._clock.delay_s

    def _follow_margin(self, features: list[FrameFeatures], now: float) -> None:
        """Each analysed frame's lateness against playout at zero margin (it is shown at
        offset + base delay + index / fps) sets the margin; the clock follows it."""
        if not features or not self._clock.started:
            return
        due_at_zero_margin = self._clock.offset_s + self._base_delay_s
        for frame in features:
            margin = self._margin.observe(now - due_at_zero_margin - frame.index / VIDEO_FPS, now)
        self._clock.delay_s = self._base_delay_s + margin

    async def _epoch_for(self, media_start: float | None, rate: int, samples: int) -> Epoch | None:
        """The epoch this input frame continues (server.audio_input.continues), or a new
        one, built on the audio thread, with a fresh history and playout."""
        verdict = continues(self._epoch, media_start, rate)
        if verdict is None:
            return None
        if verdict and self._epoch is not None:
            return self._epoch
        options = self._frontend_options
        loop = asyncio.get_running_loop()
        flushes = self._flushes
        epoch = await loop.run_in_executor(
            self._analysis, new_epoch, media_start, rate, samples, options
        )
        if self._flushes != flushes:
            return None  # a flush came while it was built: this frame was before it
        self._epoch = epoch
        self._history = AudioHistory(RETURN_AUDIO_RATE)
        self._reset_playout()
        return epoch

    def _count_repairs(self, report: PcmReport) -> None:
        repaired = report.non_finite + report.clipped
        if repaired:
            self._stats.counters.repaired_samples += repaired
            self._metrics.audio_repaired.inc(repaired)

    # ---------------------------------------------------------------- output clocks

    async def _send_due(self, tick: int, now: float) -> None:
        """For the video clock (server.session_clocks): the frame of ``tick``, from the
        analysed audio due by ``now``."""
        await self._send_frame(tick, self._steps_due(now))

    def _count_dropped(self, missed: int) -> None:
        self._stats.counters.frames_dropped += missed
        self._metrics.video_frames_dropped.inc(missed)

    async def _send_frame(self, tick: int, steps: list[FrameFeatures]) -> None:
        """Render the frame of ``tick`` and publish it, raw and H.264."""
        loop = asyncio.get_running_loop()
        started = time.perf_counter()
        pts = tick * PTS_PER_VIDEO_FRAME
        hops = self._loud_hops() if self._stamp_frames else 0
        finish = partial(finish_frame, stamped=self._stamp_frames, hops=hops)
        image = await self._inference.render(self.portrait, steps, tick, finish)
        self._metrics.render_seconds.observe(time.perf_counter() - started)
        if len(self._video):
            self._video.publish(image, pts)
        if len(self._h264):  # encoded on its own thread, beside the next renders
            started = time.perf_counter()
            packets = await loop.run_in_executor(self._encode, self._encoder.encode, image, pts)
            self._metrics.stage_seconds.labels("encode").observe(time.perf_counter() - started)
            for packet in packets:
                self._h264.publish(packet, pts)
        self._stats.published(loop.time())
        self._metrics.video_frames.inc()

    def _loud_hops(self) -> int:
        """For the frame stamp: which 10 ms hops of the audio the shown frame was made
        from were loud (server.frame_stamp), read from the returned voice's history."""
        shown, history, epoch = self._shown, self._history, self._epoch
        if shown is None or history is None or epoch is None:
            return 0
        start = round((shown.index * VIDEO_PERIOD_S - epoch.lead_s) * RETURN_AUDIO_RATE)
        return loud_hops(history.read(start, round(VIDEO_PERIOD_S * RETURN_AUDIO_RATE)))

    def _steps_due(self, now: float) -> list[FrameFeatures]:
        """The analysed audio frames whose playout is due by ``now``, in order: all of
        them step the LSTM, the last one is shown."""
        media = self._clock.media_time_at(now)
        if media is None:
            return []
        due = math.floor(media * VIDEO_FPS)
        steps = []
        while self._ready and self._ready[0].index <= due:
            steps.append(self._ready.popleft())
        if steps:
            latency = self._stats.record_latency(steps[-1].index, now, self._arrivals)
            if latency is not None:
                self._metrics.latency.observe(latency)
            self._shown = steps[-1]
        if self._shown is None or self._shown.index < due:
            self._stats.counters.frames_late += 1
            self._metrics.video_frames_late.inc()
        return steps

    # ---------------------------------------------------------------- housekeeping

    async def _watchdog(self) -> None:
        loop = asyncio.get_running_loop()
        created = loop.time()
        while True:
            await asyncio.sleep(0.25)
            now = loop.time()
            if self._last_audio_at is None:
                if now - created > self._settings.connect_timeout_s:
                    self.request_close("no audio from the peer since the answer")
                    return
            elif now - self._last_audio_at > self._settings.media_timeout_s:
                self.request_close(f"no audio for {self._settings.media_timeout_s:.1f} s")
                return

    async def _stats_loop(self) -> None:
        while True:
            await asyncio.sleep(self._settings.stats_interval_s)
            self._voice_emotion = await self._inference.call(self.portrait.voice_emotion)
            stats = self.stats_message()
            export(self._metrics, self.id, stats)
            self._broadcast_control(stats)

    def video_fps(self, window_s: float = 1.0) -> float:
        return self._stats.fps(asyncio.get_running_loop().time(), window_s)

    def stats_message(self) -> dict:
        """The periodic stats; latency is the mean over frames shown since the last call."""
        lateness = self._margin.lateness_quantile()
        shown = self._shown
        capacity, connections = self._capacity, self._connections
        c = self._stats.counters
        return {
            "type": "stats",
            "fps": round(self.video_fps(), 2),
            "frames_sent": c.frames_sent,
            "frames_dropped": c.frames_dropped,
            "frames_late": c.frames_late,
            "audio_frames": c.audio_frames,
            "repaired_samples": c.repaired_samples,
            # Input packets given up (lost) or dropped for arriving too late, and concealed.
            "audio_lost": None if (rb := connections.receive_buffer) is None else rb.counts.lost,
            "audio_late": None if rb is None else rb.counts.late,
            "audio_level_db": None if shown is None else round(shown.level_db, 1),
            "voice": bool(shown and shown.voiced),
            "latency_ms": self._stats.take_mean_latency_ms(),
            "queue_delay_ms": round(len(self._ready) * VIDEO_PERIOD_S * 1000, 1),
            "pipeline_delay_ms": round(self.pipeline_delay_s * 1000, 1),
            "margin_ms": round(self._margin.value_s * 1000, 1),
            "margin": "auto" if self._margin.adaptive else "fixed",
            "lateness_p99_ms": None if lateness is None else round(lateness * 1000, 1),
            "viewers": connections.viewer_count,
            # The rate the server serves every session at (server.capacity), and why.
            "target_fps": VIDEO_FPS if capacity is None else round(capacity.fps, 2),
            "degraded": None if capacity is None else capacity.reason,
            "voice_emotion": self._voice_emotion,
        }
