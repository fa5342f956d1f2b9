from collections import Counter
from pathlib import Path

import pytest

from engine.constants import EMOTIONS
from engine.data.clips import load_clips
from engine.data.labels import LabelError, to_mead_emotion
from engine.data.mead import load_mead, parse_path
from engine.data.ravdess import load_ravdess, parse_name
from engine.data.splits import speaker_split
from engine.errors import EngineError


def test_label_table():
    assert to_mead_emotion("calm") == "neutral" and to_mead_emotion("Fearful") == "fear"
    assert {to_mead_emotion(e) for e in EMOTIONS} == set(EMOTIONS)
    with pytest.raises(LabelError, match="unknown emotion label 'bored'"):
        to_mead_emotion("bored")


def test_ravdess_from_file_names(shared_data):
    result = load_ravdess(shared_data / "ravdess")
    records = result.records
    assert (
        len(records) == len(list((shared_data / "ravdess").rglob("*.wav"))) and not result.skipped
    )
    assert len({r.speaker for r in records}) == 16
    emotions = Counter(r.emotion for r in records)
    assert set(emotions) == set(EMOTIONS) - {"contempt"}  # RAVDESS has no contempt
    calm = sum(r.original_label == "calm" for r in records)
    assert calm > 0 and emotions["neutral"] == calm + sum(
        r.original_label == "neutral" for r in records
    )
    # Every actor says both sentences in all 7 emotions: the cross-reconstruction pairs.
    for speaker in {r.speaker for r in records}:
        said = {(r.sentence, r.emotion) for r in records if r.speaker == speaker}
        assert said == {
            (s, e) for s in ("ravdess-s01", "ravdess-s02") for e in set(EMOTIONS) - {"contempt"}
        }
    one = parse_name(Path("03-01-05-02-01-02-12.wav"))
    assert (one.emotion, one.intensity, one.text, one.speaker) == (
        "angry",
        1.0,
        "Kids are talking by the door",
        "ravdess-12",
    )


@pytest.mark.parametrize(
    "name, complaint",
    [
        ("03-02-05-01-01-01-01.wav", "song"),
        ("03-01-09-01-01-01-01.wav", "emotion code 09"),
        ("hello.wav", "not a RAVDESS name"),
    ],
)
def test_bad_ravdess_names_say_why(name, complaint):
    with pytest.raises(ValueError, match=complaint):
        parse_name(Path(name))


def test_ravdess_folder_without_ravdess_files(tmp_path):
    (tmp_path / "x.wav").write_bytes(b"")
    with pytest.raises(EngineError, match=r"no RAVDESS speech files .*1 \.wav files skipped"):
        load_ravdess(tmp_path)


def test_mead_names_in_both_layouts(shared_data, tmp_path):
    result = load_mead(shared_data / "mead")
    assert len(result.records) == 16
    assert {r.speaker for r in result.records} == {"mead-M030", "mead-W009"}
    assert {r.emotion for r in result.records} == set(EMOTIONS)
    assert all(p.name.startswith("eamm_") for p, _ in result.skipped) and len(result.skipped) == 5
    tree = parse_path(Path("M003/video/front/angry/level_2/014.mp4"))
    assert (tree.speaker, tree.emotion, tree.intensity, tree.sentence) == (
        "mead-M003",
        "angry",
        2 / 3,
        "mead-014",
    )
    with pytest.raises(ValueError, match="only frontal"):
        parse_path(Path("M003/video/left_30/angry/level_2/014.mp4"))


def test_talking_clips_and_clips_without_usable_audio(shared_data):
    clips, result = load_clips(shared_data / "talking")
    assert len(clips) == 5 and not result.skipped
    assert all(c.audio_rate > 0 and c.audio_rms > 0.01 for c in clips)
    # The container's frame rate and frame count agree with its video duration.
    assert all(abs(c.frames / c.fps - c.video_seconds) < 0.1 for c in clips), clips
    with pytest.raises(EngineError, match="no usable talking clips"):
        load_clips(shared_data / "mead")
    _, skipped = load_clips_or_skips(shared_data / "mead")
    reasons = Counter(reason.split(":")[0] for _, reason in skipped)
    assert reasons == {"no audio stream": 19, "the audio track is silent (rms 0.00000)": 2}


def load_clips_or_skips(root: Path):
    from engine.data.clips import probe_clip

    kept, skipped = [], []
    for path in sorted(root.glob("*.mp4")):
        try:
            kept.append(probe_clip(path))
        except ValueError as e:
            skipped.append((path, str(e)))
    return kept, skipped


def test_speaker_split_is_disjoint_deterministic_and_sized():
    speakers = [f"ravdess-{i:02d}" for i in range(1, 17)]
    split = speaker_split(speakers, seed=3)
    assert split == speaker_split(reversed(speakers), seed=3)
    assert Counter(split.values()) == {"train": 12, "val": 2, "test": 2}
    assert split != speaker_split(speakers, seed=4)
    assert Counter(speaker_split(["a", "b", "c"]).values()) == {"train": 1, "val": 1, "test": 1}
    with pytest.raises(ValueError, match="sum to 1"):
        speaker_split(speakers, fractions=(0.5, 0.2, 0.2))
