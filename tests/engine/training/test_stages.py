"""Every training stage on a tiny corpus: checkpoints load and run, stages chain, bad
requests get clear errors."""

import numpy as np
import pytest

pytest.importorskip("espeakng_loader")
pytest.importorskip("mediapipe")

from engine.data.build import build
from engine.errors import EngineError
from engine.model.checkpoint import load_checkpoint
from engine.model.emotion_space import EmotionSpace
from engine.model.inference import LandmarkModel
from engine.training.corpus import load_corpus
from engine.training.names import STAGES
from engine.training.stages import StageOptions, train_stage
from tests.conftest import tiny_corpus_config


@pytest.fixture(scope="module")
def corpus(shared_data, tmp_path_factory):
    root = tmp_path_factory.mktemp("tiny")
    config = tiny_corpus_config(
        shared_data,
        root,
        ("Actor_03", "Actor_04", "Actor_05", "Actor_06"),
        "*.wav",
        sentences=2,
        voices=1,
        intensities=(1.0,),
        shard_size=16,
        ravdess_pairs_per_sentence=4,
    )
    build(config, root / "corpus")
    return load_corpus(root / "corpus")


def test_corpus_items_are_consistent(corpus):
    assert {item.kind for item in corpus.items} == {"synthetic", "ravdess"}
    for item in corpus.items:
        assert item.hops.shape[1] == 15 and len(item.hops) <= 4 * item.frames + 1
        assert item.targets.shape == (item.frames, 68, 2) and np.isfinite(item.targets).all()
        assert item.visemes.shape == (item.frames,)
    assert corpus.pairs
    for a, b, frame_map in corpus.pairs:
        assert len(frame_map) == corpus.items[a].frames
        assert 0 <= frame_map.min() and frame_map.max() < corpus.items[b].frames
        assert (np.diff(frame_map) >= 0).all()  # alignments never go backwards


def test_all_stages_chain_into_a_working_model(corpus, tmp_path, speech):
    options = StageOptions(steps=4, batch=4, lookahead_hops=4)
    for stage in STAGES:
        path = train_stage(stage, corpus, tmp_path, options)
    checkpoint = load_checkpoint(path)
    assert set(checkpoint.info["stages"]) == set(STAGES)
    assert checkpoint.config.lookahead_hops == 4
    train_speakers = set(checkpoint.info["train_speakers"])
    assert train_speakers and all(
        corpus.items[i].speaker in train_speakers for i in corpus.select("train")
    )
    space = EmotionSpace.from_checkpoint(checkpoint)
    model = LandmarkModel(checkpoint)
    windows, _ = model.windows(speech[:16000])
    landmarks = model.predict(windows, space.category("happy", 0.5), corpus.canonical)
    assert landmarks.shape == (25, 68, 2) and np.isfinite(landmarks).all()
    # A finished stage is not trained again; a mismatched look-ahead is refused.
    assert train_stage("landmarks", corpus, tmp_path, options) == path
    (tmp_path / "landmarks.safetensors").unlink()
    with pytest.raises(EngineError, match="lookahead_hops=4"):
        train_stage("landmarks", corpus, tmp_path, StageOptions(steps=2, lookahead_hops=12))


def test_ablation_switch_and_missing_previous_stage(corpus, tmp_path):
    with pytest.raises(EngineError, match="run `evp train content` first"):
        train_stage("disentangle", corpus, tmp_path, StageOptions(steps=2))
    with pytest.raises(EngineError, match="unknown stage"):
        train_stage("generator", corpus, tmp_path, StageOptions(steps=2))
    options = StageOptions(steps=2, batch=4)
    train_stage("emotion", corpus, tmp_path, options)
    train_stage("content", corpus, tmp_path, options)
    out = train_stage(
        "disentangle",
        corpus,
        tmp_path / "wo",
        StageOptions(steps=2, batch=4, without=("cross",)),
        start_from=tmp_path / "content.safetensors",
    )
    info = load_checkpoint(out).info["stages"]["disentangle"]
    assert "cross" not in info["final_losses"] and "self" in info["final_losses"]
    with pytest.raises(EngineError, match="other options"):  # same folder, other losses
        train_stage("disentangle", corpus, tmp_path / "wo", StageOptions(steps=2, batch=4))

    from engine.evaluation.disentangle import evaluate_disentangle

    full = train_stage("disentangle", corpus, tmp_path, options)
    variants = {"full": load_checkpoint(full), "without-cross": load_checkpoint(out)}
    result = evaluate_disentangle(variants, corpus, png=tmp_path / "codes.png")["variants"]
    assert result["full"]["utterances"] == result["without-cross"]["utterances"] > 0
    for metrics in result.values():
        assert 0 <= metrics["emotion_accuracy"] <= 1 and -1 <= metrics["silhouette"] <= 1
        assert metrics["cross_mse"] > 0 and metrics["content_gap"] >= 0
    assert (tmp_path / "codes.png").stat().st_size > 1000
