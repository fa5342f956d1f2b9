"""The shipped default weights on hard input: silence, noise, music, clipping, very quiet
and very short audio. No NaN, no crash, a closed mouth in silence, and the emotion falls
back to the user's setting when the voice gives no evidence."""

import numpy as np
import pytest

from engine.audio.frontend import AudioFrontEnd
from engine.constants import MOUTH, SAMPLE_RATE
from engine.model.checkpoint import DEFAULT_WEIGHTS, load_checkpoint
from engine.model.emotion_space import EmotionSpace, VoiceEmotion
from engine.model.inference import LandmarkModel
from engine.targets.visemes import inner_lip_opening

LOW_LATENCY = DEFAULT_WEIGHTS.with_name("evp-a2l-lowlatency.safetensors")


@pytest.fixture(scope="module", params=[DEFAULT_WEIGHTS, LOW_LATENCY], ids=["evp", "low-latency"])
def shipped(request):
    checkpoint = load_checkpoint(request.param)
    return LandmarkModel(checkpoint), EmotionSpace.from_checkpoint(checkpoint)


@pytest.fixture(scope="module")
def neutral(shipped):
    """The checkpoint's canonical neutral face, slightly widened: another identity."""
    face = shipped[0].canonical_face
    return (face * np.array([1.05, 0.97])).astype(np.float32)


def _opening(landmarks: np.ndarray) -> np.ndarray:
    return inner_lip_opening(landmarks[:, MOUTH.start : MOUTH.stop])


def _predict(shipped, neutral, audio, emotion="neutral"):
    model, space = shipped
    windows, _ = model.windows(audio)
    return model.predict(windows, space.category(emotion), neutral)


def _inputs(speech):
    rng = np.random.default_rng(1)
    t = np.arange(3 * SAMPLE_RATE) / SAMPLE_RATE
    beat = (np.sin(2 * np.pi * 2 * t) > 0).astype(np.float32)
    return {
        "noise": (0.1 * rng.standard_normal(t.size)).astype(np.float32),
        "music": (
            0.2 * beat * np.sin(2 * np.pi * 440 * t) + 0.1 * np.sin(2 * np.pi * 110 * t)
        ).astype(np.float32),
        "clipped": np.clip(speech[: t.size] * 30, -1, 1),
        "very_quiet": speech[: t.size] * 1e-4,
        "very_short": speech[SAMPLE_RATE : SAMPLE_RATE + 1000],
    }


def test_silence_keeps_the_mouth_closed(shipped, neutral):
    landmarks = _predict(shipped, neutral, np.zeros(2 * SAMPLE_RATE, np.float32))
    gap = _opening(landmarks) - inner_lip_opening(neutral[MOUTH.start : MOUTH.stop])
    assert np.abs(gap).max() < 0.03  # within 3 % of the inter-ocular distance


def test_speech_moves_the_mouth_far_more_than_silence(shipped, neutral, speech):
    talking = _opening(_predict(shipped, neutral, speech[: 6 * SAMPLE_RATE]))
    silent = _opening(_predict(shipped, neutral, np.zeros(6 * SAMPLE_RATE, np.float32)))
    assert talking.std() > 0.005 and talking.std() > 3 * silent.std()  # IOD units
    assert talking.mean() > silent.mean()


@pytest.mark.parametrize("kind", ["noise", "music", "clipped", "very_quiet", "very_short"])
def test_hard_input_gives_finite_landmarks(shipped, neutral, speech, kind):
    audio = _inputs(speech)[kind]
    landmarks = _predict(shipped, neutral, audio, "angry")
    assert landmarks.shape[1:] == (68, 2) and len(landmarks) >= 1
    assert np.isfinite(landmarks).all()
    assert np.abs(landmarks - neutral).max() < 0.5  # nothing flies off the face


def test_voice_emotion_gives_no_opinion_without_speech(shipped, speech):
    _, space = shipped
    for audio in (np.zeros(3 * SAMPLE_RATE, np.float32), speech[SAMPLE_RATE : SAMPLE_RATE + 8000]):
        voice = VoiceEmotion(space)
        front = AudioFrontEnd()
        codes = [voice.push(r.hops, r.voiced) for r in front.push(audio) + front.finish()]
        assert codes[-1] is None  # the caller keeps the emotion the user set


def test_categories_change_the_expression(shipped, neutral, speech):
    audio = speech[: 3 * SAMPLE_RATE]
    brows = {}
    for emotion in ("neutral", "surprised", "angry"):
        face = _predict(shipped, neutral, audio, emotion)
        brows[emotion] = float((face[:, 36:48, 1].mean(1) - face[:, 17:27, 1].mean(1)).mean())
    assert brows["surprised"] > brows["neutral"] > brows["angry"]


def test_a_pause_in_speech_closes_the_mouth(shipped, neutral, speech):
    """1 s of silence between two stretches of speech: the LSTM, mid-utterance, must
    close the lips again (within 3 % of IOD of the rest mouth) and open them in speech."""
    second = SAMPLE_RATE
    audio = np.concatenate(
        [speech[: 3 * second], np.zeros(second, np.float32), speech[3 * second : 6 * second]]
    )
    gap = _opening(_predict(shipped, neutral, audio)) - inner_lip_opening(
        neutral[MOUTH.start : MOUTH.stop]
    )
    assert np.abs(gap[80:95]).max() < 0.03  # frames 0.2-0.8 s into the pause
    assert np.percentile(gap[:75], 90) > 0.05


def test_lips_follow_a_held_out_real_speaker(shipped, shared_data):
    """A real speaker no shipped model trained on (LRS3, a held-out group): the predicted
    inner-lip opening follows the tracked one with most of its amplitude."""
    from engine.data.speakers import speaker_group
    from engine.evaluation.landmarks import evaluate_clip
    from engine.evaluation.lipsync import clip_figures

    model, space = shipped
    clip = shared_data / "talking2" / "spectre_LRS3_00002.mp4"
    assert speaker_group(clip.stem) not in model.checkpoint.trained_groups
    assert model.checkpoint.trained_groups  # the shipped weights did learn real mouths
    figures = clip_figures(evaluate_clip(clip, model, space))["model"]
    assert figures["r"] > 0.3 and 0.5 < figures["amplitude"] < 1.5
