"""Dynamic time warping of MFCC sequences (paper eq. 1) and pseudo-pairs from its path.

    min over paths P of  sum_{(i, j) in P} || S_a[i] - S_b[j] ||_2

with the path starting at (0, 0), ending at (n-1, m-1), and moving by (1, 0), (0, 1) or
(1, 1) at every step, so that it always advances at least one of the two signals.
"""

import numpy as np

from engine.constants import MFCC_HOPS_PER_VIDEO_FRAME


def cost_matrix(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """(n, d), (m, d) -> (n, m) Euclidean distances between frames."""
    squared = (a**2).sum(1)[:, None] + (b**2).sum(1)[None, :] - 2.0 * a @ b.T
    return np.sqrt(np.maximum(squared, 0.0))


def accumulate(cost: np.ndarray) -> np.ndarray:
    """(n, m) costs -> (n, m) accumulated minimum path costs.

    Cells on one anti-diagonal (i + j = k) only depend on diagonals k-1 and k-2, so each
    diagonal is one vectorised step.
    """
    n, m = cost.shape
    total = np.full((n + 1, m + 1), np.inf)  # padded: row/column 0 are "before the start"
    total[0, 0] = 0.0
    for k in range(n + m - 1):
        i = np.arange(max(0, k - m + 1), min(n, k + 1))
        j = k - i
        best = np.minimum(np.minimum(total[i, j + 1], total[i + 1, j]), total[i, j])
        total[i + 1, j + 1] = cost[i, j] + best
    return total[1:, 1:]


def backtrack(total: np.ndarray) -> np.ndarray:
    """(n, m) accumulated costs -> (L, 2) path of (i, j) from (0, 0) to (n-1, m-1)."""
    i, j = total.shape[0] - 1, total.shape[1] - 1
    path = [(i, j)]
    while i > 0 or j > 0:
        if i == 0:
            j -= 1
        elif j == 0:
            i -= 1
        else:
            step = int(np.argmin([total[i - 1, j - 1], total[i - 1, j], total[i, j - 1]]))
            i, j = (i - 1, j - 1) if step == 0 else (i - 1, j) if step == 1 else (i, j - 1)
        path.append((i, j))
    return np.array(path[::-1], dtype=np.int64)


def dtw(a: np.ndarray, b: np.ndarray) -> tuple[np.ndarray, float]:
    """Align (n, d) and (m, d) sequences: (path (L, 2), total cost of eq. 1)."""
    if a.ndim != 2 or b.ndim != 2 or a.shape[1] != b.shape[1] or not len(a) or not len(b):
        raise ValueError(
            f"need two non-empty (frames, dims) sequences, got {a.shape} and {b.shape}"
        )
    total = accumulate(cost_matrix(a.astype(np.float64), b.astype(np.float64)))
    return backtrack(total), float(total[-1, -1])


def warp_to_first(path: np.ndarray, n: int) -> np.ndarray:
    """For each of the first sequence's n frames, the matching frame of the second
    (the middle of the run of frames the path pairs it with). Returns (n,) int64."""
    matches = np.zeros(n, dtype=np.int64)
    for i in range(n):
        js = path[path[:, 0] == i, 1]
        matches[i] = js[len(js) // 2]
    return matches


def align_video_frames(path: np.ndarray, n_mfcc_a: int, n_video_a: int) -> np.ndarray:
    """The video frame of the second utterance that pairs with each video frame of the
    first, read at the centre of each 40 ms frame (MFCC frame 4k + 2). Returns (n_video_a,)."""
    matches = warp_to_first(path, n_mfcc_a)
    centres = np.minimum(MFCC_HOPS_PER_VIDEO_FRAME * np.arange(n_video_a) + 2, n_mfcc_a - 1)
    return matches[centres] // MFCC_HOPS_PER_VIDEO_FRAME
