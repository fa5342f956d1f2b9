"""RAVDESS speech (Livingstone & Russo 2018, CC BY-NC-SA 4.0): labels from file names.

A file name is seven two-digit fields: modality-vocal_channel-emotion-intensity-statement-
repetition-actor, e.g. ``03-01-05-02-01-02-12.wav``: audio-only (03), speech (01), angry
(05), strong (02), "Kids are talking by the door" (01), second take (02), actor 12.
"""

import re
from pathlib import Path

from engine.data.labels import RAVDESS_EMOTIONS, to_mead_emotion
from engine.data.records import LoadResult, Utterance
from engine.errors import EngineError

STATEMENTS = {"01": "Kids are talking by the door", "02": "Dogs are sitting by the door"}
_NAME = re.compile(r"^(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)-(\d\d)\.wav$", re.IGNORECASE)


def parse_name(path: Path) -> Utterance:
    """A RAVDESS file name -> its record; ValueError saying which field is wrong."""
    match = _NAME.match(path.name)
    if not match:
        raise ValueError(
            "not a RAVDESS name: expected seven two-digit fields like 03-01-05-02-01-02-12.wav"
        )
    modality, channel, emotion, intensity, statement, _take, actor = match.groups()
    if channel != "01":
        raise ValueError(f"vocal channel {channel} is song; only speech (01) is used")
    if emotion not in RAVDESS_EMOTIONS:
        raise ValueError(f"emotion code {emotion} is not 01..08")
    if intensity not in ("01", "02") or statement not in STATEMENTS:
        raise ValueError(f"intensity {intensity} or statement {statement} is not 01/02")
    label = RAVDESS_EMOTIONS[emotion]
    return Utterance(
        path=path,
        dataset="ravdess",
        speaker=f"ravdess-{actor}",
        emotion=to_mead_emotion(label),
        intensity=0.5 if intensity == "01" else 1.0,
        sentence=f"ravdess-s{statement}",
        text=STATEMENTS[statement],
        original_label=label,
        has_audio=modality in ("01", "03"),
        has_video=modality in ("01", "02"),
    )


def load_ravdess(root: Path) -> LoadResult:
    """Every RAVDESS speech WAV under ``root`` (any folder layout, e.g. Actor_01/...)."""
    if not root.is_dir():
        raise EngineError(f"RAVDESS folder {root} does not exist")
    result = LoadResult()
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() != ".wav":
            continue
        try:
            result.records.append(parse_name(path))
        except ValueError as e:
            result.skip(path, str(e))
    if not result.records:
        raise EngineError(
            f"no RAVDESS speech files under {root}: expected names like 03-01-05-02-01-02-12.wav"
            + (f" ({len(result.skipped)} .wav files skipped)" if result.skipped else "")
        )
    return result


def unheard_speakers(root: Path, trained: set[str]) -> tuple[LoadResult, list[Utterance]]:
    """RAVDESS under ``root`` and its utterances by speakers not in ``trained`` (a
    checkpoint's training speakers); an error if every speaker was trained on."""
    loaded = load_ravdess(Path(root))
    held = [r for r in loaded.records if r.speaker not in trained]
    if not held:
        raise EngineError(
            f"every speaker under {root} was used to train this checkpoint; point --ravdess "
            "at speakers it has not heard"
        )
    return loaded, held
