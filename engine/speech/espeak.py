"""espeak-ng through ctypes (the library and its data come in the espeakng-loader wheel).

Synthesis runs in espeak's synchronous mode: audio arrives through a callback together
with phoneme events stamped with their sample position, so every utterance comes with the
start and end time of each phone. espeak-ng keeps global state in the C library, so one
``Espeak`` object per process drives it; it is not thread-safe.

Reproducibility: the same text, voice and prosody give the same phones and timings, but
the waveform varies slightly from run to run (noise sources in the voice variants, a few
samples of length), so data sets store the audio they synthesise rather than re-creating it.
"""

import ctypes
from dataclasses import dataclass

import numpy as np

from engine.errors import EngineError

_AUDIO_OUTPUT_SYNCHRONOUS = 0x02
_INITIALIZE_PHONEME_EVENTS = 0x0001
_INITIALIZE_DONT_EXIT = 0x8000
_CHARS_UTF8 = 1
_EVENT_LIST_TERMINATED, _EVENT_WORD, _EVENT_END, _EVENT_PHONEME = 0, 1, 5, 7
_RATE, _VOLUME, _PITCH, _RANGE, _WORDGAP = 1, 2, 3, 4, 7


class _EventId(ctypes.Union):
    _fields_ = [("number", ctypes.c_int), ("name", ctypes.c_char_p), ("string", ctypes.c_char * 8)]


class _Event(ctypes.Structure):
    _fields_ = [
        ("type", ctypes.c_int),
        ("unique_identifier", ctypes.c_uint),
        ("text_position", ctypes.c_int),
        ("length", ctypes.c_int),
        ("audio_position", ctypes.c_int),
        ("sample", ctypes.c_int),
        ("user_data", ctypes.c_void_p),
        ("id", _EventId),
    ]


_Callback = ctypes.CFUNCTYPE(
    ctypes.c_int, ctypes.POINTER(ctypes.c_short), ctypes.c_int, ctypes.POINTER(_Event)
)


@dataclass(frozen=True)
class Prosody:
    """espeak-ng controls: rate in words per minute, pitch and range 0..100, volume
    0..200 (100 normal), word_gap in units of 10 ms."""

    rate: int = 165
    pitch: int = 50
    range: int = 50
    volume: int = 100
    word_gap: int = 0


@dataclass(frozen=True)
class Phone:
    symbol: str  # espeak-ng phoneme mnemonic, e.g. "h", "@", "oU"; "_" is a pause
    start: float  # seconds
    end: float


@dataclass(frozen=True)
class Utterance:
    audio: np.ndarray  # (n,) float32 at sample_rate
    sample_rate: int
    phones: tuple[Phone, ...]
    words: tuple[float, ...]  # start time of each word, seconds

    @property
    def seconds(self) -> float:
        return self.audio.size / self.sample_rate


class Espeak:
    def __init__(self) -> None:
        try:
            import espeakng_loader
        except ImportError as e:
            raise EngineError(
                "speech synthesis needs espeakng-loader: pip install -e '.[train]'"
            ) from e
        self._lib = ctypes.CDLL(espeakng_loader.get_library_path())
        self._lib.espeak_Initialize.restype = ctypes.c_int
        self._lib.espeak_Synth.argtypes = [
            ctypes.c_char_p,
            ctypes.c_size_t,
            ctypes.c_uint,
            ctypes.c_int,
            ctypes.c_uint,
            ctypes.c_uint,
            ctypes.POINTER(ctypes.c_uint),
            ctypes.c_void_p,
        ]
        rate = self._lib.espeak_Initialize(
            _AUDIO_OUTPUT_SYNCHRONOUS,
            0,
            espeakng_loader.get_data_path().encode(),
            _INITIALIZE_PHONEME_EVENTS | _INITIALIZE_DONT_EXIT,
        )
        if rate <= 0:
            raise EngineError("espeak-ng failed to initialise (its data folder may be missing)")
        self.sample_rate = rate
        self._chunks: list[np.ndarray] = []
        self._events: list[tuple[int, int, str]] = []
        self._callback = _Callback(self._on_audio)  # kept alive as long as self
        self._lib.espeak_SetSynthCallback(self._callback)
        self._voice: str | None = None

    def _on_audio(self, wav, count, events) -> int:
        if count > 0:
            self._chunks.append(np.ctypeslib.as_array(wav, shape=(count,)).copy())
        i = 0
        while events[i].type != _EVENT_LIST_TERMINATED:
            event = events[i]
            if event.type == _EVENT_PHONEME:
                self._events.append(
                    (event.type, event.sample, event.id.string.decode("ascii", "replace"))
                )
            elif event.type in (_EVENT_WORD, _EVENT_END):
                self._events.append((event.type, event.sample, ""))
            i += 1
        return 0

    def set_voice(self, name: str) -> None:
        """A voice such as 'en-us', optionally with a variant: 'en-us+f3', 'en+m3'."""
        if name != self._voice:
            if self._lib.espeak_SetVoiceByName(name.encode()) != 0:
                raise EngineError(f"espeak-ng has no voice {name!r}")
            self._voice = name

    def synthesize(
        self, text: str, voice: str = "en-us", prosody: Prosody = Prosody()
    ) -> Utterance:
        """Speak ``text``; returns the audio and the timing of every phone and word."""
        if not text.strip():
            raise ValueError("cannot synthesise empty text")
        self.set_voice(voice)
        for parameter, value in (
            (_RATE, prosody.rate),
            (_PITCH, prosody.pitch),
            (_RANGE, prosody.range),
            (_VOLUME, prosody.volume),
            (_WORDGAP, prosody.word_gap),
        ):
            self._lib.espeak_SetParameter(parameter, int(value), 0)
        self._chunks, self._events = [], []
        data = text.encode("utf-8")
        status = self._lib.espeak_Synth(data, len(data) + 1, 0, 0, 0, _CHARS_UTF8, None, None)
        if status != 0:
            raise EngineError(f"espeak-ng failed to synthesise (status {status})")
        self._lib.espeak_Synchronize()
        audio = (
            np.concatenate(self._chunks).astype(np.float32) / 32768
            if self._chunks
            else np.zeros(0, np.float32)
        )
        return Utterance(audio, self.sample_rate, *self._timings(audio.size))

    def _timings(self, n_samples: int) -> tuple[tuple[Phone, ...], tuple[float, ...]]:
        """Phone intervals from consecutive phoneme events; the last ends at the audio end."""
        phones_at = [
            (sample, symbol) for kind, sample, symbol in self._events if kind == _EVENT_PHONEME
        ]
        words = tuple(
            sample / self.sample_rate for kind, sample, _ in self._events if kind == _EVENT_WORD
        )
        phones = []
        for (start, symbol), (end, _) in zip(
            phones_at, phones_at[1:] + [(n_samples, "")], strict=True
        ):
            if end > start:
                phones.append(Phone(symbol, start / self.sample_rate, end / self.sample_rate))
        return tuple(phones), words
