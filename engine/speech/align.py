"""Phone timings of recorded speech with pocketsphinx (acoustic model inside the wheel).

* ``align``: forced alignment of audio to its known text (RAVDESS statements, synthetic
  sentences) -> ARPAbet phones with start and end times.
* ``transcribe_and_align``: for speech without a transcript (the real talking clips):
  decode words with the bundled language model, then force-align them. The lexicon makes
  its phones far more plausible than free phone recognition (measured: mouth-opening
  correlation of the viseme teacher 0.18-0.59 instead of 0.0-0.26 on the real clips).
* ``recognise_phones``: phone recognition (allphone search), the fallback.

Times are in seconds on 10 ms frames. Phones are ARPAbet without stress, plus "SIL".
"""

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from engine.audio.pcm import float_to_int16
from engine.constants import SAMPLE_RATE
from engine.errors import EngineError

if TYPE_CHECKING:
    from pocketsphinx import Decoder

FRAME_S = 0.01  # pocketsphinx frame rate
_WORD = re.compile(r"[a-z']+")


class AlignmentError(EngineError):
    """Speech that cannot be aligned: empty or unknown text, or a failed search."""


@dataclass(frozen=True)
class PhoneSegment:
    phone: str  # ARPAbet, e.g. "AA", "K"; "SIL" for silence
    start: float  # seconds
    end: float
    word: str = ""  # the word it belongs to (forced alignment only)


def _decoder(**options):
    try:
        from pocketsphinx import Decoder
    except ImportError as e:
        raise AlignmentError(
            "phone alignment needs pocketsphinx: pip install -e '.[corpus]'"
        ) from e
    return Decoder(samprate=SAMPLE_RATE, loglevel="ERROR", **options)


def _pcm(audio: np.ndarray) -> bytes:
    if audio.ndim != 1 or audio.size < SAMPLE_RATE // 10:
        raise AlignmentError(f"need at least 0.1 s of 16 kHz mono audio, got shape {audio.shape}")
    return float_to_int16(audio).tobytes()


class PhoneAligner:
    """Forced alignment and phone recognition. Decoders are built once and reused."""

    def __init__(self) -> None:
        self._align = _decoder(bestpath=False)
        self._recognise: Decoder | None = None
        self._words: Decoder | None = None

    def normalise_text(self, text: str) -> list[str]:
        words = _WORD.findall(text.lower().replace("’", "'"))
        if not words:
            raise AlignmentError(f"no words to align in {text!r}")
        unknown = [w for w in words if self._align.lookup_word(w) is None]
        if unknown:
            raise AlignmentError(f"words not in the pronunciation dictionary: {unknown}")
        return words

    def align(self, audio: np.ndarray, text: str) -> list[PhoneSegment]:
        """(n,) 16 kHz speech + its transcript -> phones in order, silences included."""
        words = self.normalise_text(text)
        pcm = _pcm(audio)
        decoder = self._align
        decoder.set_align_text(" ".join(words))
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        try:
            decoder.set_alignment()
        except RuntimeError as e:  # the word search did not reach the end of the text
            raise AlignmentError(f"pocketsphinx could not align the text: {e}") from e
        decoder.start_utt()
        decoder.process_raw(pcm, full_utt=True)
        decoder.end_utt()
        alignment = decoder.get_alignment()
        if alignment is None:
            raise AlignmentError("pocketsphinx found no alignment for this audio and text")
        segments = []
        for word in alignment:
            # silences are "<sil>"; pronunciation variants are named like "are(2)"
            name = "" if word.name.startswith("<") else word.name.split("(")[0]
            for phone in word:
                start = phone.start * FRAME_S
                segments.append(
                    PhoneSegment(phone.name, start, start + phone.duration * FRAME_S, name)
                )
        return segments

    def transcribe_and_align(self, audio: np.ndarray) -> list[PhoneSegment]:
        """Phones of untranscribed speech: LM word decoding, then forced alignment; phone
        recognition when no words are found or they cannot be aligned."""
        if self._words is None:
            self._words = _decoder()
        decoder = self._words
        decoder.start_utt()
        decoder.process_raw(_pcm(audio), full_utt=True)
        decoder.end_utt()
        hypothesis = decoder.hyp()
        text = hypothesis.hypstr if hypothesis is not None else ""
        try:
            return self.align(audio, text)
        except AlignmentError:
            return self.recognise_phones(audio)

    def recognise_phones(self, audio: np.ndarray) -> list[PhoneSegment]:
        """(n,) 16 kHz speech without a transcript -> recognised phones (noisy labels,
        useful timings). Noise and filler segments are reported as SIL."""
        if self._recognise is None:
            from pocketsphinx import get_model_path

            self._recognise = _decoder(
                allphone=get_model_path("en-us/en-us-phone.lm.bin"), lw=2.0, beam=1e-20, pbeam=1e-20
            )
        decoder = self._recognise
        decoder.start_utt()
        decoder.process_raw(_pcm(audio), full_utt=True)
        decoder.end_utt()
        segments = []
        for seg in decoder.seg():
            phone = seg.word if seg.word.isalpha() and seg.word.isupper() else "SIL"
            segments.append(
                PhoneSegment(phone, seg.start_frame * FRAME_S, (seg.end_frame + 1) * FRAME_S)
            )
        return segments
