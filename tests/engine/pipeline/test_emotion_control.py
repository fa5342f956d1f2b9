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
    shown = space.voice_point(control.voice_code, space.category("angry"))
    np.testing.assert_allclose(codes[-1], shown, atol=1e-6)


def sure_of(space, logits):
    """The space with Ce replaced: every code gets these logits (EMOTIONS order)."""
    return EmotionSpace(
        space.means,
        np.ones(len(space.means)),
        space._encode,
        lambda codes: np.repeat(np.asarray(logits, np.float32)[None], len(codes), 0),
    )


def test_auto_moves_the_face_only_as_far_as_the_evidence_goes(space, speech):
    from engine.audio.frontend import AudioFrontEnd
    from engine.constants import EMOTIONS

    records = AudioFrontEnd().push(speech[: 16000 * 3])
    happy = EMOTIONS.index("happy")
    shown = {}
    for name, p_happy in [("weak", 0.4), ("half", 0.75), ("strong", 0.999)]:
        p = np.full(len(EMOTIONS), (1 - p_happy) / (len(EMOTIONS) - 1))
        p[happy] = p_happy
        fake = sure_of(space, np.log(p))
        control = EmotionControl(fake, EmotionState(emotion="sad", transition_ms=0))
        control.set(EmotionState(mode="auto", transition_ms=0))
        shown[name] = [control.next(r.hops, r.voiced) for r in records][-1]
        assert control.voice_code is not None
    sad, target = space.category("sad"), space.category("happy")
    progress = {
        k: float((v - sad) @ (target - sad) / np.sum((target - sad) ** 2)) for k, v in shown.items()
    }
    assert progress["weak"] == pytest.approx(0, abs=1e-6)  # the user's setting stays
    assert progress["half"] == pytest.approx(0.5, abs=1e-3)  # (0.75 - 0.5) / (1 - 0.5)
    assert progress["strong"] == pytest.approx(1, abs=1e-2)


def test_calibration_lowers_the_claimed_certainty_not_the_ranking(space):
    code = space.category("happy")
    sharp = EmotionSpace(space.means, np.ones(8), space._encode, space._classify, 1.0)
    soft = EmotionSpace(space.means, np.ones(8), space._encode, space._classify, 4.0)
    a, b = sharp.probabilities(code), soft.probabilities(code)
    assert max(a, key=a.get) == max(b, key=b.get)
    assert max(b.values()) < max(a.values())
    with pytest.raises(EngineError, match="temperature"):
        EmotionSpace(space.means, np.ones(8), space._encode, space._classify, 0.0)


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
    from engine.constants import EMOTIONS

    space = sure_of(space, np.eye(len(EMOTIONS))[EMOTIONS.index("happy")] * 20)  # clear evidence
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
    jump = np.linalg.norm(space.voice_point(control.voice_code, angry) - angry)
    assert steps[found - 1] < 0.3 * jump  # no snap when the voice first gives a code
    silence = [control.next(SILENT, False) for _ in range(4 * 25 + 10)]  # forget_s = 4 s
    assert control.voice_code is None
    np.testing.assert_allclose(silence[-1], angry, atol=1e-6)  # back to the fallback
