"""The generator renders what the landmarks say: real speech drives the default avatar,
FaceMesh tracks its rendered mouth, and the rendered opening follows the predicted one."""

import pytest

pytest.importorskip("mediapipe")

from engine.avatar.bundle import AvatarLibrary
from engine.evaluation.rendered_lips import evaluate_rendered_lips
from engine.pipeline.portrait import PortraitEngine
from server.settings import DEFAULT_AVATARS


def test_default_avatar_mouth_follows_the_predicted_lips(shared_data, tmp_path):
    clip = shared_data / "talking2" / "spectre_LRS3_00002.mp4"  # a held-out speaker
    result = evaluate_rendered_lips(
        PortraitEngine.load("onnx"),
        AvatarLibrary(DEFAULT_AVATARS).get("default"),
        [clip],
        cache_dir=tmp_path / "tracking",
        keep=tmp_path / "renders",
    )
    figures = result["per_clip"][clip.stem]
    assert figures["tracked"] == figures["frames"] > 40
    assert figures["r"] > 0.6  # rendered opening vs the landmarks the generator was given
    assert figures["range"] > 0.25  # a visible part of the real speaker's motion
    assert (tmp_path / "renders" / f"{clip.stem}.mp4").is_file()
