"""Viewers share the session's one H.264 encode; receivers without H.264 still work."""

import aiohttp
import pytest
from aiortc import RTCPeerConnection, RTCRtpSender

from engine.constants import SAMPLE_RATE
from server.bench.client import Peer, WavMicrophone, wait_for
from tests.server.fakes import FixedCostEngine
from tests.server.streams import assert_on_the_media_clock, default_frame_size


@pytest.fixture
def load_engine():
    return FixedCostEngine.loader(0.005)  # fan-out does not need the real renderer


@pytest.fixture
def settings(make_settings, request):
    return make_settings(**getattr(request, "param", {}))


async def test_one_encode_serves_the_talker_and_every_viewer(server, speech):
    talker = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    await talker.talk()
    viewers = [Peer(server.url, None) for _ in range(3)]
    vp8 = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == "video/VP8"]
    for transceiver in viewers[2].pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(vp8)  # a receiver that cannot take H.264
    try:
        for viewer in viewers:
            await viewer.watch(talker.session_id, talker.token)
        session = server.evp.sessions[talker.session_id]
        await wait_for(
            lambda: all(len(p.received.video_times) >= 50 for p in [talker, *viewers]), timeout=20
        )
        assert len(session._h264) == 3 and len(session._video) == 1  # talker + 2; the VP8 one
        sent = session.stats_message()["frames_sent"]
        assert sent - 3 <= session._encoder.frames_encoded <= sent  # once per frame, not 3x
        for peer in [talker, *viewers]:
            assert peer.received.video_sizes == {default_frame_size()}
            assert_on_the_media_clock(peer.received)
        # A viewer joining late starts decoding at once: a keyframe is made for it.
        late = Peer(server.url, None)
        await late.watch(talker.session_id, talker.token)
        await wait_for(lambda: len(late.received.video_times) >= 5, timeout=1.2)  # gop: 2 s
        await late.close()
        # Joins and catching up cost a few keyframes, not one per frame (a storm would
        # make every frame one while a receiver connects).
        assert 1 <= session._encoder.keyframes_forced <= 8, session._encoder.keyframes_forced
    finally:
        for peer in [*viewers, talker]:
            await peer.close()
    await wait_for(lambda: not server.evp.sessions, timeout=10)


@pytest.mark.parametrize("settings", [{"connect_timeout_s": 2.0}], indirect=True)
async def test_a_viewer_that_never_connects_gives_its_slot_back(server, speech):
    talker = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    await talker.talk()
    ghost = RTCPeerConnection()  # offers, takes the answer, never applies it: never connects
    ghost.addTransceiver("video", direction="recvonly")
    ghost.addTransceiver("audio", direction="recvonly")
    await ghost.setLocalDescription(await ghost.createOffer())
    url = f"{server.url}/api/sessions/{talker.session_id}/viewers?token={talker.token}"
    try:
        async with aiohttp.ClientSession() as http:
            offer = {"sdp": ghost.localDescription.sdp, "type": "offer"}
            async with http.post(url, json=offer) as r:
                assert r.status == 200, await r.text()
        session = server.evp.sessions[talker.session_id]
        assert session.viewer_count == 1
        await wait_for(lambda: session.viewer_count == 0, timeout=5)
        assert talker.session_id in server.evp.sessions  # the talker is not affected
    finally:
        await ghost.close()
        await talker.close()
    await wait_for(lambda: not server.evp.sessions, timeout=10)


@pytest.mark.parametrize("codec", ["video/H264", "video/VP8"])
async def test_a_talker_offering_its_camera_is_answered_send_only(server, speech, codec):
    from aiortc.mediastreams import VideoStreamTrack
    from aiortc.sdp import SessionDescription

    talker = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    talker.pc.addTrack(VideoStreamTrack())  # the recvonly video transceiver becomes sendrecv
    chosen = [c for c in RTCRtpSender.getCapabilities("video").codecs if c.mimeType == codec]
    for transceiver in talker.pc.getTransceivers():
        if transceiver.kind == "video":
            transceiver.setCodecPreferences(chosen)
    try:
        answer = SessionDescription.parse((await talker.talk())["sdp"])
        video = [m for m in answer.media if m.kind == "video"]
        assert [m.direction for m in video] == ["sendonly"]  # the camera is never sent
        await wait_for(lambda: len(talker.received.video_times) >= 10, timeout=10)
    finally:
        await talker.close()
    await wait_for(lambda: not server.evp.sessions, timeout=10)


async def test_a_viewer_sending_media_and_a_second_microphone_are_left_unread(server, speech):
    from aiortc.mediastreams import VideoStreamTrack
    from aiortc.sdp import SessionDescription

    talker = Peer(server.url, WavMicrophone(speech, SAMPLE_RATE))
    talker.pc.addTrack(WavMicrophone(speech, SAMPLE_RATE))  # a second microphone
    viewer = Peer(server.url, None)
    viewer.pc.addTrack(VideoStreamTrack())  # a viewer that would send its camera...
    viewer.pc.addTrack(WavMicrophone(speech, SAMPLE_RATE))  # ...and its microphone
    try:
        await talker.talk()
        answer = SessionDescription.parse(
            (await viewer.watch(talker.session_id, talker.token))["sdp"]
        )
        assert {m.direction for m in answer.media} == {"sendonly"}  # nothing of it is read
        await wait_for(lambda: len(viewer.received.video_times) >= 5, timeout=10)
        session = server.evp.sessions[talker.session_id]
        assert session.task_count == 6  # video, audio, stats, watchdog, one receive-audio, and
        # the viewer's connect deadline: the second microphone is not analysed
    finally:
        await viewer.close()
        await talker.close()
    await wait_for(lambda: not server.evp.sessions, timeout=10)
