import numpy as np

from engine.avatar.crop import stable_crop
from engine.avatar.samples import crop_sample, feathered_mask, generator_input, to_image
from tests.engine.avatar.test_guidance import tracked  # noqa: F401  (fixture)


def test_a_sample_sketches_the_face_and_keeps_only_outside_edges(tracked):  # noqa: F811
    frame, landmarks = tracked
    box = stable_crop(landmarks[None], frame.shape[:2])
    sample = crop_sample(frame, landmarks, box, 128)
    assert sample.rgb.shape == (128, 128, 3) and sample.guidance.shape == (6, 128, 128)
    crop_points = box.apply(landmarks, 128)
    nose = tuple(np.round(crop_points[30, ::-1]).astype(int))
    assert sample.mask[nose] == 1.0 and sample.mask[0, 0] == 0.0
    assert sample.guidance[5][sample.mask >= 0.5].max() == 0  # no edges of the old face
    assert sample.guidance[5][sample.mask < 0.5].any()


def test_the_mask_covers_both_the_drawn_and_the_frame_own_face(tracked):  # noqa: F811
    frame, landmarks = tracked
    box = stable_crop(landmarks[None], frame.shape[:2])
    lowered = landmarks.copy()
    lowered[:, 1] += 40  # the drawn face sits lower than the frame's own
    sample = crop_sample(frame, lowered, box, 128, target_face=landmarks)
    own = feathered_mask(box.apply(landmarks, 128), 128)
    drawn = feathered_mask(box.apply(lowered, 128), 128)
    assert np.array_equal(sample.mask, np.maximum(own, drawn))


def test_generator_input_layout(tracked):  # noqa: F811
    frame, landmarks = tracked
    box = stable_crop(landmarks[None], frame.shape[:2])
    sample = crop_sample(frame, landmarks, box, 64)
    x = generator_input(sample)
    assert x.shape == (10, 64, 64) and x.dtype == np.float32
    assert np.array_equal(x[9], sample.mask)
    np.testing.assert_allclose(x[:6], sample.guidance / 255.0, atol=1e-6)
    outside = sample.mask == 0
    rgb = x[6:9].transpose(1, 2, 0)
    assert np.array_equal(to_image(rgb.transpose(2, 0, 1))[outside], sample.rgb[outside])
    assert np.abs(rgb[sample.mask == 1]).max() == 0  # the face is blanked out
    expected = (sample.rgb.astype(np.float32) / 127.5 - 1.0) * (1 - sample.mask[..., None])
    np.testing.assert_allclose(rgb, expected, atol=1e-6)


def test_a_kept_target_mask_gives_the_same_sample(tracked):  # noqa: F811
    frame, landmarks = tracked
    box = stable_crop(landmarks[None], frame.shape[:2])
    moved = landmarks + [3.0, 6.0]
    fresh = crop_sample(frame, moved, box, 96, target_face=landmarks)
    kept = feathered_mask(box.apply(landmarks, 96), 96)
    reused = crop_sample(frame, moved, box, 96, target_face=landmarks, target_mask=kept)
    for a, b in zip(fresh.__dict__.values(), reused.__dict__.values(), strict=True):
        assert np.array_equal(a, b)
