from engine.avatar.bundle import AvatarLibrary
from engine.runtime.bench import bench_engine, plot_engine
from server.settings import DEFAULT_AVATARS


def test_the_engine_benchmark_reports_every_stage_in_the_documented_shape(speech, tmp_path):
    avatar = AvatarLibrary(DEFAULT_AVATARS).get("default")
    result = bench_engine(speech, avatar, "onnx", seconds=1.0)
    assert result["backend"] == {"landmarks": "onnx", "generator": "onnx-int8"}  # shipped
    assert result["frames"] >= 15  # a second of audio, minus the look-ahead and 5 warm-up frames
    per_frame = result["per_frame_ms"]
    assert set(per_frame) == {"p50", "p95", "p99"} and isinstance(result["fps"], float)
    assert 0 < per_frame["p50"] <= per_frame["p95"] <= per_frame["p99"]
    assert set(result["stages"]) == {
        "features",
        "landmarks",
        "emotion",
        "alignment",
        "guidance",
        "generator",
        "composite",
        "encode",
    }
    for stage in result["stages"].values():
        assert 0 <= stage["p50"] <= stage["p95"] <= stage["p99"]
    assert set(result["throughput"]["landmarks"]) == {1, 4, 16, 64}
    plot_engine(result, tmp_path / "engine.png")
    assert (tmp_path / "engine.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_a_missing_speech_file_is_a_one_line_error(tmp_path, capsys):
    from server.cli import main

    missing = tmp_path / "nowhere.wav"
    assert main(["bench", "engine", "--wav", str(missing)]) == 2
    assert f"No such file or directory: {missing}" in capsys.readouterr().err
