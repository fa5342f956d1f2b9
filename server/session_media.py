"""What a session publishes, per frame: the I420 picture (stamped for benchmarks), the
returned voice's frames and encoded packets as track payloads, and the peer-connection
helpers the session and its viewers share."""

import av
import numpy as np
from aiortc import RTCPeerConnection
from aiortc.mediastreams import MediaStreamTrack
from av import AudioFrame

from engine.pipeline.h264 import to_i420
from engine.pipeline.portrait import PortraitFrame
from server.audio_input import RETURN_AUDIO_RATE
from server.frame_stamp import stamp
from server.media import mono_audio_frame
from server.receive_buffer import AudioReceiveBuffer
from server.receive_buffer import install as install_receive_buffer


def finish_frame(frame: PortraitFrame, stamped: bool, hops: int = 0) -> np.ndarray:
    """Runs on the worker: the frame as (H * 3 / 2, W) I420 (no encoder converts it again),
    stamped with its audio frame and that audio's loud hops for benchmarks."""
    i420 = to_i420(frame.image)
    if stamped:
        stamp(i420, frame.image.shape[0], frame.index + 1, hops)
    return i420


def install_audio_buffer(pc: RTCPeerConnection, depth: int) -> AudioReceiveBuffer | None:
    """Our receive buffer in place of aiortc's on the peer's audio (server.receive_buffer)."""
    for transceiver in pc.getTransceivers():
        if transceiver.kind == "audio":
            return install_receive_buffer(transceiver.receiver, depth)
    return None


def every_tick(tick: int) -> bool:
    return True


def sent_tracks(pc: RTCPeerConnection) -> list[MediaStreamTrack]:
    return [t.sender.track for t in pc.getTransceivers() if t.sender.track is not None]


def packet_payload(packet: av.Packet, pts: int) -> av.Packet:
    return packet


def return_audio_frame(samples: np.ndarray, pts: int) -> AudioFrame:
    return mono_audio_frame(samples, RETURN_AUDIO_RATE, pts)
