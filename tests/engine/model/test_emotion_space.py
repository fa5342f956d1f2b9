import numpy as np
import pytest

from engine.audio.frontend import AudioFrontEnd
from engine.errors import EngineError
from engine.model.emotion_space import EmotionSpace, VoiceEmotion
from engine.model.networks import ModelConfig
from tests.engine.model.helpers import random_checkpoint


@pytest.fixture
def space():
    return EmotionSpace.from_checkpoint(random_checkpoint(ModelConfig(emotion_dim=6)))


def test_category_intensity_moves_from_neutral_to_the_cluster_mean(space):
    np.testing.assert_allclose(space.category("happy", 0.0), space.neutral)
    np.testing.assert_allclose(space.category("happy", 1.0), space.means[5], atol=1e-6)
    half = space.category("happy", 0.5)
    np.testing.assert_allclose(half, (space.neutral + space.means[5]) / 2, atol=1e-6)
    with pytest.raises(EngineError, match="knows"):
        space.category("contempt")  # never trained
    with pytest.raises(EngineError, match="intensity"):
        space.category("sad", 1.5)


def test_blend_is_alpha_source_plus_one_minus_alpha_target(space):
    a, b = space.category("angry"), space.category("sad")
    np.testing.assert_allclose(space.blend(a, b, 1.0), a)
    np.testing.assert_allclose(space.blend(a, b, 0.0), b)
    np.testing.assert_allclose(space.blend(a, b, 0.25), 0.25 * a + 0.75 * b, atol=1e-6)


def test_another_clip_gives_a_code_and_too_short_a_clip_an_error(space, speech):
    code = space.from_signal(speech[:32000])
    assert code.shape == (6,) and np.isfinite(code).all()
    assert set(space.probabilities(code)) == set(space.known)
    assert abs(sum(space.probabilities(code).values()) - 1) < 1e-5
    with pytest.raises(EngineError, match="too short"):
        space.from_signal(speech[:1600])


def _feed(voice: VoiceEmotion, audio: np.ndarray) -> list:
    front = AudioFrontEnd()
    codes = []
    for start in range(0, audio.size, 640):
        for record in front.push(audio[start : start + 640]):
            codes.append(voice.push(record.hops, record.voiced))
    return codes


def test_voice_emotion_needs_speech_and_forgets_it_in_long_silence(space, speech):
    voice = VoiceEmotion(space, forget_s=2.0)
    silence = np.zeros(16000 * 3, np.float32)
    assert all(code is None for code in _feed(voice, silence))  # no evidence: caller's setting
    codes = _feed(voice, speech[16000 : 16000 * 5])
    assert codes[-1] is not None and np.isfinite(codes[-1]).all()
    assert codes[-1] is not None
    assert _feed(voice, silence)[-1] is None


def test_long_clips_are_judged_in_pieces_of_at_most_ten_seconds(space):
    from engine.model.emotion_space import MAX_CLIP_HOPS, EmotionSpace

    seen = []

    def encode(hops):
        seen.append(hops.shape[1])
        return np.full((1, 4), hops.shape[1], np.float32)

    counted = EmotionSpace(space.means[:, :4], np.ones(8), encode, space._classify)
    hops = np.random.default_rng(0).standard_normal((2500, 15)).astype(np.float32)
    code = counted.from_audio(hops, trim=False)
    assert max(seen) <= MAX_CLIP_HOPS and sum(seen) == 2500 and len(seen) == 3
    np.testing.assert_allclose(code, np.mean(seen))
