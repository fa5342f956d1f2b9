"""One H.264 encode per session, its packets shared by the peer and every viewer.

aiortc encodes each sender's frames itself, so a session with N viewers would encode every
frame N + 1 times. Receivers that offer H.264 (browsers and aiortc do) are instead given
one encoder's packets (engine.pipeline.h264.H264Stream), which aiortc only packetizes
(``H264Encoder.pack``). This module decides who may take them; the session asks for a
keyframe whenever a receiver joins or loses packets (its queue overflowed), which is how
each one (re)starts decoding.
"""


def offers_h264(sdp: str) -> bool:
    """Whether the offer's first video m-line takes the H.264 this encoder makes and aiortc
    can answer: packetization-mode 1, (constrained) baseline profile."""
    from aiortc.sdp import SessionDescription

    for media in SessionDescription.parse(sdp).media:
        if media.kind != "video":
            continue
        return any(
            codec.mimeType.lower() == "video/h264"
            and str(codec.parameters.get("packetization-mode", "0")) == "1"
            and str(codec.parameters.get("profile-level-id", "42")).lower().startswith("42")
            for codec in media.rtp.codecs
        )
    return False


def h264_preferences() -> list:
    """aiortc's H.264 codecs (and RTX), for ``RTCRtpTransceiver.setCodecPreferences``."""
    from aiortc import RTCRtpSender

    codecs = RTCRtpSender.getCapabilities("video").codecs
    return [c for c in codecs if c.mimeType.lower() in ("video/h264", "video/rtx")]
