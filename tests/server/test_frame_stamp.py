import av
import cv2
import numpy as np
import pytest

from engine.constants import SAMPLE_RATE
from engine.pipeline.h264 import H264Stream
from server.bench.client import Peer, WavMicrophone, wait_for
from server.frame_stamp import loud_hops, read_stamp, read_stamp_hops, stamp


def test_stamps_survive_h264_at_the_served_bitrate():
    rng = np.random.default_rng(0)
    encoder = H264Stream(512, 512)
    decoder = av.CodecContext.create("h264", "r")
    values = [0, 1, 2, 1234, 99_999, (1 << 20) - 1] * 3
    decoded = []
    for i, value in enumerate(values):
        rgb = rng.integers(0, 256, (512, 512, 3), dtype=np.uint8)  # hard to code: noise
        i420 = cv2.cvtColor(rgb, cv2.COLOR_RGB2YUV_I420)
        stamp(i420, 512, value)
        for packet in encoder.encode(i420, i * 3600):
            decoded += [read_stamp(f.to_ndarray(format="rgb24")) for f in decoder.decode(packet)]
    assert decoded == values[: len(decoded)] and len(decoded) >= len(values) - 1
    with pytest.raises(ValueError, match="holds"):
        stamp(i420, 512, 1 << 20)
    assert read_stamp(np.full((64, 256), 128, np.uint8)) is None  # no marker: no number
    with pytest.raises(ValueError, match="narrower"):
        stamp(np.zeros((96, 64), np.uint8), 64, 1)


async def test_a_bench_session_shows_which_audio_each_frame_was_made_from(server, speech):
    mic = WavMicrophone(speech, SAMPLE_RATE)
    peer = Peer(server.url, mic, keep_video=True)
    await peer.talk(bench=True)
    try:
        await wait_for(lambda: len(peer.received.video_frames) >= 75, timeout=10)
    finally:
        await peer.close()
    shown = np.array([read_stamp(f) - 1 for f in peer.received.video_frames])  # all stamped
    times = np.array(peer.received.video_times)
    live = shown >= 0
    assert live.sum() > 40 and np.all(np.diff(shown[live]) >= 0)  # audio frames in order
    # The frame showing audio frame k arrives after that audio was sent and within the
    # pipeline delay (0.244 s) plus delivery of it.
    sent_end = mic.started_at + (shown[live] + 1) * 0.04
    latency = times[live] - sent_end
    assert np.all(latency > 0.1) and np.median(latency) < 0.45, np.percentile(latency, [0, 50, 100])


def test_the_stamp_carries_which_hops_of_its_audio_were_loud():
    quiet, loud = np.zeros(480, np.float32), np.full(480, 0.1, np.float32)
    assert loud_hops(np.concatenate([quiet, loud, loud, quiet])) == 0b0110
    assert loud_hops(np.full(1920, 0.001, np.float32)) == 0  # -60 dBFS: quiet
    i420 = np.full((768, 512), 128, np.uint8)
    stamp(i420, 512, 4321, 0b1011)
    rgb = cv2.cvtColor(i420, cv2.COLOR_YUV2RGB_I420)
    assert read_stamp_hops(rgb) == (4321, 0b1011) and read_stamp(rgb) == 4321
    with pytest.raises(ValueError, match="hop bits"):
        stamp(i420, 512, 1, 16)
