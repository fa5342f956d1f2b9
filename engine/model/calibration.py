"""Calibrating Ce: how far its probabilities can be trusted, and temperature scaling.

Ce was trained to classify its training speakers' emotion codes, and is as sure of
itself on new voices as on those (on held-out RAVDESS speakers, 0.46 accuracy with
much higher mean confidence). Temperature scaling (Guo et al., ICML 2017) divides the
logits by one T > 0 fitted to minimise the negative log-likelihood on held-out
speakers: the ranking, so the accuracy, is unchanged; only the confidence moves.

    held_out_logits(checkpoint, ravdess)  (N, K) logits, (N,) truth, (N,) speaker of
                                          every utterance of a speaker Ce never heard
    fit_temperature(logits, truth)        T
    expected_calibration_error(p, truth)  ECE: |accuracy - confidence| over 10 bins of
                                          confidence, weighted by their share
    calibrate(checkpoint, ravdess)        T fitted on all held-out speakers, and the ECE
                                          before and after, the latter leave-one-speaker-
                                          out (T fitted without the speaker it is scored
                                          on), so the figure is not fitted to itself
"""

from itertools import pairwise
from pathlib import Path

import numpy as np

from engine.constants import EMOTIONS, SAMPLE_RATE
from engine.data.ravdess import unheard_speakers
from engine.errors import EngineError
from engine.model.checkpoint import Checkpoint
from engine.model.emotion_space import EmotionSpace
from engine.wav import read_wav

BINS = 10
T_RANGE = (0.05, 50.0)


def softmax(logits: np.ndarray, temperature: float = 1.0) -> np.ndarray:
    z = np.asarray(logits, np.float64) / temperature
    z = np.exp(z - z.max(axis=1, keepdims=True))
    return z / z.sum(axis=1, keepdims=True)


def nll(logits: np.ndarray, truth: np.ndarray, temperature: float) -> float:
    p = softmax(logits, temperature)
    return float(-np.mean(np.log(p[np.arange(len(truth)), truth] + 1e-12)))


def fit_temperature(logits: np.ndarray, truth: np.ndarray) -> float:
    """The T in T_RANGE minimising the NLL (golden-section search on log T; the NLL is
    convex in 1/T, so unimodal in log T)."""
    if len(truth) == 0:
        raise EngineError("no utterances to calibrate on")
    lo, hi = np.log(T_RANGE[0]), np.log(T_RANGE[1])
    ratio = (np.sqrt(5) - 1) / 2
    a, b = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    fa, fb = nll(logits, truth, np.exp(a)), nll(logits, truth, np.exp(b))
    for _ in range(80):
        if fa < fb:
            hi, b, fb = b, a, fa
            a = hi - ratio * (hi - lo)
            fa = nll(logits, truth, np.exp(a))
        else:
            lo, a, fa = a, b, fb
            b = lo + ratio * (hi - lo)
            fb = nll(logits, truth, np.exp(b))
    return float(np.exp((lo + hi) / 2))


def expected_calibration_error(probabilities: np.ndarray, truth: np.ndarray) -> float:
    confidence = probabilities.max(axis=1)
    correct = probabilities.argmax(axis=1) == truth
    edges = np.linspace(0, 1, BINS + 1)
    error = 0.0
    for low, high in pairwise(edges):
        inside = (confidence > low) & (confidence <= high)
        if inside.any():
            error += inside.mean() * abs(correct[inside].mean() - confidence[inside].mean())
    return float(error)


def held_out_logits(
    checkpoint: Checkpoint, ravdess_dir: Path
) -> tuple[np.ndarray, np.ndarray, np.ndarray, list[str]]:
    """Logits over the emotions present (RAVDESS: 7, no contempt), truth indices into
    them, each utterance's speaker, and the emotion names, for every utterance of a
    speaker the checkpoint did not train on."""
    _, held = unheard_speakers(ravdess_dir, set(checkpoint.info.get("train_speakers", [])))
    space = EmotionSpace.from_checkpoint(checkpoint)
    names: list[str] = [e for e in EMOTIONS if e in {r.emotion for r in held} and e in space.known]
    codes = np.stack([space.from_signal(read_wav(r.path, SAMPLE_RATE)) for r in held])
    logits = space.logits(codes)[:, [space.known.index(e) for e in names]]
    truth = np.array([names.index(r.emotion) for r in held])
    return logits, truth, np.array([r.speaker for r in held]), names


def calibrate(checkpoint: Checkpoint, ravdess_dir: Path) -> dict:
    """The module doc's figures; ``temperature`` is what to store in the checkpoint."""
    logits, truth, speakers, names = held_out_logits(checkpoint, ravdess_dir)
    temperature = fit_temperature(logits, truth)
    unique = sorted(set(speakers))
    scored = np.zeros_like(softmax(logits))
    folds = {}
    for speaker in unique:
        inside = speakers == speaker
        if len(unique) > 1:
            fold_t = fit_temperature(logits[~inside], truth[~inside])
        else:
            fold_t = temperature
        folds[str(speaker)] = round(fold_t, 3)
        scored[inside] = softmax(logits[inside], fold_t)
    before = softmax(logits)
    return {
        "temperature": round(temperature, 4),
        "utterances": len(truth),
        "speakers": [str(s) for s in unique],
        "emotions": names,
        "accuracy": round(float((before.argmax(axis=1) == truth).mean()), 4),
        "ece_before": round(expected_calibration_error(before, truth), 4),
        "ece_after": round(expected_calibration_error(scored, truth), 4),
        "mean_confidence_before": round(float(before.max(axis=1).mean()), 4),
        "mean_confidence_after": round(float(scored.max(axis=1).mean()), 4),
        "nll_before": round(nll(logits, truth, 1.0), 4),
        "nll_after": round(
            float(np.mean([-np.log(scored[i, truth[i]] + 1e-12) for i in range(len(truth))])), 4
        ),
        "fold_temperatures": folds,
    }
