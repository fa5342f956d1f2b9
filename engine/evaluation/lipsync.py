"""``evp eval lipsync``: how well the predicted lips follow real ones, clip by clip.

For each clip, ``engine.evaluation.landmarks.evaluate_clip`` gives the tracked frontal
landmarks, the model's prediction from the clip's own audio, and two baselines: the
clip's mean tracked face held still, and the audio-energy face. Each is compared on the
inner-lip opening (iBUG 66 below 62, % of the inter-ocular distance):

    r          Pearson r with the tracked opening at the best lag within ``MAX_LAG_S``
               (the lag reported; > 0: the method's mouth moves later than the real one)
    amplitude  std of the method's opening over std of the tracked one (1: full motion;
               L2-trained models shrink it toward a half-open mouth)
    M-LD/M-LVD as ``evp eval landmarks``

The mean over clips weights each clip equally. The still face has no r (it does not
move): None. The PNG plots every clip's openings over time.
"""

from collections.abc import Set as AbstractSet
from pathlib import Path

import numpy as np

from engine.evaluation.landmarks import ClipResult, evaluate_clips
from engine.model.emotion_space import EmotionSpace
from engine.model.inference import LandmarkModel
from engine.targets.sync import FLAT, best_lag
from engine.targets.teacher import PERCENT

MAX_LAG_S = 0.12
METHODS = ("model", "audio_energy", "mean_face")


def amplitude_ratio(reference: np.ndarray, candidate: np.ndarray) -> float:
    spread = float(np.std(reference))
    return float(np.std(candidate)) / spread if spread > FLAT else float("nan")


def clip_figures(result: ClipResult) -> dict[str, dict]:
    """Per method: r, lag_ms, amplitude, M-LD, M-LVD on one evaluated clip."""
    tracked = result.openings["tracked"]
    out = {}
    for method in METHODS:
        opening = result.openings[method]
        sync = best_lag(result.times, tracked, opening, MAX_LAG_S)
        out[method] = {
            "r": None if sync.r is None else round(sync.r, 3),
            "lag_ms": None if sync.r is None else round(1000 * sync.lag_s),
            "amplitude": round(amplitude_ratio(tracked, opening), 3),
            "M-LD": round(result.metrics[method]["M-LD"], 3),
            "M-LVD": round(result.metrics[method]["M-LVD"], 3),
            "opening_std_iod_pct": round(PERCENT * float(np.std(opening)), 3),
        }
    return out


def mean_figures(per_clip: dict[str, dict[str, dict]]) -> dict[str, dict]:
    """Each method's figures averaged over the clips (None values left out)."""
    out: dict[str, dict] = {}
    for method in METHODS:
        rows = [figures[method] for figures in per_clip.values()]
        out[method] = {}
        for key in ("r", "lag_ms", "amplitude", "M-LD", "M-LVD"):
            values = [row[key] for row in rows if row[key] is not None and np.isfinite(row[key])]
            out[method][key] = round(float(np.mean(values)), 3) if values else None
    return out


def evaluate_lipsync(
    model: LandmarkModel,
    space: EmotionSpace,
    clips_dir: Path | list[Path],
    cache_dir: Path | None = None,
    png: Path | None = None,
    trained_groups: AbstractSet[str] = frozenset(),
) -> dict:
    """The figures of the module doc on every clip whose speaker is not in
    ``trained_groups``."""
    results, skipped = evaluate_clips(
        model, space, clips_dir, cache_dir, png, trained_groups=trained_groups
    )
    per_clip: dict[str, dict] = {r.name: {"frames": r.frames, **clip_figures(r)} for r in results}
    figures_only = {name: {m: row[m] for m in METHODS} for name, row in per_clip.items()}
    return {
        "units": "M-LD/M-LVD and openings in % of inter-ocular distance; lag in ms",
        "max_lag_ms": round(1000 * MAX_LAG_S),
        "lookahead_ms": round(model.window.lookahead_seconds * 1000, 1),
        "clips": len(results),
        "mean": mean_figures(figures_only),
        "per_clip": per_clip,
        "skipped": skipped,
    }
