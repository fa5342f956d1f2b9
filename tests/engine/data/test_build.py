import json

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")
pytest.importorskip("mediapipe")

from engine.data.build import build, open_dataset
from engine.errors import EngineError
from tests.conftest import tiny_corpus_config


@pytest.fixture
def tiny(shared_data, tmp_path):
    return tiny_corpus_config(
        shared_data,
        tmp_path,
        ("Actor_01", "Actor_02", "Actor_03"),
        "*-01-01-*.wav",  # normal intensity
        sentences=2,
        voices=2,
        intensities=(1.0,),
        shard_size=8,
        ravdess_pairs_per_sentence=3,
    )


def test_tiny_build_is_complete_consistent_and_resumable(tiny, tmp_path):
    out = tmp_path / "corpus"
    report = build(tiny, out)
    manifest, records = open_dataset(out)
    assert manifest["complete"] and manifest["records"] == len(records) == report["records"]
    synthetic = [r for r in records if r["kind"] == "synthetic"]
    assert len(synthetic) == 2 * 2 * 8 and report["synthetic"]["emotions"] == {
        e: 4 for e in report["synthetic"]["emotions"]
    }
    # Arrays and records agree: frames, audio length, phone timings.
    for record in synthetic[:5]:
        with np.load(out / "shards" / record["shard"]) as shard:
            mfcc = shard["mfcc"][record["frame_offset"] : record["frame_offset"] + record["frames"]]
            targets = shard["targets"][
                record["frame_offset"] : record["frame_offset"] + record["frames"]
            ]
        assert mfcc.shape == (record["frames"], 28, 12) and targets.shape == (
            record["frames"],
            68,
            2,
        )
        assert record["frames"] == -(-record["samples"] // 640)
        assert record["phones"][-1][2] == pytest.approx(record["seconds"], abs=0.001)
    ravdess = [r for r in records if r["kind"] == "ravdess"]
    assert {r["split"] for r in ravdess} == {"train", "val", "test"}  # 3 actors, one per split
    assert report["pairs"] > 0 and (out / "trajectories.png").stat().st_size > 10_000
    assert "Teacher error" in (out / "report.md").read_text()

    # Resume: a lost shard and an unfinished manifest are rebuilt; the rest is kept.
    kept = out / "shards" / "synthetic-00000.npz"
    kept_time = kept.stat().st_mtime_ns
    (out / "shards" / "synthetic-00001.npz").unlink()
    manifest_data = json.loads((out / "manifest.json").read_text()) | {"complete": False}
    (out / "manifest.json").write_text(json.dumps(manifest_data))
    with pytest.raises(EngineError, match="did not finish"):
        open_dataset(out)
    build(tiny, out)
    assert kept.stat().st_mtime_ns == kept_time
    assert len(open_dataset(out)[1]) == len(records)


def test_another_configuration_cannot_overwrite_a_build(tiny, tmp_path):
    out = tmp_path / "corpus"
    (out).mkdir()
    (out / "manifest.json").write_text(json.dumps({"config_key": "something-else"}))
    with pytest.raises(EngineError, match="another configuration"):
        build(tiny, out)
    with pytest.raises(EngineError, match="not a corpus"):
        open_dataset(tmp_path)


def test_a_missing_input_folder_is_refused_before_anything_is_written(tiny, tmp_path):
    from dataclasses import replace

    out = tmp_path / "corpus"
    with pytest.raises(EngineError, match=r"no such folder: --mead .*nowhere"):
        build(replace(tiny, mead=str(tmp_path / "nowhere")), out)
    assert not out.exists()
