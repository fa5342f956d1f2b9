"""A session's WebRTC connections: the talker's peer connection and its receive-only
viewers', each sent the session's video (its shared H.264 packets, or frames for aiortc to
encode) and returned voice. The broadcasts and the encoder are the session's
(server.session); this module wires tracks to connections and closes them."""

import asyncio
import logging
from collections.abc import Callable, Coroutine
from typing import Any

from aiortc import RTCConfiguration, RTCIceServer, RTCPeerConnection, RTCSessionDescription
from aiortc.mediastreams import MediaStreamTrack

from engine.pipeline.h264 import H264Stream
from server.metrics import ServerMetrics
from server.offer import OfferError, check_offer
from server.receive_buffer import AudioReceiveBuffer
from server.session_media import install_audio_buffer, sent_tracks
from server.settings import ServerSettings
from server.tracks import Broadcast, SubscriberTrack
from server.video_encoder import h264_preferences, offers_h264

logger = logging.getLogger(__name__)


class SessionConnections:
    """The talker's connection (made at once, answered by ``accept_offer``) and up to
    ``settings.max_viewers`` viewers' (``add_viewer``)."""

    def __init__(
        self,
        settings: ServerSettings,
        metrics: ServerMetrics,
        video: Broadcast,
        h264: Broadcast,
        audio: Broadcast,
        encoder: H264Stream,
        on_microphone: Callable[[MediaStreamTrack], None],
        close_session: Callable[[str], None],
        spawn: Callable[[Coroutine[Any, Any, None], str], asyncio.Task],
    ) -> None:
        """video: I420 frames (receivers without H.264); h264: ``encoder``'s packets;
        audio: the returned voice. on_microphone: the talker's audio track, once it comes;
        close_session(reason): the talker's connection failed or closed; spawn(coro, name):
        the session's supervised tasks (server.tasks)."""
        self._settings = settings
        self._metrics = metrics
        self._video = video
        self._h264 = h264
        self._audio = audio
        self._encoder = encoder
        self._on_microphone = on_microphone
        self._close_session = close_session
        self._spawn = spawn
        self._pc = self._new_peer_connection()
        self._viewers: set[RTCPeerConnection] = set()
        self._microphone_attached = False
        self.receive_buffer: AudioReceiveBuffer | None = None  # the talker's microphone's

    @property
    def viewer_count(self) -> int:
        return len(self._viewers)

    def _new_peer_connection(self) -> RTCPeerConnection:
        return RTCPeerConnection(RTCConfiguration(iceServers=ice_servers(self._settings)))

    async def accept_offer(self, sdp: str) -> RTCSessionDescription:
        """Apply the talker's offer and return our answer. Raises OfferError on bad offers."""
        check_offer(sdp, need_send_audio=True)
        pc = self._pc

        @pc.on("track")
        def on_track(track: MediaStreamTrack) -> None:
            if track.kind == "audio" and not self._microphone_attached:
                self._microphone_attached = True  # one microphone: others go unread
                self._on_microphone(track)

        @pc.on("connectionstatechange")
        def on_state() -> None:
            if pc.connectionState in ("failed", "closed"):
                self._close_session(f"peer connection {pc.connectionState}")

        video = self._video_track(pc, sdp)
        try:
            await pc.setRemoteDescription(RTCSessionDescription(sdp=sdp, type="offer"))
        except Exception as e:  # aiortc reports bad SDP with several exception types
            raise OfferError(f"cannot apply the SDP offer: {e}") from e
        self.receive_buffer = install_audio_buffer(pc, self._settings.receive_buffer_packets)
        pc.addTrack(self._audio.subscribe())
        if video not in sent_tracks(pc):
            pc.addTrack(video)
        for transceiver in pc.getTransceivers():
            if transceiver.kind == "video":  # a camera the offer would send goes unread:
                transceiver.direction = "sendonly"  # answered so that it is never sent
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
        # bypass: route the request to the shared encoder (rate-limited there). A private
        # aiortc method, replaced on purpose: hence the type: ignore.
        transceiver.sender._send_keyframe = self._encoder.request_keyframe  # type: ignore[method-assign]
        self._encoder.request_keyframe()  # where the new receiver starts decoding
        return track

    async def add_viewer(self, sdp: str) -> RTCSessionDescription:
        """Answer a receive-only offer with the session's video and audio."""
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
            for transceiver in pc.getTransceivers():
                transceiver.direction = "sendonly"  # a viewer's camera or microphone: unread
            await pc.setLocalDescription(await pc.createAnswer())
            self._spawn(self._connect_deadline(pc, tracks), "viewer-deadline")
        except Exception as e:
            await self._drop_viewer(pc, tracks)
            raise OfferError(f"cannot answer the viewer offer: {e}") from e
        return pc.localDescription

    async def _connect_deadline(self, pc: RTCPeerConnection, tracks: list[SubscriberTrack]) -> None:
        """Drop a viewer not connected within ``connect_timeout_s`` (a tab closed right
        after the answer, a NAT without TURN): aioice never gives up on a peer that does
        not signal the end of its candidates, and the viewer would hold its slot."""
        await asyncio.sleep(self._settings.connect_timeout_s)
        if pc in self._viewers and pc.connectionState != "connected":
            logger.info(
                "viewer not connected after %g s: dropped", self._settings.connect_timeout_s
            )
            try:
                await self._drop_viewer(pc, tracks)
            except Exception:  # one viewer's connection must not take the session down
                logger.exception("closing a viewer that never connected failed")

    async def _drop_viewer(self, pc: RTCPeerConnection, tracks: list[SubscriberTrack]) -> None:
        if pc in self._viewers:
            self._viewers.discard(pc)
            self._metrics.viewers.dec()
        for track in tracks:
            track.stop()
        await pc.close()

    async def aclose(self) -> None:
        """Close every viewer's connection, then the talker's (each whatever the others
        did)."""
        viewers = list(self._viewers)
        self._metrics.viewers.dec(len(viewers))
        self._viewers.clear()
        closed = await asyncio.gather(*(pc.close() for pc in viewers), return_exceptions=True)
        for result in closed:
            if isinstance(result, Exception):
                logger.warning("a viewer's connection failed to close: %r", result)
        await self._pc.close()


def ice_servers(settings: ServerSettings) -> list[RTCIceServer]:
    """The STUN and TURN servers of ``settings``, TURN with its credentials."""
    return [
        RTCIceServer(url, settings.ice_username, settings.ice_credential)
        if url.startswith("turn")
        else RTCIceServer(url)
        for url in settings.ice_servers
    ]
