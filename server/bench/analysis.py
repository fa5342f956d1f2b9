"""What ``evp bench live`` sends and how it reads what comes back (pure functions).

**Sent**: speech bursts after silence (``burst_signal``): 1.5 s of silence, then pieces of
real speech of 1.2 s, each starting at a voice onset of the source, separated by 1.3 s of
silence. The send time of each burst's first sample is an audio event with a known time
on the client's clock.

**Received, two ways, both timed on the client's clock only**:

* *Frame stamps* (server.frame_stamp): every frame's picture carries the audio frame k it
  was made from, so its arrival minus the send time of the end of audio frame k is the
  latency of every frame (``stamp_latencies``), and the first frame made from a burst's
  first audio frame times that burst (``stamp_onsets``). The server says *what* a frame
  shows, never *when*.
* *The mouth* (no server metadata at all): the avatar's face is tracked in every received
  frame, and the lag at which its mouth opening best follows the sent envelope
  (``mouth_lag``) checks that frames stamped k really move with audio k: it is the
  stamped latency plus the model's own response (its LSTM smooths over a few frames).
"""

from dataclasses import dataclass

import numpy as np

from engine.audio.vad import VoiceActivityDetector
from engine.constants import SAMPLE_RATE

FRAME_S = 0.04
# Whole frames, so every burst starts on an audio frame boundary (no +20/+40 ms clusters).
LEAD_S, BURST_S, GAP_S = 1.6, 1.2, 1.32
SILENCE_BEFORE_ONSET_S = 0.8  # sound_onsets: at least this much quiet before a start
ONSET_LEVEL = 0.02  # RMS of a 10 ms block at which speech has begun


@dataclass(frozen=True)
class Bursts:
    signal: np.ndarray  # (n,) float32 16 kHz
    onsets_s: np.ndarray  # (B,) start of each burst in the signal


def burst_signal(sources: list[np.ndarray], seconds: float) -> Bursts:
    """Speech bursts cut from ``sources`` (16 kHz mono) at their voice onsets."""
    pieces = []
    for source in sources:
        voiced = VoiceActivityDetector().push(source)  # per 20 ms block
        starts = np.flatnonzero(np.diff(voiced.astype(int)) == 1) + 1
        block = int(0.02 * SAMPLE_RATE)
        for start in starts * block:
            piece = source[start : start + int(BURST_S * SAMPLE_RATE)]
            if piece.size == int(BURST_S * SAMPLE_RATE):
                pieces.append(piece.astype(np.float32))
    if not pieces:
        raise ValueError("no speech found in the given audio: give a WAV with speech in it")
    out = [np.zeros(int(LEAD_S * SAMPLE_RATE), np.float32)]
    onsets, t, i = [], LEAD_S, 0
    while t + BURST_S + GAP_S <= seconds:
        onsets.append(t)
        out += [pieces[i % len(pieces)], np.zeros(int(GAP_S * SAMPLE_RATE), np.float32)]
        t += BURST_S + GAP_S
        i += 1
    if not onsets:
        raise ValueError(
            f"{seconds} s is too short: a run needs at least {LEAD_S + BURST_S + GAP_S} s"
        )
    return Bursts(np.concatenate(out), np.array(onsets))


def onset_stamp(onset_s: float) -> int:
    """The stamp (audio frame + 1) of the frame holding time ``onset_s`` of the stream."""
    return int(np.floor(onset_s / FRAME_S + 1e-9)) + 1


def clean_stamps(stamps: list[int | None]) -> np.ndarray:
    """Stamps as read, with unreadable ones (None) and misreads (a value that jumps ahead
    of or falls behind its neighbours by more than 2 s) set to 0: no stamp."""
    values = np.array([-1 if v is None else v for v in stamps], dtype=np.int64)
    out = np.where(values < 0, 0, values)
    running = 0
    for i, value in enumerate(out):
        if value and running and abs(value - running) > 50:
            out[i] = 0
        elif value:
            running = value
    return out


def sound_onsets(signal: np.ndarray, rate: int) -> np.ndarray:
    """Seconds where sound starts after at least SILENCE_BEFORE_ONSET_S of silence."""
    hop = rate // 100
    rms = np.sqrt(np.mean(signal[: signal.size // hop * hop].reshape(-1, hop) ** 2, axis=1))
    quiet_run, out = 0, []
    for i, loud in enumerate(rms > ONSET_LEVEL):
        if loud and quiet_run >= SILENCE_BEFORE_ONSET_S * 100:
            out.append(i / 100)
        quiet_run = 0 if loud else quiet_run + 1
    return np.array(out)


def mouth_lag(
    times: np.ndarray, opening: np.ndarray, started: float, signal: np.ndarray
) -> tuple[float, float]:
    """(lag in s, correlation) at which the tracked mouth opening of the received frames
    best follows the sent signal's 40 ms envelope, searched over 0-1.5 s on the client's
    clock. The avatar's mouth moves little (its model articulates weakly), so single
    bursts are too noisy to time; the whole run is not."""
    hop = int(FRAME_S * SAMPLE_RATE)
    envelope = np.sqrt(np.mean(signal[: signal.size // hop * hop].reshape(-1, hop) ** 2, axis=1))
    best = (float("nan"), -1.0)
    for lag in np.arange(0.0, 1.5, 0.02):
        # lag: from the end of an audio frame to the arrival of the frame that shows it
        index = np.floor((times - lag - started) / FRAME_S + 1e-9).astype(int) - 1
        valid = (index >= 0) & (index < envelope.size) & np.isfinite(opening)
        if valid.sum() < 25 or np.std(opening[valid]) == 0:
            continue
        r = float(np.corrcoef(opening[valid], envelope[index[valid]])[0, 1])
        if r >= best[1]:  # ties (one 40 ms frame apart): the later lag, its end
            best = (float(lag), r)
    return best


def stamp_latencies(times: np.ndarray, stamps: np.ndarray, started: float) -> np.ndarray:
    """Per frame showing audio frame k (stamp k + 1): arrival minus the send time of the
    end of audio frame k. Frames without audio yet (stamp 0) are left out."""
    shown = stamps > 0
    latencies: np.ndarray = times[shown] - (started + stamps[shown] * FRAME_S)
    return latencies


def stamp_onsets(
    times: np.ndarray, stamps: np.ndarray, onsets_s: np.ndarray, started: float
) -> np.ndarray:
    """Arrival time of the first frame made from each burst's first audio frame."""
    out = []
    for onset in onsets_s:
        hits = np.flatnonzero(stamps >= onset_stamp(onset))
        out.append(times[hits[0]] if hits.size else np.nan)
    return np.array(out)


def percentiles_ms(seconds: np.ndarray) -> dict:
    values = 1000 * np.asarray(seconds, float)
    values = values[np.isfinite(values)]
    if not values.size:
        return {"p50": None, "p95": None, "p99": None, "n": 0}
    return {f"p{q}": round(float(np.percentile(values, q)), 1) for q in (50, 95, 99)} | {
        "n": int(values.size)
    }


def loudness_onsets(times_ms: np.ndarray, loud: np.ndarray, quiet_s: float = 0.5) -> np.ndarray:
    """Times (ms) where ``loud`` (a bool per time, in time order) turns true after at
    least ``quiet_s`` of quiet."""
    out, last_loud = [], -np.inf
    for t, is_loud in zip(times_ms, loud, strict=True):
        if is_loud:
            if t - last_loud >= 1000 * quiet_s:
                out.append(float(t))
            last_loud = t
    return np.array(out)


def av_sync_offsets(frames: list, voice: list, loud_rms: float, pair_ms: float = 400.0) -> list:
    """A/V offsets (ms, > 0: the face comes after the voice) of one page, each speech
    burst's: the display time of the first loud 10 ms hop a frame was made from (frames:
    [display ms, stamp, hop bits], hop j shown from display + 10 j) against the first loud
    10 ms of the returned voice (voice: [ms, RMS]), paired within ``pair_ms``."""
    if not frames or not voice:
        return []
    hops = sorted(
        (t + 10.0 * j, bool(bits >> (3 - j) & 1)) for t, _, bits in frames for j in range(4)
    )
    video = loudness_onsets(np.array([h[0] for h in hops]), np.array([h[1] for h in hops]))
    heard = np.array(voice, float)
    audio = loudness_onsets(heard[:, 0], heard[:, 1] > loud_rms)
    offsets = []
    for onset in video:
        if audio.size:
            nearest = audio[np.argmin(np.abs(audio - onset))]
            if abs(nearest - onset) <= pair_ms:
                offsets.append(float(onset - nearest))
    return offsets
