"""Validation of SDP offers before aiortc sees them, with reasons a client can act on."""

from aiortc.sdp import SessionDescription


class OfferError(ValueError):
    """An SDP offer that this server cannot answer; the message goes back as HTTP 400."""


def check_offer(sdp: str, need_send_audio: bool) -> None:
    """Reject what is not an SDP offer we can serve, with a reason."""
    if not isinstance(sdp, str) or not sdp.lstrip().startswith("v=0"):
        raise OfferError("'sdp' must be an SDP session description starting with 'v=0'")
    try:
        description = SessionDescription.parse(sdp)
    except Exception as e:  # aiortc raises assorted errors on malformed SDP
        raise OfferError(
            f"cannot parse the SDP offer ({str(e) or type(e).__name__}); send the browser's whole "
            "RTCPeerConnection.localDescription.sdp after setLocalDescription(createOffer())"
        ) from e
    kinds = {(m.kind, m.direction) for m in description.media}
    if not any(kind == "video" and d in ("recvonly", "sendrecv") for kind, d in kinds):
        raise OfferError("the offer must receive video (a video m-line, recvonly or sendrecv)")
    if need_send_audio and not any(
        kind == "audio" and d in ("sendonly", "sendrecv") for kind, d in kinds
    ):
        raise OfferError(
            "the offer must send microphone audio (an audio m-line, sendonly or sendrecv)"
        )
