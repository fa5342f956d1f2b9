"""Emotional speech from espeak-ng: prosody profiles per emotion, randomised, at 16 kHz.

A profile moves rate, pitch level, pitch range, loudness and pauses away from neutral in
the directions the speech-emotion literature reports (e.g. Scherer 2003, Murray & Arnott
1993): anger and happiness faster, louder, wider; sadness slower, lower, flatter, quieter,
with longer pauses; fear fast and high; surprise high and wide; disgust and contempt slow
and low. ``intensity`` in [0, 1] scales the move from neutral, and every utterance draws
its own jitter so that no two are identical.
"""

from dataclasses import dataclass, replace

import numpy as np

from engine.audio.resample import StreamingResampler
from engine.constants import EMOTIONS, SAMPLE_RATE
from engine.speech.espeak import Espeak, Prosody, Utterance

NEUTRAL = Prosody(rate=165, pitch=50, range=50, volume=100, word_gap=0)

#: Full-intensity profile per emotion (espeak-ng units, see Prosody).
EMOTION_PROSODY: dict[str, Prosody] = {
    "neutral": NEUTRAL,
    "angry": Prosody(rate=190, pitch=45, range=80, volume=150, word_gap=0),
    "contempt": Prosody(rate=140, pitch=38, range=60, volume=95, word_gap=2),
    "disgusted": Prosody(rate=130, pitch=36, range=45, volume=100, word_gap=3),
    "fear": Prosody(rate=205, pitch=72, range=75, volume=90, word_gap=1),
    "happy": Prosody(rate=185, pitch=68, range=90, volume=125, word_gap=0),
    "sad": Prosody(rate=120, pitch=32, range=15, volume=70, word_gap=5),
    "surprised": Prosody(rate=175, pitch=78, range=100, volume=120, word_gap=1),
}
assert set(EMOTION_PROSODY) == set(EMOTIONS)

#: espeak-ng English voices with male and female variants: several "speakers".
VOICES = ("en-us", "en-us+f3", "en-us+m3", "en-gb-x-rp+f2", "en-gb-x-rp", "en-us+f4")

#: Jitter per utterance (standard deviations, espeak units) so that takes differ.
_JITTER = Prosody(rate=8, pitch=4, range=6, volume=6, word_gap=1)


@dataclass(frozen=True)
class EmotionalUtterance:
    text: str
    voice: str
    emotion: str
    intensity: float
    prosody: Prosody
    audio: np.ndarray  # (n,) float32 at 16 kHz
    phones: tuple  # engine.speech.espeak.Phone, times in seconds

    @property
    def seconds(self) -> float:
        return self.audio.size / SAMPLE_RATE


def emotion_prosody(emotion: str, intensity: float, rng: np.random.Generator) -> Prosody:
    """Neutral moved towards the emotion's profile by ``intensity``, plus jitter."""
    if emotion not in EMOTION_PROSODY:
        raise ValueError(f"unknown emotion {emotion!r}; one of {list(EMOTIONS)}")
    if not 0 <= intensity <= 1:
        raise ValueError(f"intensity must be in [0, 1], got {intensity}")
    target = EMOTION_PROSODY[emotion]
    values = {}
    for name in ("rate", "pitch", "range", "volume", "word_gap"):
        base, goal, spread = getattr(NEUTRAL, name), getattr(target, name), getattr(_JITTER, name)
        values[name] = round(float(base + intensity * (goal - base) + rng.normal(0, spread)))
    values["rate"] = int(np.clip(values["rate"], 80, 450))
    for name in ("pitch", "range"):
        values[name] = int(np.clip(values[name], 0, 100))
    values["volume"] = int(np.clip(values["volume"], 20, 200))
    values["word_gap"] = max(0, values["word_gap"])
    return Prosody(**values)


def synthesize(
    espeak: Espeak, text: str, emotion: str, intensity: float, voice: str, rng: np.random.Generator
) -> EmotionalUtterance:
    """One emotional take of ``text`` at 16 kHz, with phone timings in seconds."""
    prosody = emotion_prosody(emotion, intensity, rng)
    spoken: Utterance = espeak.synthesize(text, voice, prosody)
    audio = StreamingResampler(spoken.sample_rate, SAMPLE_RATE).push(spoken.audio)
    # Phone times stay valid: they are in seconds, and the resampler's delay (< 2 ms) is
    # far below a phone's duration. The last phone ends with the audio.
    phones = spoken.phones
    if phones:
        phones = phones[:-1] + (replace(phones[-1], end=audio.size / SAMPLE_RATE),)
    peak = float(np.abs(audio).max()) if audio.size else 0.0
    if peak > 1.0:
        audio = audio / peak  # loud profiles may overshoot full scale
    return EmotionalUtterance(
        text, voice, emotion, intensity, prosody, audio.astype(np.float32), phones
    )
