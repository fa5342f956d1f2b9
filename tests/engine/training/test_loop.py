"""The training loop: seeded runs repeat exactly, and an interrupted run resumes to the
same result as one that was never interrupted."""

import pytest
import torch

from engine.training.loop import LoopOptions, run_loop


class Interrupted(Exception):
    pass


def _problem():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.Tanh(), torch.nn.Linear(8, 1))
    target = torch.nn.Linear(4, 1)

    def step(rng, stop_at=None, counter=[0]):  # noqa: B006 (a call counter)
        counter[0] += 1
        if stop_at is not None and counter[0] > stop_at:
            raise Interrupted
        x = torch.from_numpy(rng.standard_normal((16, 4))).float()
        noisy = x + 0.1 * torch.randn_like(x)  # torch's RNG too must be restored
        return {"mse": (net(noisy) - target(x).detach()).pow(2).mean()}

    return net, step


def test_interrupted_run_resumes_to_the_same_weights(tmp_path):
    options = LoopOptions(steps=30, save_every=10, log_every=10, seed=5)
    net, step = _problem()
    run_loop("t", tmp_path / "a.state.pt", net, list(net.parameters()), step, options)
    straight = [p.detach().clone() for p in net.parameters()]

    net, step = _problem()
    with pytest.raises(Interrupted):
        run_loop(
            "t",
            tmp_path / "b.state.pt",
            net,
            list(net.parameters()),
            lambda rng: step(rng, stop_at=25),
            options,
        )
    assert (tmp_path / "b.state.pt").is_file()  # saved at step 20
    net, step = _problem()  # a fresh process: new modules, state from disk
    losses = run_loop("t", tmp_path / "b.state.pt", net, list(net.parameters()), step, options)
    for a, b in zip(straight, net.parameters(), strict=True):
        torch.testing.assert_close(a, b.detach())
    assert losses["mse"] < 1.0


def test_an_interrupted_run_is_not_resumed_with_other_options(tmp_path):
    from engine.errors import EngineError

    net, step = _problem()
    options = LoopOptions(steps=30, save_every=10, seed=5, signature={"without": ["cross"]})
    with pytest.raises(Interrupted):
        run_loop(
            "t", tmp_path / "s.pt", net, list(net.parameters()), lambda rng: step(rng, 15), options
        )
    other = LoopOptions(steps=30, save_every=10, seed=5, signature={"without": []})
    with pytest.raises(EngineError, match="other options"):
        run_loop("t", tmp_path / "s.pt", net, list(net.parameters()), step, other)
