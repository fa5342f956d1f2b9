"""How well one signal follows another in time: Pearson r at the best lag.

Used to score predicted lips against tracked ones (`evp eval lipsync`, within ±120 ms)
and to find a clip's constant audio/video offset before training on it (mouth opening
against the audio's loudness, within ±200 ms).
"""

from dataclasses import dataclass

import numpy as np

STEP_S = 0.01  # the lag search's resolution: both signals resampled to 100 Hz
FLAT = 1e-9  # a signal with less spread than this does not move


@dataclass(frozen=True)
class Sync:
    r: float | None  # None: one of the two does not move
    lag_s: float


def best_lag(
    times: np.ndarray, reference: np.ndarray, candidate: np.ndarray, max_lag_s: float
) -> Sync:
    """Pearson r of ``candidate`` against ``reference`` (both sampled at ``times``,
    seconds) at the lag within ±``max_lag_s`` that maximises it; lag > 0: ``candidate``
    lags behind ``reference``."""
    ref, cand = _on_grid(times, reference, candidate)
    best = Sync(None, 0.0)
    steps = round(max_lag_s / STEP_S)
    for k in range(-steps, steps + 1):
        r = _lagged_r(ref, cand, k)
        if r is not None and (best.r is None or r > best.r):
            best = Sync(r, k * STEP_S)
    return best


def r_at_lag(
    times: np.ndarray, reference: np.ndarray, candidate: np.ndarray, lag_s: float
) -> float | None:
    """Pearson r of ``candidate`` at t + lag_s against ``reference`` at t (as best_lag)."""
    return _lagged_r(*_on_grid(times, reference, candidate), round(lag_s / STEP_S))


def _on_grid(times, reference, candidate) -> tuple[np.ndarray, np.ndarray]:
    if len(times) < 2:
        raise ValueError("a lag search needs at least two samples")
    grid = np.arange(times[0], times[-1], STEP_S)
    return np.interp(grid, times, reference), np.interp(grid, times, candidate)


def _lagged_r(ref: np.ndarray, cand: np.ndarray, k: int) -> float | None:
    """r of candidate at t + k steps against reference at t; None if either is flat."""
    a, b = (ref[: len(ref) - k], cand[k:]) if k >= 0 else (ref[-k:], cand[: len(cand) + k])
    if len(a) < 3 or a.std() < FLAT or b.std() < FLAT:
        return None
    return float(np.corrcoef(a, b)[0, 1])
