"""A resumable, seeded optimisation loop with progress, shared by every training stage.

A stage writes ``<run>/<stage>.state.pt`` (networks, optimiser, step, random states) every
``save_every`` steps and ``<run>/<stage>.safetensors`` when it finishes. Running the same
command again resumes from the state file, or does nothing if the stage is finished.
"""

import logging
import random
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import cast

import numpy as np
import torch

from engine.errors import EngineError

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoopOptions:
    steps: int
    lr: float = 1e-3
    save_every: int = 250
    log_every: int = 50
    seed: int = 0
    signature: dict = field(default_factory=dict)  # what an interrupted run must match to resume


def seed_everything(seed: int) -> np.random.Generator:
    random.seed(seed)
    torch.manual_seed(seed)
    return np.random.default_rng(seed)


class _Progress:
    def __init__(self, label: str, total: int, start: int) -> None:
        self.label, self.total, self.started, self.first = label, total, time.monotonic(), start

    def show(self, step: int, losses: dict[str, float]) -> None:
        rate = (step - self.first) / max(time.monotonic() - self.started, 1e-6)
        eta = (self.total - step) / max(rate, 1e-6)
        text = " ".join(f"{k} {v:.4f}" for k, v in losses.items())
        line = f"{self.label}: step {step}/{self.total} {text} ({rate:.1f} it/s, eta {eta:.0f} s)"
        if sys.stderr.isatty():
            print("\r" + line, end="\n" if step >= self.total else "", file=sys.stderr, flush=True)
        else:
            print(line, file=sys.stderr, flush=True)


def run_loop(
    label: str,
    state_path: Path,
    modules: torch.nn.Module,
    parameters: list[torch.nn.Parameter],
    step_fn: Callable[[np.random.Generator], dict[str, torch.Tensor]],
    options: LoopOptions,
    on_log: Callable[[int], dict[str, float]] | None = None,
) -> dict[str, float]:
    """Minimise ``sum(step_fn(rng).values())`` for options.steps steps; returns the mean
    of each loss over the last log interval."""
    rng = seed_everything(options.seed)
    optimiser = torch.optim.Adam(parameters, lr=options.lr)
    schedule = torch.optim.lr_scheduler.CosineAnnealingLR(
        optimiser, options.steps, eta_min=options.lr * 0.05
    )
    signature = {"steps": options.steps, "lr": options.lr, "seed": options.seed} | options.signature
    step = load_state(
        state_path, signature, rng, modules=modules, optimiser=optimiser, schedule=schedule
    )
    if step:
        logger.info("%s: resuming at step %d", label, step)
    progress = _Progress(label, options.steps, step)
    recent: dict[str, list[float]] = {}
    last: dict[str, float] = {}
    while step < options.steps:
        modules.train()
        losses = step_fn(rng)
        total = cast(torch.Tensor, sum(losses.values()))  # sum's 0 start: losses is not empty
        optimiser.zero_grad(set_to_none=True)
        total.backward()
        torch.nn.utils.clip_grad_norm_(parameters, 5.0)
        optimiser.step()
        schedule.step()
        step += 1
        for k, v in losses.items():
            recent.setdefault(k, []).append(v.item())
        if step % options.log_every == 0 or step == options.steps:
            summary = {k: float(np.mean(v)) for k, v in recent.items()}
            if on_log is not None and (
                step % (options.log_every * 10) == 0 or step == options.steps
            ):
                modules.eval()
                with torch.no_grad():
                    summary |= on_log(step)
            progress.show(step, summary)
            last, recent = summary, {}
        if step % options.save_every == 0 and step < options.steps:
            save_state(
                state_path,
                step,
                rng,
                signature,
                modules=modules,
                optimiser=optimiser,
                schedule=schedule,
            )
    modules.eval()
    return last


def save_state(path: Path, step: int, rng: np.random.Generator, signature: dict, **parts) -> None:
    """Write a resumable state atomically: each part's state_dict, the step, every random
    generator and the signature a resuming run must match."""
    tmp = path.with_name(path.name + ".partial")
    torch.save(
        {name: part.state_dict() for name, part in parts.items()}
        | {
            "step": step,
            "numpy_rng": rng.bit_generator.state,
            "torch_rng": torch.get_rng_state(),
            "python_rng": random.getstate(),
            "signature": signature,
        },
        tmp,
    )
    tmp.replace(path)


def load_state(path: Path, signature: dict, rng: np.random.Generator, **parts) -> int:
    """Restore what save_state wrote into the parts and random generators; returns the step
    to resume at (0 when there is no state file). A state with another signature is an
    error that names the file."""
    if not path.is_file():
        return 0
    state = torch.load(path, map_location="cpu", weights_only=False)
    if state.get("signature") != signature:
        raise EngineError(
            f"{path} is an interrupted run with other options ({state.get('signature')}); "
            "run it again with those, or delete the file to start over"
        )
    for name, part in parts.items():
        part.load_state_dict(state[name])
    rng.bit_generator.state = state["numpy_rng"]
    torch.set_rng_state(state["torch_rng"])
    random.setstate(state["python_rng"])
    return int(state["step"])
