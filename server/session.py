"""One talking peer: its WebRTC connection, audio analysis, playout clock, tracks and tasks.

Data flow inside a session::

    peer mic --(aiortc)--> _receive_audio --(audio thread)--> AudioFrontEnd --> _ready frames
                                  \\--> AudioHistory (mono, input rate)
    _video_loop (25 fps clock) : PlayoutClock -> audio frames due -> InferenceWorker (batched
                                 with other sessions: emotion, Ec + LSTM, 3D-aware pose,
                                 guidance, generator, compositing, I420) -> video Broadcast
    _audio_loop (50 Hz clock)  : PlayoutClock -> samples due -> audio Broadcast
    Broadcasts --> the peer's senders and every viewer's senders

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
from collections.abc import Callable
from concurrent.futures import Executor
from dataclasses import replace
from functools import partial
from typing import Protocol

import numpy as np
from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamError, MediaStreamTrack

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
from server.audio_input import AUDIO_PERIOD_S, RETURN_AUDIO_RATE, Epoch, analyse, next_epoch
from server.capacity import Capacity
from server.control import Auto, Blend, Command, ControlError, Flush, SetEmotion
from server.frame_stamp import loud_hops
from server.inference import InferenceWorker
from server.media import AudioHistory, audio_frame_to_planar, yuv420p_frame
from server.metrics import ServerMetrics
from server.offer import OfferError, check_offer
from server.receive_buffer import AudioReceiveBuffer
from server.session_media import (
    every_tick,
    finish_frame,
    install_audio_buffer,
    packet_payload,
    return_audio_frame,
    sent_tracks,
)
from server.session_stats import SessionStats, export
from server.settings import ServerSettings
from server.tasks import TaskSupervisor
from server.tracks import Broadcast, SubscriberTrack
from server.video_encoder import h264_preferences, offers_h264

logger = logging.getLogger(__name__)

TICK_AFTER_DUE_S = 0.0005
CROSSFADE_S = 0.0025  # when the returned voice's read position jumps
MAX_AUDIO_SLIP = round(RETURN_AUDIO_RATE * 0.001)  # samples it may drift from the clock


class ControlSink(Protocol):
    """Where a session pushes state and stats: a control socket (server.control_socket)."""

    def send(self, message: dict) -> None: ...

    async def close(self, reason: str) -> None: ...


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
        self._frontend_options = FrontEndOptions(window=settings.window)
        # The delay the model and the frame need; the margin on top follows measurement.
        self._base_delay_s = (
            VIDEO_PERIOD_S
            + settings.window.lookahead_seconds
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
        self._pc = self._new_peer_connection()
        self._viewers: set[RTCPeerConnection] = set()
        self._control_channels: set[ControlSink] = set()
        self._receive_buffer: AudioReceiveBuffer | None = None
        self._epoch: Epoch | None = None
        self._history: AudioHistory | None = None
        self._ready: deque[FrameFeatures] = deque()
        self._arrivals: deque[tuple[float, float]] = deque(maxlen=256)  # (media_end_s, arrival)
        self._shown: FrameFeatures | None = None
        self._voice_emotion: dict | None = None
        self._stats = SessionStats()
        self._last_audio_at: float | None = None
        self._phase_s = 0.0  # where ticks fall after the video clock's start (_tick_phase)
        self._close_task: asyncio.Task | None = None
        self._closing = False
        self.closed = asyncio.Event()

    # ---------------------------------------------------------------- lifecycle

    def _new_peer_connection(self) -> RTCPeerConnection:
        servers = [RTCIceServer(url) for url in self._settings.ice_servers]
        return RTCPeerConnection(RTCConfiguration(iceServers=servers))

    async def accept_offer(self, sdp: str) -> RTCSessionDescription:
        """Apply the peer's offer and return our answer. Raises OfferError on bad offers."""
        check_offer(sdp, need_send_audio=True)
        pc = self._pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio":
                self.attach_microphone(track)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self.request_close(f"peer connection {pc.connectionState}")

        video = self._video_track(pc, sdp)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as e:  # aiortc reports bad SDP with several exception types
            raise OfferError(f"cannot apply the SDP offer: {e}") from e
        self._receive_buffer = install_audio_buffer(pc, self._settings.receive_buffer_packets)
        pc.addTrack(self._audio.subscribe())
        if video not in sent_tracks(pc):
            pc.addTrack(video)
        await pc.setLocalDescription(await pc.createAnswer())
        return pc.localDescription

    def _video_track(self, pc: RTCPeerConnection, sdp: str) -> SubscriberTrack:
        """Before the offer is applied: the session's shared H.264 packets if the offer
        takes H.264 (a sending transceiver that prefers only H.264 is made for it, since
        aiortc negotiates codecs when the offer is applied), else frames for aiortc to
        encode (added to the connection by the caller)."""
        if not offers_h264(sdp):
            return self._video.subscribe()
        track = self._h264.subscribe()
        transceiver = pc.addTransceiver(track, direction="sendonly")
        transceiver.setCodecPreferences(h264_preferences())
        # aiortc answers a receiver's PLI/FIR by flagging its own encoder, which packets
        # bypass: route the request to the shared encoder (rate-limited there).
        transceiver.sender._send_keyframe = self._encoder.request_keyframe
        self._encoder.request_keyframe()  # where the new receiver starts decoding
        return track

    async def add_viewer(self, sdp: str) -> RTCSessionDescription:
        """Answer a receive-only offer with this session's video and audio."""
        check_offer(sdp, need_send_audio=False)
        if len(self._viewers) >= self._settings.max_viewers:
            raise OfferError(
                f"this session already has {self._settings.max_viewers} viewers, the maximum"
            )
        pc = self._new_peer_connection()
        self._viewers.add(pc)
        self._metrics.viewers.inc()
        tracks: list[SubscriberTrack] = []

        @pc.on("connectionstatechange")
        async def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                await self._drop_viewer(pc, tracks)

        try:
            tracks.append(self._video_track(pc, sdp))
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
            tracks.append(self._audio.subscribe())
            for track in tracks:
                if track not in sent_tracks(pc):
                    pc.addTrack(track)
            await pc.setLocalDescription(await pc.createAnswer())
        except Exception as e:
            await self._drop_viewer(pc, tracks)
            raise OfferError(f"cannot answer the viewer offer: {e}") from e
        return pc.localDescription

    async def _drop_viewer(self, pc: RTCPeerConnection, tracks: list) -> None:
        if pc in self._viewers:
            self._viewers.discard(pc)
            self._metrics.viewers.dec()
        for track in tracks:
            track.stop()
        await pc.close()

    def attach_microphone(self, track: MediaStreamTrack) -> None:
        """Analyse and return the audio of ``track`` (any rate, layout and sample format)."""
        self._tasks.spawn(self._receive_audio(track), "receive-audio")

    def start(self) -> None:
        self._tasks.spawn(self._video_loop(), "video-clock")
        self._tasks.spawn(self._audio_loop(), "audio-clock")
        self._tasks.spawn(self._stats_loop(), "stats")
        self._tasks.spawn(self._watchdog(), "watchdog")

    def request_close(self, reason: str) -> None:
        """Close from anywhere (callbacks, tasks of this session) without awaiting."""
        if self._close_task is None:
            self._close_task = asyncio.get_running_loop().create_task(
                self.aclose(reason), name=f"session {self.id}:close"
            )

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
            for channel in list(self._control_channels):
                await channel.close(reason)
            for pc in list(self._viewers):
                await pc.close()
            self._metrics.viewers.dec(len(self._viewers))
            self._viewers.clear()
            await self._pc.close()
            await self._inference.call(self.portrait.close)
        finally:  # whatever failed above, the session is gone and its slot is free
            self._metrics.forget_session(self.id)
            self._epoch = None
            self._history = None
            self._ready.clear()
            self.closed.set()
            self._on_closed(self)

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
        return len(self._viewers)

    # ---------------------------------------------------------------- control

    def add_control_channel(self, channel: ControlSink) -> None:
        self._control_channels.add(channel)

    def remove_control_channel(self, channel: ControlSink) -> None:
        self._control_channels.discard(channel)

    def apply(self, command: Command) -> None:
        """Apply a validated control command and push the new state to every socket.
        Raises ControlError (and changes nothing) if the model cannot show it."""
        version = self.emotion.version + 1
        emotion = self.emotion
        if isinstance(command, SetEmotion):
            emotion = EmotionState(
                mode="manual",
                emotion=command.emotion,
                intensity=command.intensity,
                transition_ms=command.transition_ms,
                version=version,
            )
        elif isinstance(command, Blend):
            emotion = EmotionState(
                mode="blend",
                blend_from=command.source,
                blend_to=command.target,
                alpha=command.alpha,
                transition_ms=command.transition_ms,
                version=version,
            )
        elif isinstance(command, Auto):
            emotion = replace(
                emotion, mode="auto", transition_ms=command.transition_ms, version=version
            )
        elif isinstance(command, Flush):
            emotion = replace(emotion, version=version)
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
                frame = await track.recv()
            except MediaStreamError:
                return
            arrival = loop.time()
            self._last_audio_at = arrival
            self._stats.counters.audio_frames += 1
            self._metrics.audio_frames.inc()
            planar = audio_frame_to_planar(frame)
            rate = frame.sample_rate
            media_start = float(frame.pts * frame.time_base) if frame.pts is not None else None
            epoch = self._epoch_for(media_start, rate, planar.shape[1])
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

    def _epoch_for(self, media_start: float | None, rate: int, samples: int) -> Epoch | None:
        """The epoch this input frame continues (server.audio_input.next_epoch); a new
        epoch gets a fresh history and playout."""
        epoch, new = next_epoch(self._epoch, media_start, rate, samples, self._frontend_options)
        if new:
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

    async def _video_loop(self) -> None:
        """The 25 fps clock. A degraded server (server.capacity) serves an even share of
        the ticks; a served tick whose deadline passed is skipped (counted as dropped), so
        a late frame never delays the next one."""
        loop = asyncio.get_running_loop()
        capacity = self._capacity
        start = loop.time()
        tick = 0
        while True:
            serves = capacity.serves if capacity is not None else every_tick
            while not serves(tick):
                tick += 1
            # Ticks fall when a frame becomes due (its media time reaches playout), not
            # up to a period later at a phase of their own: 20 ms less latency on average.
            origin = start + self._tick_phase(start)
            due = origin + tick * VIDEO_PERIOD_S
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            now = loop.time()
            # Late past the next tick served: skip to the latest one due, rather than send
            # a late burst (a tick is served late only until the next one is due).
            latest, t = tick, tick + 1
            while origin + t * VIDEO_PERIOD_S <= now:
                latest = t if serves(t) else latest
                t += 1
            if latest > tick:
                missed = sum(1 for t in range(tick, latest) if serves(t))
                tick = latest
                self._stats.counters.frames_dropped += missed
                self._metrics.video_frames_dropped.inc(missed)
                if capacity is not None:
                    capacity.ticked(None, missed)
            started = time.perf_counter()
            await self._send_frame(tick, self._steps_due(now))
            if capacity is not None:
                capacity.ticked(time.perf_counter() - started)
            tick += 1

    def _tick_phase(self, start: float) -> float:
        """Seconds from ``start`` to where frames fall due on our clock (modulo a period):
        frame k is due at offset + delay + k / fps (engine.playout), plus 0.5 ms so that
        the clock reads frame k, not the end of k - 1. Before any audio: where it was."""
        if not self._clock.started:
            return self._phase_s
        due = self._clock.offset_s + self._clock.delay_s + TICK_AFTER_DUE_S
        wanted = (due - start) % VIDEO_PERIOD_S
        # Unwrapped: a phase moving across a period's edge moves the ticks by what it
        # moved, not by a whole period (which would send two frames back to back).
        step = (wanted - self._phase_s + VIDEO_PERIOD_S / 2) % VIDEO_PERIOD_S - VIDEO_PERIOD_S / 2
        self._phase_s += step
        return self._phase_s

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

    async def _audio_loop(self) -> None:
        """Return the input audio, delayed by exactly the pipeline delay, in 20 ms frames.

        Each frame reads the history where the clock says its tick is (at the tick's own
        time, not the wake-up's, so scheduling jitter moves nothing). When the clock moves
        (the margin changed, an earlier arrival re-anchored it), the read position jumps to
        it with a short crossfade: no click, and voice and face stay on the same clock."""
        loop = asyncio.get_running_loop()
        start = loop.time()
        tick = 0
        position: int | None = None  # next history sample to send
        rate = RETURN_AUDIO_RATE
        count = round(rate * AUDIO_PERIOD_S)
        fade = np.linspace(0.0, 1.0, round(rate * CROSSFADE_S), dtype=np.float32)
        while True:
            due = start + tick * AUDIO_PERIOD_S
            if (wait := due - loop.time()) > 0:
                await asyncio.sleep(wait)
            if (behind := int((loop.time() - due) / AUDIO_PERIOD_S)) > 0:
                tick += behind
                due = start + tick * AUDIO_PERIOD_S
            history = self._history
            media = self._clock.media_time_of(due)
            if history is None or media is None:
                samples = np.zeros(count, np.float32)
                position = None
            else:
                target = round(media * rate) - count
                if position is None:
                    samples = history.read(target, count)
                elif abs(target - position) > MAX_AUDIO_SLIP:
                    samples = history.read(target, count)
                    samples[: fade.size] *= fade
                    samples[: fade.size] += (1 - fade) * history.read(position, fade.size)
                else:
                    samples, target = history.read(position, count), position
                position = target + count
            self._audio.publish(samples, round(tick * AUDIO_PERIOD_S * rate))
            tick += 1

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
        capacity = self._capacity
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
            "audio_lost": None if (rb := self._receive_buffer) is None else rb.counts.lost,
            "audio_late": None if rb is None else rb.counts.late,
            "audio_level_db": None if shown is None else round(shown.level_db, 1),
            "voice": bool(shown and shown.voiced),
            "latency_ms": self._stats.take_mean_latency_ms(),
            "queue_delay_ms": round(len(self._ready) * VIDEO_PERIOD_S * 1000, 1),
            "pipeline_delay_ms": round(self.pipeline_delay_s * 1000, 1),
            "margin_ms": round(self._margin.value_s * 1000, 1),
            "margin": "auto" if self._margin.adaptive else "fixed",
            "lateness_p99_ms": None if lateness is None else round(lateness * 1000, 1),
            "viewers": len(self._viewers),
            # The rate the server serves every session at (server.capacity), and why.
            "target_fps": VIDEO_FPS if capacity is None else round(capacity.fps, 2),
            "degraded": None if capacity is None else capacity.reason,
            "voice_emotion": self._voice_emotion,
        }
