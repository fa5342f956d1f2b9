"""Real talking clips as targets: the offset search finds a known shift, bad clips are
dropped with a reason, and the lips loss rewards the real spread of the opening."""

import shutil
from dataclasses import replace

import numpy as np
import pytest
import torch

from engine.training.lips import LipsOptions, lips_loss, opening
from engine.training.talking import MAX_OFFSET_S, MouthSync, clip_offset, load_talking


def _speech_like(times: np.ndarray) -> np.ndarray:
    return np.clip(np.sin(2 * np.pi * 3.1 * times) + 0.5 * np.sin(2 * np.pi * 1.3 * times), 0, None)


def _sync(times: np.ndarray, video_late_s: float) -> MouthSync:
    return MouthSync(times, _speech_like(times - video_late_s), _speech_like(times))


def test_offset_search_finds_a_known_shift():
    times = np.arange(0, 6, 1 / 25)
    offset, best, unshifted = clip_offset(_sync(times, 0.12), median_lag_s=0.0)
    assert abs(offset - 0.12) <= 0.011 and best.r > 0.95
    assert unshifted < best.r


def test_offset_is_relative_to_the_typical_lag():
    times = np.arange(0, 6, 1 / 25)
    offset, _, _ = clip_offset(_sync(times, 0.12), median_lag_s=0.04)
    assert abs(offset - 0.08) <= 0.011


def test_no_shift_without_clear_evidence():
    times = np.arange(0, 6, 1 / 25)
    rng = np.random.default_rng(0)
    noise = MouthSync(times, rng.standard_normal(len(times)), _speech_like(times))
    assert clip_offset(noise, 0.0)[0] == 0.0
    short = np.arange(0, 1.5, 1 / 25)
    assert clip_offset(_sync(short, 0.12), 0.0)[0] == 0.0  # too short to trust
    assert MAX_OFFSET_S >= 0.2


def _faces(open_by: np.ndarray) -> torch.Tensor:
    """(B, T) opening in IOD -> (B, T, 68, 2) displacements that open the lower lip."""
    out = torch.zeros(*open_by.shape, 68, 2)
    out[..., 66, 1] = torch.from_numpy(open_by).float()
    return out


def test_spread_loss_penalises_a_shrunken_mouth():
    rng = np.random.default_rng(0)
    real = np.abs(rng.standard_normal((2, 50))) * 0.1
    neutral = torch.zeros(2, 68, 2)
    usable = torch.ones(2, 50, dtype=torch.bool)
    options = LipsOptions(lambda_opening=0.0)
    full = lips_loss(_faces(real), _faces(real), neutral, usable, options)["spread"]
    shrunk = lips_loss(_faces(0.3 * real), _faces(real), neutral, usable, options)["spread"]
    assert float(full) < 1e-6 < float(shrunk)
    assert torch.allclose(opening(_faces(real)), torch.from_numpy(real).float())


def test_masked_frames_do_not_count():
    rng = np.random.default_rng(1)
    real = np.abs(rng.standard_normal((1, 40))) * 0.1
    glitch = real.copy()
    glitch[0, 10:20] = 5.0  # a tracking failure
    usable = torch.ones(1, 40, dtype=torch.bool)
    usable[0, 9:21] = False
    neutral = torch.zeros(1, 68, 2)
    a = lips_loss(_faces(real), _faces(real), neutral, usable, LipsOptions(lambda_spread=0.0))
    b = lips_loss(_faces(real), _faces(glitch), neutral, usable, LipsOptions(lambda_spread=0.0))
    for name in ("position", "opening"):
        assert float(a[name]) == pytest.approx(float(b[name]), abs=1e-6)


def side_by_side(source, out):
    """The clip twice, side by side, with its audio: two faces, one voice."""
    import av

    with av.open(str(source)) as clip, av.open(str(out), "w") as dest:
        source_video = clip.streams.video[0]
        video = dest.add_stream("libx264", rate=25)
        video.width, video.height = 2 * source_video.width, source_video.height
        video.pix_fmt = "yuv420p"
        audio = dest.add_stream("aac", rate=16000)
        audio.layout = "mono"
        for frame in clip.decode(source_video):
            image = frame.to_ndarray(format="rgb24")
            doubled = av.VideoFrame.from_ndarray(np.concatenate([image, image], 1), "rgb24")
            dest.mux(video.encode(doubled))
        dest.mux(video.encode(None))
        clip.seek(0)
        resampler = av.AudioResampler(format="fltp", layout="mono", rate=16000)
        for frame in clip.decode(clip.streams.audio[0]):
            for piece in resampler.resample(frame):
                piece.pts = None
                dest.mux(audio.encode(piece))
        dest.mux(audio.encode(None))


def test_real_clips_load_with_splits_and_reasons(shared_data, tmp_path):
    folder = tmp_path / "clips"
    folder.mkdir()
    for name in ("lipnet_test_video.mp4", "spectre_LRS3_00002.mp4"):
        shutil.copy(shared_data / "talking2" / name, folder / name)
    (folder / "broken.mp4").write_bytes(b"not a video")
    side_by_side(folder / "spectre_LRS3_00002.mp4", folder / "two_faces.mp4")
    talking = load_talking([folder], cache_dir=tmp_path / "tracking")
    by_name = {c.name: c for c in talking.clips}
    assert by_name["lipnet_test_video"].split == "train"
    assert by_name["spectre_LRS3_00002"].split == "val"
    for clip in talking.clips:
        assert clip.targets.shape == (clip.frames, 68, 2) and np.isfinite(clip.targets).all()
        assert clip.usable.mean() > 0.5 and abs(clip.offset_s) <= MAX_OFFSET_S + 0.1
        assert len(clip.hops) >= 4 * clip.frames
    reasons = dict(talking.skipped)
    assert set(reasons) == {str(folder / "broken.mp4"), str(folder / "two_faces.mp4")}
    assert "several faces" in reasons[str(folder / "two_faces.mp4")]


@pytest.fixture(scope="module")
def two_clips(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("lips")
    folder = root / "clips"
    folder.mkdir()
    for name in ("lipnet_test_video.mp4", "spectre_LRS3_00002.mp4"):
        shutil.copy(shared_data / "talking2" / name, folder / name)
    return load_talking([folder], cache_dir=root / "tracking")


def happy_widens():
    """Expression offsets (IOD) where only happy does something: the corners move out."""
    from engine.constants import EMOTIONS
    from engine.targets.expressions import ExpressionOffsets

    offsets = np.zeros((len(EMOTIONS), 68, 2))
    offsets[EMOTIONS.index("happy"), [48, 54], 0] = [-0.06, 0.06]
    return ExpressionOffsets(offsets, 1, ("mead-TEST",))


def test_lips_training_is_deterministic_and_records_the_split(two_clips, tmp_path):
    from engine.model.checkpoint import DEFAULT_WEIGHTS, load_checkpoint
    from engine.training.lips import train_lips

    options = LipsOptions(steps=3, batch=2, length=16)
    expressions = happy_widens()
    a = load_checkpoint(
        train_lips(two_clips, tmp_path / "a", options, DEFAULT_WEIGHTS, expressions)
    )
    b = load_checkpoint(
        train_lips(two_clips, tmp_path / "b", options, DEFAULT_WEIGHTS, expressions)
    )
    for key, value in a.model.state_dict().items():
        assert torch.equal(value, b.model.state_dict()[key]), key
    assert a.trained_groups == {"grid"}  # the LRS3 clip is a held-out speaker
    assert a.info["stages"]["lips"]["heldout_groups"] == ["lrs3"]
    assert a.info["stages"]["lips"]["expression_identities"] == ["mead-TEST"]
    start = load_checkpoint(DEFAULT_WEIGHTS).model.state_dict()
    moved = a.model.state_dict()
    assert not torch.equal(
        moved["landmarks.lstm.weight_hh_l0"], start["landmarks.lstm.weight_hh_l0"]
    )
    for frozen in ("emotion.conv.0.weight", "content.conv.0.weight"):  # Ee and Ec's convs
        assert torch.equal(moved[frozen], start[frozen]), frozen


def test_lips_training_refuses_other_options_on_a_finished_run(two_clips, tmp_path):
    from engine.errors import EngineError
    from engine.model.checkpoint import DEFAULT_WEIGHTS
    from engine.training.lips import train_lips

    options = LipsOptions(steps=2, batch=2, length=16)
    train_lips(two_clips, tmp_path, options, DEFAULT_WEIGHTS, happy_widens())
    with pytest.raises(EngineError, match="other options"):
        train_lips(two_clips, tmp_path, replace(options, steps=3), DEFAULT_WEIGHTS, happy_widens())
