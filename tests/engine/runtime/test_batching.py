import numpy as np
import pytest

from engine.errors import EngineError
from engine.model.emotion_space import EmotionSpace
from engine.model.inference import LandmarkModel
from engine.runtime.batching import FrameRequest, LandmarkBatcher
from engine.runtime.landmarks import OnnxLandmarks


def test_many_sessions_in_one_batch_equal_each_session_alone(speech):
    model = LandmarkModel.load()
    space = EmotionSpace.from_checkpoint(model.checkpoint)
    windows, _ = model.windows(speech[: 16000 * 5])
    rng = np.random.default_rng(0)
    sessions = {
        # name: (neutral face, emotion code, first frame of its audio, tick it joins)
        "a": (model.canonical_face, space.category("happy", 1.0), 0, 0),
        "b": (model.canonical_face * 1.05, space.category("sad", 0.5), 30, 3),
        "c": (
            model.canonical_face + rng.normal(0, 0.01, (68, 2)),
            space.blend(space.category("angry"), space.category("fear"), 0.3),
            60,
            9,
        ),
    }
    frames = 40
    expected = {
        name: model.predict(windows[start : start + frames], code, neutral)
        for name, (neutral, code, start, _) in sessions.items()
    }
    batcher = LandmarkBatcher(OnnxLandmarks())
    got = {name: [] for name in sessions}
    for tick in range(frames + 9):
        requests = []
        for name, (neutral, code, start, joins) in sessions.items():
            if tick == joins:
                batcher.open(name, neutral)
            k = tick - joins
            if 0 <= k < frames:
                requests.append(FrameRequest(name, windows[start + k], code))
        for name, landmarks in batcher.run(requests).items():
            got[name].append(landmarks)
    for name in sessions:
        assert np.abs(np.stack(got[name]) - expected[name]).max() < 1e-3, name


def test_sessions_are_kept_apart_and_misuse_is_refused(speech):
    model = LandmarkModel.load()
    windows, _ = model.windows(speech[: 16000 * 2])
    code = EmotionSpace.from_checkpoint(model.checkpoint).category("neutral")
    batcher = LandmarkBatcher(OnnxLandmarks())
    batcher.open("a", model.canonical_face)
    batcher.open("b", model.canonical_face)
    first = batcher.run([FrameRequest("a", windows[10], code)])["a"]
    for k in range(5):  # a advances, b waits
        batcher.run([FrameRequest("a", windows[11 + k], code)])
    # b's first frame equals a's first frame: nothing of a leaked into b's state
    assert np.array_equal(batcher.run([FrameRequest("b", windows[10], code)])["b"], first)
    batcher.reset("a")
    assert np.array_equal(batcher.run([FrameRequest("a", windows[10], code)])["a"], first)
    with pytest.raises(EngineError, match="twice"):
        batcher.run([FrameRequest("a", windows[0], code), FrameRequest("a", windows[1], code)])
    with pytest.raises(EngineError, match="no open session"):
        batcher.run([FrameRequest("zzz", windows[0], code)])
    with pytest.raises(EngineError, match="already open"):
        batcher.open("a", model.canonical_face)
    batcher.close("a")
    assert len(batcher) == 1


def test_more_sessions_than_one_call_takes_are_split_and_still_equal_each_alone():
    from engine.runtime.batching import MAX_BATCH
    from engine.runtime.landmarks import OnnxLandmarks

    runtime = OnnxLandmarks()
    calls = []
    step = runtime.step
    runtime.step = lambda content, *rest: calls.append(len(content)) or step(content, *rest)
    batcher = LandmarkBatcher(runtime)
    rng = np.random.default_rng(0)
    neutral = LandmarkModel.load().canonical_face
    n = MAX_BATCH + 6
    for i in range(n):
        batcher.open(f"s{i}", neutral)
    windows = rng.standard_normal((n, 28, 12)).astype(np.float32)
    code = np.zeros(runtime.emotion_means.shape[1], np.float32)
    out = batcher.run([FrameRequest(f"s{i}", windows[i], code) for i in range(n)])
    assert calls == [MAX_BATCH, 6] and len(out) == n
    alone = LandmarkBatcher(runtime)
    alone.open("x", neutral)
    expected = alone.run([FrameRequest("x", windows[n - 1], code)])["x"]
    assert np.abs(out[f"s{n - 1}"] - expected).max() < 1e-5
