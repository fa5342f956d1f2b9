"""The microphone's side of a session: stretches of continuous input (epochs), each
analysed by its own front-end, with lost packets concealed and the frames put on the
packets' grid. Pure functions and data; the session drives them (server.session).

    epoch = next_epoch(current, media_start, rate, samples, options)   # None: a duplicate
    features, returned, report = analyse(epoch, planar, gap)            # on the audio thread
"""

import math
from dataclasses import dataclass, field

import numpy as np

from engine.audio.conceal import SOURCE_S as CONCEAL_SOURCE_S
from engine.audio.conceal import conceal
from engine.audio.frontend import AudioFrontEnd, FrameFeatures, FrontEndOptions
from engine.audio.pcm import PcmReport, to_mono_float32
from engine.audio.resample import StreamingResampler
from engine.constants import VIDEO_FPS, WEBRTC_SAMPLE_RATE

AUDIO_PERIOD_S = 0.02
RETURN_AUDIO_RATE = WEBRTC_SAMPLE_RATE  # what Opus carries; other input rates are resampled
MAX_GAP_FILL_S = 1.0  # longer input gaps start a new epoch instead of inserting silence


@dataclass
class Epoch:
    """A stretch of continuous input audio, analysed by one front-end."""

    frontend: AudioFrontEnd
    to_return_rate: StreamingResampler  # input rate -> RETURN_AUDIO_RATE, for the history
    media_start_s: float  # media time of the epoch's first sample
    next_media_s: float  # media time the next input frame should start at
    input_rate: int
    tail: np.ndarray = field(default_factory=lambda: np.zeros(0, np.float32))  # the last input
    pending_lead: int = 0  # silence the front-end still gets before the first input
    lead_s: float = 0.0  # all of it: frame k was made from input [k T - lead, (k + 1) T - lead)


def continues(epoch: "Epoch | None", media_start: float | None, rate: int) -> bool | None:
    """Whether an input frame starting at ``media_start`` at ``rate`` continues ``epoch``
    (True), needs a new one (False: the first frame, a change of rate, a gap too long
    to fill) or overlaps what the epoch already has (None: drop it)."""
    if epoch is None or rate != epoch.input_rate:
        return False
    if media_start is None:
        return True
    gap = media_start - epoch.next_media_s
    if gap < -AUDIO_PERIOD_S / 2:
        return None
    return gap <= MAX_GAP_FILL_S


def new_epoch(
    media_start: float | None, rate: int, samples: int, options: FrontEndOptions
) -> Epoch:
    """An epoch starting with an input frame of ``samples`` at ``rate`` (its front-end
    takes a few milliseconds to build: the audio thread's work, not the event loop's)."""
    start = 0.0 if media_start is None else media_start
    frontend = AudioFrontEnd(rate, options)
    lead = packet_phase_lead(frontend.delay_seconds, samples / rate, rate)
    return Epoch(
        frontend=frontend,
        pending_lead=lead,
        lead_s=lead / rate,
        to_return_rate=StreamingResampler(rate, RETURN_AUDIO_RATE),
        media_start_s=start,
        next_media_s=start,
        input_rate=rate,
    )


def analyse(
    epoch: Epoch, planar: np.ndarray, gap_samples: int
) -> tuple[list[FrameFeatures], np.ndarray, PcmReport]:
    """Runs on the audio thread: downmix, fill a gap with silence, analyse; also returns
    the mono audio at RETURN_AUDIO_RATE for the return path."""
    mono, report = to_mono_float32(planar)
    if gap_samples:  # lost packets: concealed, so neither the voice nor the mouth jumps
        fill, mono = conceal(epoch.tail, gap_samples, mono, epoch.input_rate)
        mono = np.concatenate([fill, mono])
    epoch.tail = np.concatenate([epoch.tail, mono])[-round(CONCEAL_SOURCE_S * epoch.input_rate) :]
    analysed = mono
    if epoch.pending_lead:
        analysed = np.concatenate([np.zeros(epoch.pending_lead, np.float32), mono])
        epoch.pending_lead = 0
    return epoch.frontend.push_input(analysed), epoch.to_return_rate.push(mono), report


def packet_phase_lead(need_s: float, packet_s: float, rate: int) -> int:
    """Samples of silence to put before an epoch's audio in the front-end so that the input
    a video frame needs (``need_s`` past its end) ends where a packet ends: else every
    frame waits for most of one more packet (16 ms with 20 ms packets and 44 ms of
    look-ahead and resampler). The frames then show audio that much earlier than their
    media time: at most half a packet, here 4 ms."""
    packet = round(packet_s * rate)
    if packet <= 0:
        return 0
    grid = math.gcd(round(rate / VIDEO_FPS), packet)  # where packets and frames meet
    lead = round(need_s * rate) % grid
    return lead if lead <= grid // 2 else 0
