import numpy as np
import pytest

from engine.emotion_state import EmotionState
from engine.errors import EngineError
from engine.model.emotion_space import EmotionSpace
from engine.pipeline.emotion import EmotionControl
from engine.runtime.landmarks import OnnxLandmarks

SILENT = np.zeros((4, 15), np.float32)


@pytest.fixture(scope="module")
def space():
    return EmotionSpace.from_runtime(OnnxLandmarks())


def _frames(control, count, voiced=False, hops=SILENT):
    return np.stack([control.next(hops, voiced) for _ in range(count)])


def test_a_new_emotion_morphs_from_the_current_code_over_the_transition(space):
    control = EmotionControl(space)
    np.testing.assert_allclose(control.next(SILENT, False), space.neutral)
    control.set(EmotionState(emotion="happy", intensity=1.0, transition_ms=400))  # 10 frames
    codes = _frames(control, 12)
    happy, neutral = space.category("happy"), space.neutral
    progress = (codes - neutral) @ (happy - neutral) / np.sum((happy - neutral) ** 2)
    assert np.all(np.diff(progress[:10]) > 0)  # moves monotonically
    assert 0 < progress[0] < 0.05  # eased: a gentle start
    np.testing.assert_allclose(codes[9:], np.repeat(happy[None], 3, 0), atol=1e-6)
    # Changing course mid-way starts from where the code is, not from the old target.
    control.set(EmotionState(emotion="sad", transition_ms=200))
    middle = control.next(SILENT, False)
    assert np.linalg.norm(middle - happy) < np.linalg.norm(middle - space.category("sad"))


def test_blend_alpha_moves_the_code_along_the_line_between_two_categories(space):
    control = EmotionControl(space)
    a, b = space.category("sad"), space.category("happy")
    for alpha in (0.0, 0.3, 1.0):
        control.set(EmotionState(mode="blend", blend_from="sad", blend_to="happy", alpha=alpha,
                                 transition_ms=0))  # fmt: skip
        np.testing.assert_allclose(control.next(SILENT, False), alpha * b + (1 - alpha) * a,
                                   atol=1e-6)  # fmt: skip


def test_auto_follows_the_voice_and_falls_back_to_the_last_manual_emotion(space, speech):
    from engine.audio.frontend import AudioFrontEnd

    control = EmotionControl(space, EmotionState(emotion="angry", transition_ms=0))
    control.set(EmotionState(mode="auto", transition_ms=0))
    np.testing.assert_allclose(control.next(SILENT, False), space.category("angry"))
    frontend = AudioFrontEnd()
    records = frontend.push(speech[: 16000 * 4]) + frontend.finish()
    codes = [control.next(r.hops, r.voiced) for r in records]
    assert control.voice_code is not None
    np.testing.assert_allclose(codes[-1], control.voice_code, atol=1e-6)
    assert np.linalg.norm(codes[-1] - space.category("angry")) > 1e-3


def test_a_code_from_another_clip_and_bad_requests(space):
    control = EmotionControl(space)
    code = np.arange(space.means.shape[1], dtype=np.float32) / 100
    control.set_code(code)
    np.testing.assert_allclose(control.next(SILENT, False), code)
    with pytest.raises(EngineError, match="knows"):
        control.set(EmotionState(emotion="bored"))
    np.testing.assert_allclose(control.next(SILENT, False), code)  # unchanged by the error


def test_auto_eases_when_the_voice_is_found_and_returns_after_silence(space, speech):
    from engine.audio.frontend import AudioFrontEnd

    control = EmotionControl(space, EmotionState(emotion="angry", transition_ms=0))
    control.set(EmotionState(mode="auto", transition_ms=400))
    frontend = AudioFrontEnd()
    angry = space.category("angry")
    codes, heard = [], []
    for r in frontend.push(speech[: 16000 * 4]) + frontend.finish():
        codes.append(control.next(r.hops, r.voiced))
        heard.append(control.voice_code is not None)
    found = heard.index(True)
    assert found > 0
    steps = np.linalg.norm(np.diff(codes, axis=0), axis=1)
    jump = np.linalg.norm(control.voice_code - angry)
    assert steps[found - 1] < 0.3 * jump  # no snap when the voice first gives a code
    silence = [control.next(SILENT, False) for _ in range(4 * 25 + 10)]  # forget_s = 4 s
    assert control.voice_code is None
    np.testing.assert_allclose(silence[-1], angry, atol=1e-6)  # back to the fallback
