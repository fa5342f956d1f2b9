"""Emotions you can see: the measures, the comparison with real faces, and rendered
frames of the default avatar that move as each emotion should."""

import numpy as np
import pytest

from engine.evaluation.expression import compare, displacement, distinguishability
from engine.targets.expressions import FEATURES, expression_features

pytest.importorskip("mediapipe")


@pytest.fixture(scope="module")
def face():
    from engine.model.checkpoint import load_checkpoint

    return load_checkpoint().canonical.numpy().astype(np.float64)  # (68, 2) a neutral face


def moved(face, points, dy):
    out = face.copy()
    out[points, 1] += dy
    return out


def test_each_measure_reads_its_own_part_of_the_face_in_iod(face):
    iod = np.linalg.norm(face[45] - face[36])
    base = expression_features(face)
    change = lambda f: dict(zip(FEATURES, expression_features(f) - base, strict=True))
    corners_up = change(moved(face, [48, 54], -0.05 * iod))
    assert corners_up["corners_up"] == pytest.approx(0.05, abs=1e-9)
    assert abs(corners_up["inner_brows_up"]) < 1e-9 and abs(corners_up["jaw_down"]) < 1e-9
    brows = change(moved(face, [21, 22], -0.04 * iod))
    assert brows["inner_brows_up"] == pytest.approx(0.04) and brows["outer_brows_up"] == 0
    assert change(moved(face, [8], 0.1 * iod))["jaw_down"] == pytest.approx(0.1)
    assert change(moved(face, [66], 0.03 * iod))["opening"] == pytest.approx(0.03)
    # IOD units: the same face twice as large, or moved, measures the same
    assert expression_features(2 * face + 7) == pytest.approx(base)


def test_comparison_reads_direction_and_strength():
    reference = np.array([0.03, 0.12, 0.06, 0.03, 0.03, 0.02, 0.0, 0.02])
    assert compare(0.5 * reference, reference) == {"cosine": 1.0, "magnitude": 0.5}
    assert compare(-reference, reference)["cosine"] == -1.0
    assert compare(None, reference) == {"cosine": None, "magnitude": None}
    neutral = np.zeros((40, 8))
    shown = neutral + reference
    shown[:5] = np.nan  # untracked frames do not count
    assert displacement(shown, neutral) == pytest.approx(reference)


def test_distinguishability_separates_apart_shapes_and_not_identical_ones():
    rng = np.random.default_rng(0)
    apart = {f"e{k}": 0.05 * np.eye(8)[k] + 0.005 * rng.normal(size=(150, 8)) for k in range(8)}
    assert set(distinguishability(apart).values()) == {1.0}
    same = {f"e{k}": 0.005 * rng.normal(size=(150, 8)) for k in range(8)}
    assert np.mean(list(distinguishability(same).values())) < 0.5


def test_real_faces_widen_the_mouth_in_happiness_and_raise_the_brows_in_surprise(shared_data):
    from engine.targets.expressions import reference_expressions

    references = reference_expressions(shared_data / "mead")
    assert {"mead-M030", "mead-W009"} <= set(references)
    for identity, per_emotion in references.items():
        happy = dict(zip(FEATURES, per_emotion["happy"], strict=True))
        surprised = dict(zip(FEATURES, per_emotion["surprised"], strict=True))
        assert happy["mouth_width"] > 0.08 and happy["corners_up"] > 0.02, identity
        assert surprised["inner_brows_up"] > 0.03, identity
        assert not per_emotion["neutral"].any()


@pytest.fixture(scope="module")
def rendered(shared_data, tmp_path_factory):
    """The default avatar speaking a held-out speaker's 2 s of speech: neutral, sad, happy
    and surprised, and blends from neutral to happy, each tracked on the rendered frames
    and read by the outside expression judge."""
    from engine.avatar.bundle import AvatarLibrary
    from engine.emotion_state import EmotionState
    from engine.evaluation.expression import render_features
    from engine.evaluation.judge import ExpressionJudge
    from engine.pipeline.portrait import PortraitEngine
    from server.settings import DEFAULT_AVATARS

    speech = shared_data / "talking2" / "spectre_LRS3_00002.mp4"
    engine, avatar = PortraitEngine.load("onnx"), AvatarLibrary(DEFAULT_AVATARS).get("default")
    work = tmp_path_factory.mktemp("expression")
    blend = lambda a: EmotionState(mode="blend", blend_from="neutral", blend_to="happy", alpha=a)
    states = {
        "neutral": EmotionState(),
        "sad": EmotionState(emotion="sad"),
        "blend 0.33": blend(1 / 3),
        "blend 0.67": blend(2 / 3),
        "happy": EmotionState(emotion="happy"),
        "surprised": EmotionState(emotion="surprised"),
    }
    judge = ExpressionJudge.load()
    return {
        name: render_features(speech, engine, avatar, s, work, judge) for name, s in states.items()
    }


def changes(rendered, kind: str) -> dict[str, dict[str, float]]:
    """{emotion: {feature: displacement from neutral}} on the predicted or rendered faces."""
    neutral = getattr(rendered["neutral"], kind)
    return {
        name: dict(zip(FEATURES, displacement(getattr(rendered[name], kind), neutral), strict=True))
        for name in ("sad", "happy", "surprised")
    }


def test_the_sketch_lowers_the_corners_for_sad_and_raises_them_for_happy(rendered):
    predicted = changes(rendered, "predicted")  # what the generator is given
    assert predicted["sad"]["corners_up"] < -0.008  # IOD
    assert predicted["sad"]["eyes_open"] < -0.03
    assert predicted["happy"]["corners_up"] > 0.01 and predicted["happy"]["mouth_width"] > 0.1


def test_on_rendered_frames_happy_raises_the_corners_and_sad_narrows_the_eyes(rendered):
    seen = changes(rendered, "rendered")  # FaceMesh on the default avatar's frames
    assert seen["happy"]["corners_up"] > 0.01 and seen["happy"]["mouth_width"] > 0.04
    assert seen["sad"]["eyes_open"] < -0.005
    assert seen["sad"]["corners_up"] < seen["happy"]["corners_up"] - 0.02


def test_on_rendered_frames_sad_lowers_the_mouth_corners(rendered):
    assert changes(rendered, "rendered")["sad"]["corners_up"] < -0.005  # IOD, below neutral's


def test_on_rendered_frames_surprise_raises_the_brows_and_opens_the_eyes(rendered):
    seen = changes(rendered, "rendered")["surprised"]
    assert seen["inner_brows_up"] > 0.04 and seen["outer_brows_up"] > 0.02
    assert seen["eyes_open"] > 0.01


def test_the_outside_judge_reads_neutral_and_more_of_each_emotion_asked(rendered):
    judged = {name: render.verdict for name, render in rendered.items()}
    assert judged["neutral"].top == "neutral" and judged["neutral"].p("neutral") > 0.6
    assert judged["happy"].p("happy") > judged["neutral"].p("happy") + 0.1
    # the blend towards happy reads more happy at its end than at its start
    assert judged["blend 0.67"].p("happy") > judged["neutral"].p("happy")


def test_blending_towards_happy_moves_the_rendered_face_monotonically(rendered):
    neutral = rendered["neutral"].rendered
    happy = displacement(rendered["happy"].rendered, neutral)
    along = [
        float(displacement(rendered[name].rendered, neutral) @ happy / (happy @ happy))
        for name in ("blend 0.33", "blend 0.67", "happy")
    ]
    assert 0.05 < along[0] < along[1] < along[2] == pytest.approx(1.0)
    predicted = [
        displacement(rendered[name].predicted, rendered["neutral"].predicted)
        for name in ("blend 0.33", "blend 0.67", "happy")
    ]
    norms = [float(np.linalg.norm(p)) for p in predicted]
    assert norms[0] < norms[1] < norms[2]
