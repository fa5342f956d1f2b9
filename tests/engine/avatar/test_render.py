"""FaceRenderer on the shipped default avatar: what it keeps between frames changes nothing,
and several threads may render at once."""

import threading
from concurrent.futures import ThreadPoolExecutor

import numpy as np
import pytest

from engine.avatar.bundle import AvatarLibrary
from engine.avatar.render import FaceRenderer
from engine.avatar.samples import crop_sample
from engine.runtime.generator import OnnxGenerator
from server.settings import DEFAULT_AVATARS


def test_frames_drawn_with_kept_masks_equal_frames_drawn_from_scratch():
    avatar = AvatarLibrary(DEFAULT_AVATARS).get("default")
    renderer = FaceRenderer(avatar)
    rng = np.random.default_rng(0)
    last = avatar.frames.shape[0] - 1
    for index in (0, last // 2, last):
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


class _OneAtATime:
    """A generator backend that must not be entered twice at once (a CUDA graph's static
    buffers, a TensorRT context): counts how many threads are inside it."""

    def __init__(self, size: int, concurrent: bool) -> None:
        self.size, self.concurrent = size, concurrent
        self.inside = self.most_inside = 0
        self._count = threading.Lock()
        self._entered = threading.Barrier(2, timeout=1.0)

    def __call__(self, x: np.ndarray) -> np.ndarray:
        with self._count:
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            self._entered.wait()  # a second caller arrives here only if calls overlap
        except threading.BrokenBarrierError:
            pass
        with self._count:
            self.inside -= 1
        return np.zeros((x.shape[0], 3, self.size, self.size), np.float32)


@pytest.mark.parametrize("concurrent", [False, True])
def test_a_generator_is_entered_by_one_thread_at_a_time_unless_it_allows_more(concurrent):
    avatar = AvatarLibrary(DEFAULT_AVATARS).get("default")
    size = int(avatar.manifest.generator["size"])
    generator = _OneAtATime(size, concurrent)
    renderer = FaceRenderer(avatar, generator)
    with ThreadPoolExecutor(2) as pool:
        frames = list(pool.map(lambda i: renderer.render(i, avatar.track.landmarks[i]), [0, 1]))
    assert generator.most_inside == (2 if concurrent else 1)
    assert [f.frame.shape for f in frames] == [avatar.frames.shape[1:]] * 2


def test_onnx_runtime_generators_allow_overlapping_calls():
    assert OnnxGenerator.concurrent
