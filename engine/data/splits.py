"""Speaker-independent splits: every speaker's material lands in exactly one split.

Speakers are sorted, shuffled with the seed and cut by the fractions, so the same speaker
list and seed always give the same split, and adding a data set does not move speakers of
another one (each data set is split on its own). RAVDESS's 16 actors give 12/2/2.
"""

import random
from collections.abc import Iterable


def speaker_split(
    speakers: Iterable[str],
    fractions: tuple[float, float, float] = (0.75, 0.125, 0.125),
    seed: int = 0,
) -> dict[str, str]:
    """speaker -> "train" | "val" | "test". Val and test get at least one speaker each
    when there are three or more speakers."""
    if abs(sum(fractions) - 1.0) > 1e-9 or min(fractions) < 0:
        raise ValueError(f"split fractions must be >= 0 and sum to 1, got {fractions}")
    ordered = sorted(set(speakers))
    random.Random(seed).shuffle(ordered)
    count = len(ordered)
    n_val = round(fractions[1] * count)
    n_test = round(fractions[2] * count)
    if count >= 3:
        n_val, n_test = max(1, n_val), max(1, n_test)
    n_train = count - n_val - n_test
    names = ["train"] * n_train + ["val"] * n_val + ["test"] * n_test
    return dict(zip(ordered, names, strict=True))
