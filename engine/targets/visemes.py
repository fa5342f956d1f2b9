"""Mouth-shape targets for audio without video: phones -> visemes -> mouth landmarks.

Each phone pulls the mouth towards its viseme's shape with a Gaussian *dominance* centred
on the phone (Cohen & Massaro 1993): the mouth at time t is the dominance-weighted mean of
the targets of the phones around t, so neighbouring phones blend (coarticulation) and
strong visemes (lips closed for /p b m/) win over weak ones. Targets are displacements of
the 20 mouth landmarks (iBUG 48-67, x and y in frontal units) from the speaker's rest
mouth, fitted by least squares *through* this blending on tracked real clips.
"""

from dataclasses import dataclass
from typing import TYPE_CHECKING, TypeVar

import numpy as np

from engine.constants import MOUTH, VIDEO_FPS

if TYPE_CHECKING:
    import torch

#: Landmark arrays the geometry helpers take either way (training passes tensors).
_Points = TypeVar("_Points", np.ndarray, "torch.Tensor")

#: ARPAbet phone -> viseme class.
VISEME_OF_PHONE: dict[str, str] = {
    "SIL": "rest",
    **dict.fromkeys(["P", "B", "M"], "bilabial"),
    **dict.fromkeys(["F", "V"], "labiodental"),
    **dict.fromkeys(["TH", "DH"], "dental"),
    **dict.fromkeys(["T", "D", "N", "L"], "alveolar"),
    **dict.fromkeys(["S", "Z"], "sibilant"),
    **dict.fromkeys(["SH", "ZH", "CH", "JH"], "postalveolar"),
    **dict.fromkeys(["K", "G", "NG", "HH"], "velar"),
    "R": "r",
    **dict.fromkeys(["W", "UW", "OW", "UH", "OY"], "rounded"),
    **dict.fromkeys(["AA", "AH", "AO", "AW", "AY"], "open"),
    **dict.fromkeys(["AE", "EH", "EY"], "mid"),
    **dict.fromkeys(["IH", "IY", "Y"], "spread"),
    "ER": "er",
}
VISEMES = tuple(dict.fromkeys(VISEME_OF_PHONE.values()))

#: espeak-ng English phoneme mnemonics (stress marks removed) -> viseme class, matching
#: the ARPAbet classes above (e.g. espeak "O:" is ARPAbet AO, "oU" is OW).
VISEME_OF_ESPEAK: dict[str, str] = {
    **dict.fromkeys(["_", "_:", "_!", "_|", ""], "rest"),
    **dict.fromkeys(["p", "b", "m"], "bilabial"),
    **dict.fromkeys(["f", "v"], "labiodental"),
    **dict.fromkeys(["T", "D"], "dental"),
    **dict.fromkeys(["t", "d", "n", "l", "t#", "d#", "n-", "l-"], "alveolar"),
    **dict.fromkeys(["s", "z"], "sibilant"),
    **dict.fromkeys(["S", "Z", "tS", "dZ"], "postalveolar"),
    **dict.fromkeys(["k", "g", "N", "h", "x"], "velar"),
    **dict.fromkeys(["r", "r-", "R"], "r"),
    **dict.fromkeys(["w", "u:", "U", "oU", "OI", "u", "U@"], "rounded"),
    **dict.fromkeys(
        ["A:", "A@", "V", "@", "@2", "@5", "aI", "aU", "O:", "O@", "o@", "0", "aI@", "aU@", "a#"],
        "open",
    ),
    **dict.fromkeys(["E", "e@", "eI", "a", "e"], "mid"),
    **dict.fromkeys(["i", "i:", "I", "I2", "j", "i@", "i@3", "I#"], "spread"),
    **dict.fromkeys(["3:", "@L", "3"], "er"),
}
#: How strongly a viseme holds its shape against its neighbours (relative dominance).
DOMINANCE = {"bilabial": 3.0, "labiodental": 2.0, "rounded": 1.5, "rest": 1.0}
MIN_SPREAD_S = 0.03
N_MOUTH = len(MOUTH)


def viseme_of(phone: str) -> str:
    """An ARPAbet phone (stress digits allowed) -> viseme; unknown -> rest."""
    return VISEME_OF_PHONE.get(phone.rstrip("012").upper(), "rest")


def viseme_of_espeak(symbol: str) -> str:
    """An espeak-ng phoneme mnemonic (stress marks allowed) -> viseme; unknown -> rest."""
    return VISEME_OF_ESPEAK.get(symbol.lstrip("',"), "rest")


def dominance_weights(phones, times: np.ndarray) -> np.ndarray:
    """(P phones with .start/.end and .phone (ARPAbet) or .symbol (espeak)) x (T,) times
    -> (T, K) blend weights per viseme, rows summing to 1."""
    weights = np.zeros((times.size, len(VISEMES)))
    for phone in phones:
        viseme = (
            viseme_of(phone.phone) if hasattr(phone, "phone") else viseme_of_espeak(phone.symbol)
        )
        centre = (phone.start + phone.end) / 2
        spread = max(MIN_SPREAD_S, 0.5 * (phone.end - phone.start))
        strength = DOMINANCE.get(viseme, 1.0)
        weights[:, VISEMES.index(viseme)] += strength * np.exp(-(((times - centre) / spread) ** 2))
    total = weights.sum(axis=1, keepdims=True)
    rest = VISEMES.index("rest")
    weights[total[:, 0] < 1e-6, rest] = 1.0  # far from any phone: rest
    return weights / np.maximum(weights.sum(axis=1, keepdims=True), 1e-12)


def frame_times(n_frames: int, fps: float = VIDEO_FPS) -> np.ndarray:
    """Centres of n video frames, seconds."""
    return (np.arange(n_frames) + 0.5) / fps


@dataclass(frozen=True)
class VisemeModel:
    """Per-viseme mouth displacements, (K, 20, 2) in frontal units (IOD = 1)."""

    targets: np.ndarray

    def mouth(self, phones, times: np.ndarray, rest_mouth: np.ndarray) -> np.ndarray:
        """Mouth landmarks (T, 20, 2) for phones at ``times``, on a (20, 2) rest mouth."""
        weights = dominance_weights(phones, times)
        return rest_mouth[None] + np.einsum("tk,kpd->tpd", weights, self.targets)

    @classmethod
    def fit(cls, examples, ridge: float = 1e-3) -> "VisemeModel":
        """Least squares through the blending. examples: (phones, times (T,), mouth
        displacements (T, 20, 2)) per clip. Rest is pinned to zero displacement."""
        rows, values = [], []
        for phones, times, displacement in examples:
            rows.append(dominance_weights(phones, times))
            values.append(displacement.reshape(len(times), -1))
        weights, targets = np.concatenate(rows), np.concatenate(values)
        rest = VISEMES.index("rest")
        free = [k for k in range(len(VISEMES)) if k != rest]
        a = weights[:, free]
        solution = np.linalg.solve(a.T @ a + ridge * np.eye(len(free)), a.T @ targets)
        full = np.zeros((len(VISEMES), targets.shape[1]))
        full[free] = solution
        return cls(full.reshape(len(VISEMES), N_MOUTH, 2))


def inner_lip_opening(mouth: _Points) -> _Points:
    """(..., 20, 2) mouth landmarks (iBUG 48-67) -> (...) gap between the inner lips
    (iBUG 66 below 62; y points down)."""
    return mouth[..., 18, 1] - mouth[..., 14, 1]


def rest_mouth(mouth: np.ndarray, closed_fraction: float = 0.1) -> np.ndarray:
    """A speaker's rest (closed) mouth: the median of the frames whose inner lips are the
    most closed. (T, 20, 2) -> (20, 2). Pauses in speech often leave the mouth open, so
    silence is not used; every talking clip closes the mouth on /p b m/ and at rest."""
    opening = inner_lip_opening(mouth)
    count = max(1, round(closed_fraction * len(mouth)))
    return np.median(mouth[np.argsort(opening)[:count]], axis=0)


def landmark_distances(predicted: np.ndarray, tracked: np.ndarray) -> tuple[float, float]:
    """EVP's LD and LVD on (T, N, 2) landmarks after mean-centring each frame:
    mean point distance, and mean distance between frame-to-frame velocities."""
    p = predicted - predicted.mean(axis=1, keepdims=True)
    t = tracked - tracked.mean(axis=1, keepdims=True)
    ld = float(np.linalg.norm(p - t, axis=-1).mean())
    lvd = float(np.linalg.norm(np.diff(p, axis=0) - np.diff(t, axis=0), axis=-1).mean())
    return ld, lvd
