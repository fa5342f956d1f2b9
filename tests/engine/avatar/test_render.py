"""FaceRenderer on the shipped default avatar: what it keeps between frames changes nothing."""

import numpy as np

from engine.avatar.bundle import AvatarLibrary
from engine.avatar.render import FaceRenderer
from engine.avatar.samples import crop_sample
from server.settings import DEFAULT_AVATARS


def test_frames_drawn_with_kept_masks_equal_frames_drawn_from_scratch():
    avatar = AvatarLibrary(DEFAULT_AVATARS).get("default")
    renderer = FaceRenderer(avatar)
    rng = np.random.default_rng(0)
    for index in (0, 37, 99):
        face = avatar.track.landmarks[index] + rng.normal(0, 2, (68, 2))
        kept = renderer.sample(index, face)
        fresh = crop_sample(
            avatar.frames[index], face, renderer.box, renderer.size,
            target_face=avatar.track.landmarks[index], edges=avatar.track.edge_map(index),
        )  # fmt: skip
        assert np.array_equal(kept.mask, fresh.mask)
        assert np.array_equal(kept.guidance, fresh.guidance)
        assert np.array_equal(kept.rgb, fresh.rgb)
    assert len(renderer._own_masks) == avatar.frames.shape[0]  # made when it loaded
