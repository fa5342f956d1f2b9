import numpy as np
import pytest
import torch

from engine.avatar.training import SampleSet, TrainOptions, train_generator
from engine.errors import EngineError
from tests.engine.avatar.test_generator import SMALL


def _samples(count=6, size=64):
    """A bright disc (the 'face') that moves right frame by frame; its sketch is its outline."""
    import cv2

    rgb = np.full((count, size, size, 3), 40, np.uint8)
    guidance = np.zeros((count, 6, size, size), np.uint8)
    mask = np.zeros((count, size, size), np.float32)
    for i in range(count):
        centre = (24 + 3 * i, 32)
        cv2.circle(rgb[i], centre, 10, (220, 180, 150), -1)
        cv2.circle(guidance[i, 0], centre, 10, 255, 1)
        cv2.circle(mask[i], centre, 14, 1.0, -1)
    return SampleSet(rgb, guidance, mask, np.array([(i, i + 1) for i in range(count - 1)]))


def _options(steps):
    return TrainOptions(steps=steps, batch_pairs=2, lr=2e-3, warmup=0.5, save_every=3)


def _l1(generator, samples):
    with torch.no_grad():
        x, y = samples.batch(np.arange(len(samples.rgb)))
        return float((generator(x) - y).abs().mean())


def test_training_learns_to_draw_the_face(tmp_path):
    torch.manual_seed(0)
    samples = _samples()
    from engine.avatar.generator import Generator

    before = _l1(Generator(SMALL).eval(), samples)
    after = _l1(train_generator(samples, SMALL, _options(40), tmp_path / "s.pt"), samples)
    assert after < 0.5 * before


def test_an_interrupted_run_resumes_to_the_same_weights(tmp_path):
    samples = _samples()
    straight = train_generator(samples, SMALL, _options(6), tmp_path / "a.pt")
    # Stop after step 3 (the state file is written there), then run again.
    calls = []

    def stop_at_four(step, total):
        calls.append(step)
        if step == 4:
            raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        train_generator(samples, SMALL, _options(6), tmp_path / "b.pt", on_progress=stop_at_four)
    resumed = train_generator(
        samples, SMALL, _options(6), tmp_path / "b.pt", on_progress=lambda s, _: calls.append(s)
    )
    assert calls == [1, 2, 3, 4, 4, 5, 6]
    for (name, a), b in zip(
        straight.state_dict().items(), resumed.state_dict().values(), strict=True
    ):
        assert torch.equal(a, b), name
    with pytest.raises(EngineError, match="other options"):
        train_generator(samples, SMALL, _options(7), tmp_path / "b.pt")


def test_jitter_moves_input_target_and_both_frames_of_a_pair_together():
    from engine.avatar.training import jitter

    rng = np.random.default_rng(0)
    first = torch.rand(2, 10, 32, 32)
    inputs = torch.cat([first, first])  # pairs of identical frames
    real = inputs[:, 6:9].clone()  # the target is one of the input's planes
    moved, moved_real = jitter(inputs, real, 0.1, rng)
    assert not torch.allclose(moved, inputs)
    assert torch.equal(moved[:2], moved[2:])
    assert torch.allclose(moved_real, moved[:, 6:9])
    assert jitter(inputs, real, 0.0, rng)[0] is inputs


def test_the_loss_weighs_brows_eyelids_and_lips_and_keeps_a_mean_of_one():
    from engine.avatar.training import feature_weights

    inputs = torch.zeros(2, 10, 64, 64)
    inputs[0, 3, 30, 20:40] = 1.0  # an eyelid line (channel 3: eyes)
    inputs[1, 0, 30, 20:40] = 1.0  # a jaw line: not weighed
    weights = feature_weights(inputs, 4.0)
    assert weights.shape == (2, 1, 64, 64)
    assert weights.mean(dim=(2, 3)).flatten().tolist() == pytest.approx([1.0, 1.0])
    near, far = weights[0, 0, 31, 30], weights[0, 0, 5, 5]  # one pixel off the line; a corner
    assert near / far == pytest.approx(4.0)
    assert torch.allclose(weights[1], torch.ones(1, 64, 64))  # the jaw is not a feature
    assert torch.allclose(feature_weights(inputs, 1.0), torch.ones(2, 1, 64, 64))
