"""Timing metadata drawn into a benchmark session's video frames, and read back.

With ``"bench": true`` in its offer, a session draws into the bottom-left corner of every
frame which audio frame it shows: ``index + 1`` (0: none yet) as 24 black or white 8x8
blocks of the luma plane, most significant bit first: a 4-bit marker (1010), then the
value in 20 bits. A picture without the marker reads as no stamp (None). The blocks survive H.264 at any
sensible bitrate, so a client learns from the picture alone which 40 ms of its own audio
a frame was made from, without trusting the server's clock: ``evp bench live`` uses it to
cross-check the latency it measures from the mouth's movement.
"""

import numpy as np

BITS = 24
VALUE_BITS = 20  # 2**20 frames: 11.6 hours at 25 fps
MARKER = 0b1010 << VALUE_BITS
BLOCK = 8  # pixels
BLACK, WHITE = 16, 235  # video-range luma


def stamp(i420: np.ndarray, height: int, value: int) -> None:
    """Draw ``value`` (0 <= value < 2**20) into the luma rows of (H * 3 / 2, W) I420."""
    if not 0 <= value < 1 << VALUE_BITS:
        raise ValueError(f"a frame stamp holds 0..{(1 << VALUE_BITS) - 1}, got {value}")
    if i420.shape[1] < BITS * BLOCK:
        raise ValueError(f"frames narrower than {BITS * BLOCK} px cannot carry a stamp")
    word = MARKER | value
    top = height - BLOCK
    for bit in range(BITS):
        on = (word >> (BITS - 1 - bit)) & 1
        i420[top:height, bit * BLOCK : (bit + 1) * BLOCK] = WHITE if on else BLACK


def read_stamp(picture: np.ndarray) -> int | None:
    """The value stamped into a frame as received (after coding): (H, W, 3) RGB, or its
    (H, W) luma plane; None if the picture carries no stamp."""
    height = picture.shape[0]
    centre = height - BLOCK // 2
    value = 0
    for bit in range(BITS):
        pixel = picture[centre - 1 : centre + 1, bit * BLOCK + 3 : bit * BLOCK + 5].mean()
        value = (value << 1) | int(pixel > 128)
    if value >> VALUE_BITS != MARKER >> VALUE_BITS:
        return None
    return value & ((1 << VALUE_BITS) - 1)
