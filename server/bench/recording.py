"""The independent check of ``evp bench live``: record one session, analyse the file.

``write_recording`` puts what the first client sent and received on one timeline (its
own clock, from the microphone's first frame) into an MP4: the received pictures at their
arrival times (variable frame rate, millisecond timestamps) and a stereo track with the
sent microphone audio on the left and the returned audio on the right. Nothing else is
stored: no burst schedule, no computed latency.

``analyse_recording`` then works from the file alone: it finds the bursts' onsets in the
left channel (sound after silence), reads each picture's frame stamp and timestamp after
decoding, and times each burst to the first picture made from it; and it finds the
returned voice's onsets in the right channel, so the A/V offset is measured in the file
too. Agreement with the live report is the check.
"""

from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING

import av
import numpy as np

from engine.constants import SAMPLE_RATE
from server.bench.analysis import clean_stamps, onset_stamp, percentiles_ms, sound_onsets
from server.frame_stamp import read_stamp

if TYPE_CHECKING:
    from server.bench.live_session import BenchSession

RATE = SAMPLE_RATE


def write_recording(session: "BenchSession", path: Path) -> None:
    """Write ``session``'s (a BenchSession recorded with ``record=True``) streams."""
    started = session.microphone.started_at
    sent = session.bursts.signal
    returned = session.peer.returned_audio()
    returned_rate = session.peer.received.audio_rate or 48_000
    if returned_rate != RATE:
        from engine.audio.resample import StreamingResampler

        returned = StreamingResampler(returned_rate, RATE).push(returned)
    assert started is not None  # the session ran: its microphone sent audio
    offset = round((session.peer.received_audio_started - started) * RATE)
    length = max(sent.size, offset + returned.size)
    stereo = np.zeros((2, length), np.float32)
    stereo[0, : sent.size] = sent
    stereo[1, max(offset, 0) : max(offset, 0) + returned.size] = returned[max(-offset, 0) :]
    if not session.pictures:
        raise ValueError("the recorded session received no video")
    partial = path.with_name(path.name + ".partial.mp4")
    try:
        _write(session, partial, started, stereo, length)
    except BaseException:
        partial.unlink(missing_ok=True)
        raise
    partial.replace(path)


def _write(
    session: "BenchSession", partial: Path, started: float, stereo: np.ndarray, length: int
) -> None:
    height, width = session.pictures[0].shape
    with av.open(str(partial), mode="w") as container:
        video = container.add_stream("libx264", rate=25)
        video.width, video.height, video.pix_fmt = width, height, "yuv420p"
        video.time_base = Fraction(1, 1000)
        video.codec_context.time_base = Fraction(1, 1000)
        video.options = {"crf": "12", "preset": "veryfast"}
        audio = container.add_stream("aac", rate=RATE)
        audio.layout = "stereo"
        last = -1
        for arrival, luma in zip(session.times, session.pictures, strict=False):
            pts = max(last + 1, round((arrival - started) * 1000))
            last = pts
            yuv = np.concatenate([luma, np.full((height // 2, width), 128, np.uint8)])
            picture = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            picture.pts, picture.time_base = pts, Fraction(1, 1000)
            container.mux(video.encode(picture))
        container.mux(video.encode(None))
        chunk = RATE // 50
        for start in range(0, length, chunk):
            sound = av.AudioFrame.from_ndarray(
                np.ascontiguousarray(stereo[:, start : start + chunk]),
                format="fltp",
                layout="stereo",
            )
            sound.sample_rate, sound.pts, sound.time_base = RATE, start, Fraction(1, RATE)
            container.mux(audio.encode(sound))
        container.mux(audio.encode(None))


def analyse_recording(path: Path) -> dict:
    with av.open(str(path)) as container:
        arrivals: list[float] = []
        read: list[int | None] = []
        for frame in container.decode(video=0):
            arrivals.append(float(frame.pts * frame.time_base))
            read.append(read_stamp(frame.to_ndarray(format="gray")))
        container.seek(0)
        audio = np.concatenate(
            [f.to_ndarray() for f in container.decode(audio=0)], axis=1
        )  # (2, n), fltp
        rate = container.streams.audio[0].rate
    times, stamps = np.array(arrivals), clean_stamps(read)
    sent_onsets, returned_onsets = sound_onsets(audio[0], rate), sound_onsets(audio[1], rate)
    latencies = []
    for onset in sent_onsets:
        hits = np.flatnonzero(stamps >= onset_stamp(onset))
        latencies.append(times[hits[0]] - onset if hits.size else np.nan)
    # A/V offset in the file: each burst's first picture against its returned voice.
    offsets = []
    for onset, latency in zip(sent_onsets, latencies, strict=True):
        later = returned_onsets[returned_onsets > onset]
        if later.size and np.isfinite(latency):
            offsets.append((onset + latency) - later[0])
    return {
        "bursts_found": int(sent_onsets.size),
        "burst_latency_ms": percentiles_ms(np.array(latencies)),
        "returned_voice_lag_ms": percentiles_ms(
            np.array(
                [r[r > o][0] - o for o in sent_onsets for r in [returned_onsets] if (r > o).any()]
            )
        ),
        "av_offset_ms": round(1000 * float(np.median(offsets)), 1) if offsets else None,
    }
