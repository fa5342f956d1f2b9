"""Pacing through real WebRTC with an engine whose frame cost the test sets (fakes.py).

The figures asserted here are counts and timestamps that follow from the cost the test
chose, so they hold on a fast machine, a slow one, or one with a busy core. Throughput of
the real pipeline is measured by ``evp bench``, never here.
"""

import asyncio

import aiohttp
import numpy as np
import pytest

from engine.constants import SAMPLE_RATE, VIDEO_FPS
from engine.playout import MarginPolicy
from server.bench.analysis import clean_stamps, stamp_latencies
from server.bench.client import Peer, WavMicrophone, fetch_metrics, free_local_port, wait_for
from server.capacity import TARGET
from server.frame_stamp import read_stamp
from server.settings import ServerSettings
from tests.server.fakes import FixedCostEngine
from tests.server.streams import assert_on_the_media_clock, frame_steps

PERIOD_S = 1 / VIDEO_FPS


class StampedPeer(Peer):
    """A benchmark peer that keeps the stamp of every received frame (server.frame_stamp:
    the audio frame it shows, + 1)."""

    def __init__(self, url: str, signal: np.ndarray) -> None:
        self.mic = WavMicrophone(signal, SAMPLE_RATE)
        super().__init__(url, self.mic, video_sink=self._read)
        self.stamps: list[int | None] = []

    def _read(self, frame, arrival: float) -> None:
        self.stamps.append(read_stamp(frame.to_ndarray(format="gray")))

    def shown(self) -> np.ndarray:
        """The audio frame each frame showing audio was made from, in arrival order."""
        stamps = clean_stamps(self.stamps)
        return stamps[stamps > 0] - 1

    def latencies(self) -> np.ndarray:
        """Arrival of each frame showing audio minus the capture of that audio frame's end
        (client clock only), seconds, in arrival order (as ``evp bench live`` times it)."""
        stamps = clean_stamps(self.stamps)
        times = np.array(self.received.video_times[: stamps.size])
        return stamp_latencies(times, stamps, self.mic.started_at)


def growth(values: np.ndarray) -> float:
    """Median of the last third minus the median of the first third."""
    third = values.size // 3
    return float(np.median(values[-third:]) - np.median(values[:third]))


async def talk_for(server, speech, seconds: float, sessions: int = 1) -> list[StampedPeer]:
    peers = [StampedPeer(server.url, speech) for _ in range(sessions)]
    for peer in peers:
        await peer.talk(bench=True)
    await wait_for(lambda: all(p.mic.started_at is not None for p in peers), timeout=10)
    await asyncio.sleep(seconds)
    return peers


def server_stats(server, peer: Peer) -> dict:
    return server.evp.sessions[peer.session_id].stats_message()


async def close_all(server, peers: list[Peer]) -> None:
    for peer in peers:
        await peer.close()
    await wait_for(lambda: not server.evp.sessions, timeout=10)


@pytest.fixture
def frame_cost_s() -> float:
    return 0.005


@pytest.fixture
def render_threads() -> int:
    return 2


@pytest.fixture
def max_sessions() -> int | None:
    return None  # auto


@pytest.fixture
def settings(render_threads, max_sessions) -> ServerSettings:
    # A fixed margin: these tests are about pacing under a frame cost they set, and a
    # measured margin would rise with this host's own contention (it is tested with a
    # controlled clock in tests/engine/test_playout.py).
    return ServerSettings(
        port=free_local_port(),
        media_timeout_s=10.0,
        render_threads=render_threads,
        max_sessions=max_sessions,
        margin=MarginPolicy(fixed_s=0.08),
    )


@pytest.fixture
def load_engine(frame_cost_s):
    return FixedCostEngine.loader(frame_cost_s)


async def test_a_cheap_frame_goes_out_on_every_tick_in_step_with_its_voice(server, speech):
    (peer,) = await talk_for(server, speech, seconds=5)
    try:
        stats = server_stats(server, peer)
        delay_s = stats["pipeline_delay_ms"] / 1000
        lag = peer.returned_audio_lag(peer.mic, speech, SAMPLE_RATE)
    finally:
        await close_all(server, [peer])
    assert_on_the_media_clock(peer.received)
    ticks = stats["frames_sent"] + stats["frames_dropped"]
    assert stats["frames_dropped"] <= 0.05 * ticks, stats
    assert np.mean(frame_steps(peer.received) == 1) > 0.9
    shown = peer.shown()
    assert shown.size > 75 and np.all(np.diff(shown) >= 0)  # its audio frames, in order
    # Each frame leaves when its audio is due: the pipeline delay after that audio was
    # captured, plus delivery (RTP, decode) on this host.
    latency = peer.latencies()
    assert delay_s <= np.median(latency) <= delay_s + 0.15, (delay_s, np.median(latency))
    assert growth(latency) < 0.04  # constant: the face never falls behind the voice
    # The returned voice is delayed by the same clock: its lag differs from the picture's
    # by the audio path's buffers (aiortc prefetches 80 ms at the receiver), not by more.
    assert abs(lag - np.median(latency)) < 0.12, (lag, np.median(latency))


@pytest.mark.parametrize("frame_cost_s", [1.5 * PERIOD_S])
async def test_a_frame_slower_than_the_period_degrades_evenly_and_latency_holds(server, speech):
    (peer,) = await talk_for(server, speech, seconds=5)
    try:
        stats = server_stats(server, peer)
        delay_s = stats["pipeline_delay_ms"] / 1000
        async with aiohttp.ClientSession() as http:
            metrics = await fetch_metrics(http, server.url)
    finally:
        await close_all(server, [peer])
    # A frame costs 60 ms: the server serves every second tick (12.5 fps), or every third
    # (8.3 fps) where this host's own per-frame work (compositing, encode, the in-process
    # client) leaves no room for 60 ms at 12.5; says so in the session's stats and in
    # /metrics, only ever going down in 5 s; and the stream's media time keeps pace.
    step = round(VIDEO_FPS / stats["target_fps"])
    assert step in (2, 3) and stats["degraded"], stats
    assert metrics["evp_degraded"] == 1 and metrics["evp_output_fps"] == pytest.approx(
        stats["target_fps"], abs=0.005
    )
    assert metrics["evp_degradations_total"] <= step - 1  # down a rung at a time, never up
    assert_on_the_media_clock(peer.received)
    steps = frame_steps(peer.received)
    assert np.mean(steps[steps.size // 2 :] == step) >= 0.9, steps  # even, once degraded
    latency = peer.latencies()
    assert growth(latency) < 0.04, "latency grew while the engine was slow"
    # Within the pipeline delay plus the frame's cost, the lateness of a tick taken after
    # the last render (under a period), and delivery: aiortc's receiver hands a frame on
    # when the next one starts arriving, ``step`` periods later here.
    bound = delay_s + 1.5 * PERIOD_S + PERIOD_S + step * PERIOD_S + 0.1
    assert np.median(latency) <= bound, (delay_s, np.median(latency))


# Two sessions at 22 ms a frame need 44 ms of render time in a 40 ms period: one render
# thread cannot serve them at full rate (auto admission would refuse the second; a fixed
# --max-sessions 2 admits it), two can. Whether two sessions reach 25 fps also depends on
# the CPU left for their encodes and the in-process clients (not on a busy core), so the
# second test asserts what the render threads decide: they are not the limit.
@pytest.mark.parametrize(
    ("frame_cost_s", "render_threads", "max_sessions"), [(0.55 * PERIOD_S, 1, 2)]
)
async def test_sessions_that_overload_the_render_threads_degrade_evenly(server, speech):
    peers = await talk_for(server, speech, seconds=5, sessions=2)
    try:
        stats = [server_stats(server, peer) for peer in peers]
        pool = server.evp.capacity.load_of(2).pool  # both sessions at full rate
    finally:
        await close_all(server, peers)
    assert pool > 1.0  # 44 ms of renders a period on one thread
    sent = [s["frames_sent"] for s in stats]
    assert min(sent) >= 0.7 * max(sent), stats
    rates = {s["target_fps"] for s in stats}  # one lower rate for both
    assert len(rates) == 1 and rates.pop() < VIDEO_FPS and stats[0]["degraded"], stats
    for peer in peers:
        assert_on_the_media_clock(peer.received)
        assert growth(peer.latencies()) < 0.04


@pytest.mark.parametrize(("frame_cost_s", "render_threads"), [(0.55 * PERIOD_S, 2)])
async def test_two_render_threads_carry_two_sessions_that_overload_one(server, speech):
    peers = await talk_for(server, speech, seconds=5, sessions=2)
    try:
        stats = [server_stats(server, peer) for peer in peers]
        pool = server.evp.capacity.load_of(2).pool
    finally:
        await close_all(server, peers)
    assert pool < TARGET  # the same renders, measured, over two threads
    assert len({s["target_fps"] for s in stats}) == 1, stats
    for s, peer in zip(stats, peers, strict=True):
        assert "pool" not in (s["degraded"] or ""), s
        if s["degraded"] is None:  # an idle machine: every tick
            ticks = s["frames_sent"] + s["frames_dropped"]
            assert s["frames_dropped"] <= 0.05 * ticks, s
            assert np.mean(frame_steps(peer.received) == 1) > 0.9
        # The media clock, not the clients' latency: two sessions at full rate beside a
        # busy core starve these in-process clients' decoders (their latency grew by 48 ms
        # once), which says nothing about the server (its no-growth is asserted above).
        assert_on_the_media_clock(peer.received)
