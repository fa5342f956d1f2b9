"""MEAD (Wang et al., ECCV 2020; research use only): identity, emotion, level from names.

Two layouts are read:
* the official tree: ``M003/video/front/angry/level_1/001.mp4`` (audio in
  ``M003/audio/angry/level_1/001.m4a``), and
* flat clip names: ``M030_front_angry_level3_001.mp4``.
"""

import re
from pathlib import Path

from engine.data.labels import LabelError, to_mead_emotion
from engine.data.records import LoadResult, Utterance
from engine.errors import EngineError

_FLAT = re.compile(
    r"^([A-Z]\d{3})_([a-z_]+?)_([a-z]+)_level_?(\d)_(\d{3})\.(mp4|mov|avi|mkv)$", re.IGNORECASE
)
_TREE_LEVEL = re.compile(r"^level_(\d)$")
VIDEO_SUFFIXES = {".mp4", ".mov", ".avi", ".mkv", ".webm"}


def _record(
    path: Path, identity: str, emotion: str, level: str, index: str, view: str
) -> Utterance:
    if view != "front":
        raise ValueError(f"view {view!r} is not 'front'; only frontal clips are used")
    if level not in ("1", "2", "3"):
        raise ValueError(f"level {level} is not 1..3")
    return Utterance(
        path=path,
        dataset="mead",
        speaker=f"mead-{identity}",
        emotion=to_mead_emotion(emotion),
        intensity=int(level) / 3,
        # MEAD's numbered sentences are shared across emotions, except neutral's own set
        sentence=f"mead-{index}" if emotion != "neutral" else f"mead-neutral-{index}",
        original_label=emotion,
        has_video=True,
        has_audio=False,  # MEAD keeps audio in a separate tree; see the module docstring
    )


def parse_path(path: Path) -> Utterance:
    """A MEAD clip path (either layout) -> its record; ValueError saying what is wrong."""
    flat = _FLAT.match(path.name)
    if flat:
        identity, view, emotion, level, index, _ = flat.groups()
        return _record(path, identity, emotion, level, index, view)
    parts = path.parts
    if len(parts) >= 6 and parts[-5] == "video" and (tree := _TREE_LEVEL.match(parts[-2])):
        identity, view, emotion = parts[-6], parts[-4], parts[-3]
        level = tree.group(1)
        return _record(path, identity, emotion, level, path.stem, view)
    raise ValueError(
        "not a MEAD name: expected ID_front_EMOTION_levelN_NNN.mp4 or ID/video/front/EMOTION/level_N/NNN.mp4"
    )


def load_mead(root: Path) -> LoadResult:
    """Every frontal MEAD clip under ``root``; other files are skipped with a reason."""
    if not root.is_dir():
        raise EngineError(f"MEAD folder {root} does not exist")
    result = LoadResult()
    for path in sorted(root.rglob("*")):
        if path.suffix.lower() not in VIDEO_SUFFIXES:
            continue
        try:
            result.records.append(parse_path(path))
        except (ValueError, LabelError) as e:
            result.skip(path, str(e))
    if not result.records:
        raise EngineError(f"no MEAD clips under {root} ({len(result.skipped)} video files skipped)")
    return result
