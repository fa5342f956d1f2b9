import wave

import av
import numpy as np
import pytest

from engine.audio.decode import read_audio
from engine.audio.frontend import AudioFrontEnd, FrontEndOptions
from engine.audio.pcm import float_to_int16
from engine.constants import WEBRTC_SAMPLE_RATE
from engine.errors import EngineError
from engine.pipeline.cli import parse_blend, parse_emotion
from engine.pipeline.render_video import EmotionChoice, render_video
from server.cli import main

HAPPY = EmotionChoice(parse_emotion("happy:0.8"))


@pytest.fixture(scope="module")
def wav(speech, tmp_path_factory):
    """4 s of real speech as a 16 kHz WAV (the renderer reads it at 48 kHz like WebRTC)."""
    path = tmp_path_factory.mktemp("speech") / "speech.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1), w.setsampwidth(2), w.setframerate(16000)
        w.writeframes(float_to_int16(speech[: 16000 * 4]).tobytes())
    return path


@pytest.fixture(scope="module")
def rendered(wav, engine, avatar, tmp_path_factory):
    out = tmp_path_factory.mktemp("render") / "out.mp4"
    result = render_video(wav, out, engine, avatar, HAPPY, out.with_suffix(".npy"))
    return out, result


def _decode(path):
    with av.open(str(path)) as container:
        v, a = container.streams.video[0], container.streams.audio[0]
        streams = {
            "video_start": float(v.start_time * v.time_base),
            "audio_start": float(a.start_time * a.time_base),
            "rate": float(v.average_rate),
        }
        frames = [f.to_ndarray(format="rgb24") for f in container.decode(video=0)]
        container.seek(0)
        audio = np.concatenate([f.to_ndarray().mean(axis=0) for f in container.decode(audio=0)])
    return streams, np.stack(frames), audio


def test_the_video_has_a_frame_per_40_ms_of_audio_in_sync_from_zero(rendered, wav):
    out, result = rendered
    streams, frames, audio = _decode(out)
    assert result["frames"] == len(frames) == 100 and streams["rate"] == 25
    assert streams["video_start"] == 0 and streams["audio_start"] == 0
    assert abs(len(audio) / WEBRTC_SAMPLE_RATE - 4.0) < 0.05
    # The muxed voice is the input's, not shifted: cross-correlate envelopes (10 ms hops).
    from engine.audio.decode import read_audio

    source = read_audio(wav, WEBRTC_SAMPLE_RATE)
    hop = WEBRTC_SAMPLE_RATE // 100
    env = lambda x: np.sqrt(np.mean(x[: len(x) // hop * hop].reshape(-1, hop) ** 2, axis=1))
    a, b = env(source), env(audio)[: len(env(source))]
    lags = range(-5, 6)
    scores = [np.corrcoef(a[10 + k : len(b) - 10 + k], b[10 : len(b) - 10])[0, 1] for k in lags]
    assert lags[int(np.argmax(scores))] == 0 and max(scores) > 0.95
    assert not out.with_name(out.name + ".partial").exists()


def test_the_file_shows_what_the_pipeline_made(rendered, wav, engine, avatar):
    """The render is the session path: the same frames as ticking the engine directly."""
    out, _ = rendered
    landmarks = np.load(out.with_suffix(".npy"))
    assert landmarks.shape == (100, 68, 2) and landmarks.dtype == np.float32
    from engine.audio.decode import read_audio

    frontend = AudioFrontEnd(WEBRTC_SAMPLE_RATE, FrontEndOptions(window=engine.window))
    audio = read_audio(wav, WEBRTC_SAMPLE_RATE)
    records = frontend.push_input(audio) + frontend.finish()
    session = engine.open("direct", avatar, HAPPY.state)
    try:
        direct = [engine.tick([(session, [r], r.index)])[0][0] for r in records[:60]]
    finally:
        session.close()
    np.testing.assert_allclose(landmarks[:60], np.stack([f.frontal for f in direct]), atol=1e-5)
    _, frames, _ = _decode(out)
    for k in (10, 59):
        error = np.mean((frames[k].astype(float) - direct[k].image.astype(float)) ** 2)
        assert 10 * np.log10(255**2 / error) > 35  # only H.264 stands between them
    # The mouth moves with the voice: its opening varies over the clip.
    gap = np.linalg.norm(landmarks[:, 66] - landmarks[:, 62], axis=1)
    assert gap.max() - gap.min() > 0.03


def test_bad_input_says_what_is_wrong_and_keeps_what_was_there(wav, engine, avatar, tmp_path):
    out = tmp_path / "keep.mp4"
    out.write_bytes(b"an earlier render")
    junk = tmp_path / "junk.wav"
    junk.write_text("not audio")
    with pytest.raises(EngineError, match="not a readable audio"):
        render_video(junk, out, engine, avatar)
    with pytest.raises(EngineError, match="no such file"):
        render_video(tmp_path / "none.wav", out, engine, avatar)
    with pytest.raises(EngineError, match=r"\.mp4"):
        render_video(wav, tmp_path / "out.avi", engine, avatar)
    with pytest.raises(EngineError, match=r"\.npy"):
        render_video(wav, out, engine, avatar, landmarks_out=tmp_path / "marks.txt")
    (tmp_path / "dir.mp4").mkdir()
    with pytest.raises(EngineError, match="is a directory"):
        render_video(wav, tmp_path / "dir.mp4", engine, avatar)
    (tmp_path / "dir.mp4").rmdir()

    class Broken:  # fails half-way through, like a crash mid-render
        def __init__(self):
            self.calls = 0

        def __getattr__(self, name):
            return getattr(engine, name)

        def tick(self, work):
            self.calls += 1
            if self.calls > 20:
                raise RuntimeError("boom")
            return engine.tick(work)

    with pytest.raises(RuntimeError, match="boom"):
        render_video(wav, out, Broken(), avatar)
    assert out.read_bytes() == b"an earlier render"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["junk.wav", "keep.mp4"]  # no partials
    assert len(engine) == 0  # the failed render's session was closed


def test_emotion_options_are_checked():
    assert parse_emotion("auto").mode == "auto"
    state = parse_blend("sad:happy:0.25")
    assert (state.blend_from, state.blend_to, state.alpha) == ("sad", "happy", 0.25)
    with pytest.raises(EngineError, match=r"\[0, 1\]"):
        parse_emotion("happy:1.5")
    with pytest.raises(EngineError, match="FROM:TO:ALPHA"):
        parse_blend("sad:happy")
    with pytest.raises(EngineError, match="number"):
        parse_blend("sad:happy:much")


def test_the_command(wav, tmp_path, capsys):
    out = tmp_path / "cli.mp4"
    assert main(["render", str(wav), "-o", str(out), "--blend", "sad:happy:0.5"]) == 0
    assert '"frames": 100' in capsys.readouterr().out and out.is_file()
    assert main(["render", str(wav), "-o", str(out), "--emotion", "bored"]) == 2
    assert "unknown emotion 'bored'" in capsys.readouterr().err
    assert main(["render", str(wav), "-o", str(out), "--avatar", "../etc"]) == 2
    assert "invalid avatar name" in capsys.readouterr().err


def test_the_emotion_of_another_clip(wav, engine, avatar, tmp_path):
    out = tmp_path / "borrowed.mp4"
    result = render_video(
        wav, out, engine, avatar, EmotionChoice(audio=wav), out.with_suffix(".npy")
    )
    assert result["emotion"] == f"from {wav}" and result["frames"] == 100
    code = engine.space.from_signal(read_audio(wav, 16000))
    neutral = render_video(
        wav,
        tmp_path / "n.mp4",
        engine,
        avatar,
        EmotionChoice(parse_emotion("neutral")),
        tmp_path / "n.npy",
    )
    assert neutral["frames"] == 100
    borrowed, plain = np.load(out.with_suffix(".npy")), np.load(tmp_path / "n.npy")
    assert np.abs(borrowed - plain).max() > 1e-3  # the borrowed code changed the face
    assert np.linalg.norm(code - engine.space.neutral) > 1e-3
