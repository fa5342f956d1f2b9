"""In-process WebRTC: a real aiortc peer streams real speech to the running server."""

import asyncio
import gc
import os
import signal
import subprocess
import sys
import time
import weakref
from pathlib import Path

import aiohttp
import pytest

from engine.constants import SAMPLE_RATE
from server.bench.client import Peer, WavMicrophone, wait_for
from server.session_clocks import VOICE_LEAD_S
from tests.server.streams import assert_on_the_media_clock, default_frame_size

ROOT = Path(__file__).resolve().parents[2]


async def control(url: str, peer: Peer):
    http = aiohttp.ClientSession()
    ws = await http.ws_connect(f"{url}/api/sessions/{peer.session_id}/control?token={peer.token}")
    return http, ws


async def next_of(ws, kind: str, timeout: float = 5.0) -> dict:
    deadline = time.monotonic() + timeout
    while True:
        message = await ws.receive_json(timeout=max(0.01, deadline - time.monotonic()))
        if message["type"] == kind:
            return message


async def test_real_speech_round_trip(server, speech):
    mic = WavMicrophone(speech, SAMPLE_RATE)
    peer = Peer(server.url, mic)
    await peer.talk()
    http, ws = await control(server.url, peer)
    try:
        state = await next_of(ws, "state")
        assert state["emotion"]["emotion"] == "neutral"
        await ws.send_json(
            {"type": "set_emotion", "emotion": "happy", "intensity": 0.8, "transition_ms": 200}
        )
        state = await next_of(ws, "state")
        assert state["emotion"] | {"version": 0} == {
            "mode": "manual",
            "emotion": "happy",
            "intensity": 0.8,
            "transition_ms": 200,
            "version": 0,
        }
        await ws.send_str("{not json")
        assert "not valid JSON" in (await next_of(ws, "error"))["message"]
        await ws.send_str("[" * 4000)  # under the size limit, deeper than json can parse
        assert "nested too deeply" in (await next_of(ws, "error"))["message"]
        await ws.send_json({"type": "blend", "from": "sad", "to": "happy", "alpha": 2})
        assert "alpha must be a number in [0, 1]" in (await next_of(ws, "error"))["message"]
        await ws.send_json({"type": "blend", "from": "sad", "to": "happy", "alpha": 0.3})
        assert (await next_of(ws, "state"))["emotion"]["alpha"] == 0.3

        await wait_for(lambda: len(peer.received.video_times) >= 25 * 7, timeout=15)
        stats = [await next_of(ws, "stats") for _ in range(3)]
    finally:
        await ws.close()
        await http.close()

    # Paced by the session's clock whatever this machine's speed (tests/server/test_pacing.py
    # checks the counts with a frame cost it controls; `evp bench` measures the rate).
    assert_on_the_media_clock(peer.received)
    assert peer.received.video_sizes == {default_frame_size()}
    sent = [s["frames_sent"] for s in stats]  # counted by the session, once a second
    assert sent == sorted(sent) and sent[-1] > sent[0], stats
    assert any(s["voice"] for s in stats) and max(s["audio_level_db"] for s in stats) > -45
    delay_s = stats[-1]["pipeline_delay_ms"] / 1000
    assert all(
        s["latency_ms"] is not None and s["latency_ms"] / 1000 < delay_s + 0.02 for s in stats
    )

    # The returned audio is our speech, delayed by the pipeline delay less the voice's
    # lead over the media time due (server.session_clocks.VOICE_LEAD_S), plus the
    # transport: this client's aiortc audio receiver prefetches 4 packets (80 ms; the
    # server's own receive buffer hands packets on in order at once), Opus adds ~7 ms
    # each way and the 20 ms send tick up to 20 ms.
    lag = peer.returned_audio_lag(mic, speech, SAMPLE_RATE)
    sent_s = delay_s - VOICE_LEAD_S
    assert sent_s + 0.1 <= lag <= sent_s + 0.25, (
        f"returned audio lags {lag:.2f} s, pipeline delay {delay_s:.3f} s"
    )

    await peer.close()
    await wait_for(lambda: not server.evp.sessions, timeout=5)


async def test_close_releases_session_tasks_and_memory(server, speech):
    peer = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    await peer.talk()
    session = server.evp.sessions[peer.session_id]
    ref = weakref.ref(session)
    await wait_for(lambda: len(peer.received.video_times) > 10, timeout=10)
    assert session.task_count == 5  # video, audio, stats, watchdog, receive-audio
    del session
    await peer.close()
    await wait_for(lambda: not server.evp.sessions, timeout=5)
    await asyncio.sleep(0.1)
    assert not [t for t in asyncio.all_tasks() if t.get_name().startswith("session ")]
    gc.collect()
    assert ref() is None, "the closed session is still referenced"
    metrics = await fetch_text(f"{server.url}/metrics")
    assert "evp_sessions 0.0" in metrics and "evp_sessions_started_total 1.0" in metrics


async def fetch_text(url: str) -> str:
    async with aiohttp.ClientSession() as http, http.get(url) as r:
        return await r.text()


async def test_viewer_receives_the_same_stream(server, speech):
    talker = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    await talker.talk()
    viewer = Peer(server.url, None)
    await viewer.watch(talker.session_id, talker.token)
    await wait_for(lambda: len(viewer.received.video_times) >= 25 * 4, timeout=12)
    assert_on_the_media_clock(viewer.received)
    assert viewer.received.video_sizes == {default_frame_size()}
    assert server.evp.sessions[talker.session_id].viewer_count == 1
    assert len(viewer.received.audio) > 100

    bad = Peer(server.url, None)
    async with aiohttp.ClientSession() as http:
        await bad.pc.setLocalDescription(await bad.pc.createOffer())
        offer = {"sdp": bad.pc.localDescription.sdp, "type": "offer"}
        async with http.post(
            f"{server.url}/api/sessions/{talker.session_id}/viewers?token=nope", json=offer
        ) as r:
            assert r.status == 403
    await bad.close()
    await viewer.close()
    await wait_for(lambda: server.evp.sessions[talker.session_id].viewer_count == 0, timeout=5)
    await talker.close()
    await wait_for(lambda: not server.evp.sessions, timeout=5)


async def test_bad_requests_get_clear_errors(server):
    async with aiohttp.ClientSession() as http:

        async def post(body, raw=False):
            kwargs = {"data": body} if raw else {"json": body}
            async with http.post(f"{server.url}/api/offer", **kwargs) as r:
                return r.status, await r.json()

        assert (await post("hello", raw=True))[0] == 400
        status, body = await post({"type": "offer"})
        assert status == 400 and "sdp" in body["error"]
        status, body = await post({"type": "offer", "sdp": "this is not SDP"})
        assert status == 400 and "v=0" in body["error"]
        status, body = await post({"type": "offer", "sdp": "v=0\r\nm=video\r\n"})
        assert status == 400 and "cannot parse the SDP offer (AssertionError)" in body["error"]
        status, body = await post("[" * 5000, raw=True)
        assert status == 400 and "nested too deeply" in body["error"]
        status, body = await post('{"type": "offer", "n": ' + "9" * 5000 + "}", raw=True)
        assert status == 400 and "digits" in body["error"]  # Python's limit on int digits
        watcher = Peer(server.url, None)  # receive-only: sends no microphone
        await watcher.pc.setLocalDescription(await watcher.pc.createOffer())
        status, body = await post({"type": "offer", "sdp": watcher.pc.localDescription.sdp})
        assert status == 400 and "microphone" in body["error"]
        status, body = await post(
            {"type": "offer", "sdp": watcher.pc.localDescription.sdp, "avatar": "../etc"}
        )
        assert status == 400 and "invalid avatar name" in body["error"]
        await watcher.close()

        async with http.get(f"{server.url}/api/sessions/nope/control?token=x") as r:
            assert r.status == 404
        for path in ("/healthz", "/api/emotions", "/api/avatars"):
            async with http.get(server.url + path) as r:
                assert r.status == 200
        async with http.get(server.url + "/api/avatars") as r:
            assert [a["name"] for a in (await r.json())["avatars"]] == ["default"]
    assert not server.evp.sessions


async def test_wrong_token_and_foreign_origin_are_refused(server, speech):
    peer = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    await peer.talk()
    async with aiohttp.ClientSession() as http:
        url = f"{server.url}/api/sessions/{peer.session_id}/control"
        with pytest.raises(aiohttp.WSServerHandshakeError) as refused:
            await http.ws_connect(f"{url}?token=wrong")
        assert refused.value.status == 403
        with pytest.raises(aiohttp.WSServerHandshakeError) as foreign:
            await http.ws_connect(
                f"{url}?token={peer.token}", headers={"Origin": "https://evil.example"}
            )
        assert foreign.value.status == 403
        ws = await http.ws_connect(f"{url}?token={peer.token}", headers={"Origin": server.url})
        assert (await next_of(ws, "state"))["session_id"] == peer.session_id
        await ws.close()
    await peer.close()


@pytest.fixture
def settings(make_settings):
    return make_settings(max_sessions=1, media_timeout_s=1.5)


async def test_capacity_refuses_with_503_and_frees_on_close(server, speech):
    first = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    await first.talk()
    await wait_for(lambda: first.received.video_times, timeout=10)
    second = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    await second.pc.setLocalDescription(await second.pc.createOffer())
    async with aiohttp.ClientSession() as http:
        offer = {"sdp": second.pc.localDescription.sdp, "type": "offer"}
        async with http.post(f"{server.url}/api/offer", json=offer) as r:
            assert r.status == 503 and "capacity" in (await r.json())["error"]
    await second.close()
    await first.close()
    await wait_for(lambda: not server.evp.sessions, timeout=5)
    again = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    await again.talk()
    await wait_for(lambda: again.received.video_times, timeout=10)
    await again.close()


async def test_peer_that_vanishes_mid_stream_is_released(server, shared_data):
    wav = shared_data / "speech" / "evp_obama.wav"
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    process = subprocess.Popen(  # noqa: ASYNC220 - started once; the test kills it mid-stream
        [sys.executable, "-m", "tests.peer_process", server.url, str(wav)],
        stdout=subprocess.PIPE,
        cwd=ROOT,
        env=env,
    )
    try:
        loop = asyncio.get_running_loop()
        session_id = (
            (await asyncio.wait_for(loop.run_in_executor(None, process.stdout.readline), 30))
            .decode()
            .strip()
        )
        ref = weakref.ref(server.evp.sessions[session_id])
        await wait_for(lambda: ref().audio_frames_received > 50, timeout=10)
        process.send_signal(signal.SIGKILL)  # no goodbye: no DTLS close, no RTCP BYE
        killed_at = time.monotonic()
        await wait_for(lambda: not server.evp.sessions, timeout=10)
        assert time.monotonic() - killed_at < 1.5 + 2.0  # media timeout + watchdog + close
        gc.collect()
        assert ref() is None
    finally:
        process.kill()
        process.wait()
        process.stdout.close()
