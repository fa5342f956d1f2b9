"""A session's two output clocks, both asking its PlayoutClock (engine.playout) what media
time is due, so that a frame and the voice it was made from leave together:

    video_clock   25 fps ticks, put where frames fall due; a degraded server's share of
                  them served, late ones skipped; the session renders each one served
    return_voice  the input audio read back from its history, in 20 ms frames at
                  RETURN_AUDIO_RATE, published to the session's audio Broadcast
"""

import asyncio
import time
from collections.abc import Awaitable, Callable

import numpy as np

from engine.constants import VIDEO_PERIOD_S
from engine.playout import PlayoutClock
from server.audio_input import AUDIO_PERIOD_S, RETURN_AUDIO_RATE
from server.capacity import Capacity
from server.media import AudioHistory
from server.session_media import every_tick
from server.tracks import Broadcast

TICK_AFTER_DUE_S = 0.0005
# The face shown when media time m falls due is the mouth at m + 20 ms (the centre of
# its frame), and a receiver's lip sync takes each voice packet's RTP timestamp, mapped
# through the sender reports to when it was sent, as the time of its first sample. So
# the packet sent with that face starts at m + 20 ms: the voice is read 40 ms (half a
# video frame and one packet) past the media time due. Measured in Chromium (`evp bench
# av-sync`): face minus voice -38 / -48 ms (talk / watch page) reading at m, -9 / -8
# reading at m + 40 ms. The voice then needs the input through m + 40 ms at the tick of
# m: the look-ahead (and 1.5 ms) before the frame shown needs its own, so the margin that
# keeps frames on time (engine.playout) keeps the voice on time too.
VOICE_LEAD_S = VIDEO_PERIOD_S / 2 + AUDIO_PERIOD_S
CROSSFADE_S = 0.0025  # when the returned voice's read position jumps
MAX_AUDIO_SLIP = round(RETURN_AUDIO_RATE * 0.001)  # samples it may drift from the clock


async def video_clock(
    clock: PlayoutClock,
    capacity: Capacity | None,
    send_frame: Callable[[int, float], Awaitable[None]],
    dropped: Callable[[int], None],
) -> None:
    """The 25 fps clock. A degraded server (server.capacity) serves an even share of
    the ticks; a served tick whose deadline passed is skipped (counted as dropped), so
    a late frame never delays the next one.

    send_frame(tick, now): render and publish the frame of ``tick``, at loop time ``now``;
    dropped(n): ``n`` served ticks were skipped. capacity None: every tick is served."""
    loop = asyncio.get_running_loop()
    start = loop.time()
    tick = 0
    phase = 0.0  # where ticks fall after the clock's start (tick_phase)
    while True:
        serves = capacity.serves if capacity is not None else every_tick
        while not serves(tick):
            tick += 1
        # Ticks fall when a frame becomes due (its media time reaches playout), not
        # up to a period later at a phase of their own: 20 ms less latency on average.
        phase = tick_phase(clock, start, phase)
        origin = start + phase
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
            dropped(missed)
            if capacity is not None:
                capacity.ticked(None, missed)
        started = time.perf_counter()
        await send_frame(tick, now)
        if capacity is not None:
            capacity.ticked(time.perf_counter() - started)
        tick += 1


def tick_phase(clock: PlayoutClock, start: float, phase_s: float) -> float:
    """Seconds from ``start`` to where frames fall due on ``clock`` (modulo a period),
    moved from ``phase_s``, the last: frame k is due at offset + delay + k / fps
    (engine.playout), plus 0.5 ms so that the clock reads frame k, not the end of k - 1.
    Before any audio: ``phase_s``."""
    if not clock.started:
        return phase_s
    due = clock.offset_s + clock.delay_s + TICK_AFTER_DUE_S
    wanted = (due - start) % VIDEO_PERIOD_S
    # Unwrapped: a phase moving across a period's edge moves the ticks by what it
    # moved, not by a whole period (which would send two frames back to back).
    step = (wanted - phase_s + VIDEO_PERIOD_S / 2) % VIDEO_PERIOD_S - VIDEO_PERIOD_S / 2
    return phase_s + step


async def return_voice(
    clock: PlayoutClock, history: Callable[[], AudioHistory | None], audio: Broadcast
) -> None:
    """Return the input audio, delayed by the pipeline delay less VOICE_LEAD_S, in 20 ms
    frames: each frame starts with the sound of the mouth the face shows as it is sent.

    Each frame reads the history (``history()``: the current epoch's, None when idle)
    where the clock says its tick is (at the tick's own time, not the wake-up's, so
    scheduling jitter moves nothing). When the clock moves (the margin changed, an
    earlier arrival re-anchored it), the read position jumps to it with a short
    crossfade: no click, and voice and face stay on the same clock."""
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
        current = history()
        media = clock.media_time_of(due)
        if current is None or media is None:
            samples = np.zeros(count, np.float32)
            position = None
        else:
            target = round((media + VOICE_LEAD_S) * rate) - count
            if position is None:
                samples = current.read(target, count)
            elif abs(target - position) > MAX_AUDIO_SLIP:
                samples = current.read(target, count)
                samples[: fade.size] *= fade
                samples[: fade.size] += (1 - fade) * current.read(position, fade.size)
            else:
                samples, target = current.read(position, count), position
            position = target + count
        audio.publish(samples, round(tick * AUDIO_PERIOD_S * rate))
        tick += 1
