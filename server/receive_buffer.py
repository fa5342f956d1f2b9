"""The audio receive buffer: RTP packets in, decodable frames out, in order, without waiting
for packets that are not late.

aiortc's own audio jitter buffer hands a packet on only once four later ones have arrived
(80 ms at 20 ms packets) and, when one is lost, holds everything behind the hole until 16
have queued (320 ms, then a burst). This one releases every packet that continues the
sequence the moment it arrives; only a hole waits, for at most ``depth`` later packets (a
reordered packet arrives within them), after which the missing packet counts as lost and
what follows is released. The session hears the hole from the timestamps and conceals it
(engine.audio.conceal), so a loss never shifts what follows.

Packets, not time, count the wait: the buffer is driven only by arrivals, so it can be
tested without a clock. ``install`` puts one into an aiortc audio receiver.
"""

import logging
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from aiortc import RTCRtpReceiver, RTCRtpTransceiver
from aiortc.jitterbuffer import JitterBuffer, JitterFrame
from aiortc.rtp import RtpPacket

logger = logging.getLogger(__name__)

SEQUENCE_SPACE = 1 << 16
DEFAULT_DEPTH = 1  # packets a hole waits for: one 20 ms packet of reordering
MAX_DEPTH = 16
RESTART_JUMP = 100  # a jump this far (either way) is a new stream, not loss or reordering


@dataclass
class BufferCounts:
    released: int = 0
    lost: int = 0  # given up after ``depth`` later packets
    late: int = 0  # arrived after their place was given up, or twice
    restarts: int = 0


class AudioReceiveBuffer:
    """Orders audio RTP packets (one frame each, as Opus sends them) and releases each to
    ``release`` as soon as nothing before it is missing, or a hole has waited ``depth``
    later packets."""

    def __init__(self, release: Callable[[RtpPacket], None], depth: int = DEFAULT_DEPTH) -> None:
        if not 0 <= depth <= MAX_DEPTH:
            raise ValueError(f"receive buffer depth must be 0..{MAX_DEPTH} packets, got {depth}")
        self.depth = depth
        self.counts = BufferCounts()
        self._release = release
        self._next: int | None = None  # the sequence number released next
        self._held: dict[int, RtpPacket] = {}  # by sequence number

    @property
    def held(self) -> int:
        return len(self._held)

    def _ahead(self, seq: int) -> int:
        """How far ``seq`` is past the next sequence number to release (mod 2**16)."""
        assert self._next is not None
        return (seq - self._next) % SEQUENCE_SPACE

    def add(self, packet: RtpPacket) -> None:
        seq = packet.sequence_number
        if self._next is None:
            self._next = seq
        ahead = self._ahead(seq)
        if ahead >= SEQUENCE_SPACE // 2 and SEQUENCE_SPACE - ahead < RESTART_JUMP:
            self.counts.late += 1  # behind what was already released
            return
        if ahead >= RESTART_JUMP:  # far ahead or far behind: the sender restarted
            self._flush()
            self.counts.restarts += 1
            self._next = seq
        if seq in self._held:
            self.counts.late += 1  # a duplicate
            return
        self._held[seq] = packet
        self._drain()

    def _drain(self) -> None:
        while self._held:
            if self._next not in self._held:
                if len(self._held) <= self.depth:
                    return  # the hole may still be filled
                nearest = min(self._held, key=self._ahead)
                self.counts.lost += self._ahead(nearest)
                self._next = nearest
            self._emit(self._held.pop(self._next))
            self._next = (self._next + 1) % SEQUENCE_SPACE

    def _flush(self) -> None:
        """Release what is held, in order, before a new stream starts."""
        for seq in sorted(self._held, key=self._ahead):
            self._emit(self._held[seq])
        self._held.clear()

    def _emit(self, packet: RtpPacket) -> None:
        self.counts.released += 1
        self._release(packet)


class _AiortcAdapter:
    """What aiortc's receiver calls its jitter buffer: ``add(packet)`` returning
    ``(pli_flag, frame)``. Frames go straight to the receiver's decoder queue (more than
    one can be ready at once), so ``add`` always returns no frame."""

    def __init__(self, receiver: RTCRtpReceiver, depth: int) -> None:
        self._receiver = receiver
        self.buffer = AudioReceiveBuffer(self._decode, depth)

    def add(self, packet: RtpPacket) -> tuple[bool, JitterFrame | None]:
        self.buffer.add(packet)
        return False, None

    def _decode(self, packet: RtpPacket) -> None:
        r = self._receiver
        codec = r._RTCRtpReceiver__codecs.get(packet.payload_type)  # type: ignore[attr-defined]
        if codec is None or r._RTCRtpReceiver__decoder_thread is None:  # type: ignore[attr-defined]
            return
        frame = JitterFrame(data=packet._data, timestamp=packet.timestamp)  # type: ignore[attr-defined]
        frame.timestamp = r._RTCRtpReceiver__timestamp_mapper.map(frame.timestamp)  # type: ignore[attr-defined]
        r._RTCRtpReceiver__decoder_queue.put((codec, frame))  # type: ignore[attr-defined]


_INTERNALS = ("jitter_buffer", "codecs", "decoder_thread", "timestamp_mapper", "decoder_queue")


def install(receiver: RTCRtpReceiver, depth: int = DEFAULT_DEPTH) -> AudioReceiveBuffer | None:
    """Replace an aiortc audio receiver's jitter buffer with ours (before packets arrive).
    Returns it, or None (aiortc's buffer kept, with a warning) if this aiortc's receiver
    is not built as the one this was written for (1.x)."""
    missing = [n for n in _INTERNALS if not hasattr(receiver, f"_RTCRtpReceiver__{n}")]
    if missing:
        logger.warning(
            "aiortc's receiver has no %s: keeping its own audio jitter buffer (80 ms)",
            ", ".join(missing),
        )
        return None
    adapter = _AiortcAdapter(receiver, depth)
    receiver._RTCRtpReceiver__jitter_buffer = adapter  # type: ignore[attr-defined]
    return adapter.buffer


class _MarkerJitterBuffer(JitterBuffer):
    """aiortc's video jitter buffer, but a frame is complete at its marker bit (its last
    packet), as a browser's is, not only when the next frame starts arriving: without
    this an aiortc client shows every frame one frame period late."""

    def _remove_frame(self, sequence_number: int) -> JitterFrame | None:
        assert self._origin is not None
        packets: list[RtpPacket] = []
        for count in range(self.capacity):
            packet = self._packets[(self._origin + count) % self.capacity]
            if packet is None:
                return None
            if packets and packet.timestamp != packets[0].timestamp:
                return self._take(packets, count)  # complete: the next frame began
            packets.append(packet)
            if packet.marker:
                return self._take(packets, count + 1)
        return None

    def _take(self, packets: list[RtpPacket], count: int) -> JitterFrame:
        frame = JitterFrame(
            data=b"".join(p._data for p in packets),  # type: ignore[attr-defined]
            timestamp=packets[0].timestamp,
        )
        self.remove(count)
        return frame


def install_browser_like(
    pc_transceivers: Iterable[RTCRtpTransceiver], depth: int = DEFAULT_DEPTH
) -> None:
    """A client's receivers behave as a browser's on a clean link: audio through our
    buffer, video handed on at each frame's last packet (benchmarks measure what a
    browser would see, not aiortc's extra buffering)."""
    for transceiver in pc_transceivers:
        receiver = transceiver.receiver
        if transceiver.kind == "audio":
            install(receiver, depth)
        elif hasattr(receiver, "_RTCRtpReceiver__jitter_buffer"):
            receiver._RTCRtpReceiver__jitter_buffer = _MarkerJitterBuffer(
                capacity=512, is_video=True
            )
