"""Timing metadata drawn into a benchmark session's video frames, and read back.

With ``"bench": true`` in its offer, a session draws into the bottom-left corner of every
frame which audio frame it shows: ``index + 1`` (0: none yet) as 28 black or white 8x8
blocks of the luma plane, most significant bit first: a 4-bit marker (1010), the value in
20 bits, then 4 bits, one per 10 ms hop of the audio the frame was made from, set where
that hop is louder than LOUD_DBFS. A picture without the marker reads as no stamp (None).
The blocks survive H.264 at any sensible bitrate, so a client learns from the picture
alone which 40 ms of its own audio a frame was made from, without trusting the server's
clock (``evp bench live`` cross-checks the latency it measures from the mouth's movement),
and when that audio was loud: a browser page compares it with the returned voice it
hears (``evp bench av-sync``, web_client/avsync.js).
"""

import numpy as np

HOP_BITS = 4  # one per 10 ms hop of the frame's 40 ms
VALUE_BITS = 20  # 2**20 frames: 11.6 hours at 25 fps
BITS = 4 + VALUE_BITS + HOP_BITS
MARKER = 0b1010 << (VALUE_BITS + HOP_BITS)
BLOCK = 8  # pixels
BLACK, WHITE = 16, 235  # video-range luma
LOUD_DBFS = -40.0  # a hop's RMS above this sets its bit


def loud_hops(samples: np.ndarray) -> int:
    """(n,) float32 audio of one video frame -> its HOP_BITS loudness bits, first hop most
    significant."""
    hops = np.array_split(np.asarray(samples, np.float32), HOP_BITS)
    threshold = 10 ** (LOUD_DBFS / 20)
    bits = 0
    for hop in hops:
        loud = hop.size > 0 and float(np.sqrt(np.mean(hop.astype(np.float64) ** 2))) > threshold
        bits = (bits << 1) | int(loud)
    return bits


def stamp(i420: np.ndarray, height: int, value: int, hops: int = 0) -> None:
    """Draw ``value`` (0 <= value < 2**20) and the ``hops`` bits into the luma rows of
    (H * 3 / 2, W) I420."""
    if not 0 <= value < 1 << VALUE_BITS:
        raise ValueError(f"a frame stamp holds 0..{(1 << VALUE_BITS) - 1}, got {value}")
    if not 0 <= hops < 1 << HOP_BITS:
        raise ValueError(f"a frame stamp holds {HOP_BITS} hop bits, got {hops}")
    if i420.shape[1] < BITS * BLOCK:
        raise ValueError(f"frames narrower than {BITS * BLOCK} px cannot carry a stamp")
    word = MARKER | value << HOP_BITS | hops
    top = height - BLOCK
    for bit in range(BITS):
        on = (word >> (BITS - 1 - bit)) & 1
        i420[top:height, bit * BLOCK : (bit + 1) * BLOCK] = WHITE if on else BLACK


def read_stamp(picture: np.ndarray) -> int | None:
    """The value stamped into a frame as received (after coding): (H, W, 3) RGB, or its
    (H, W) luma plane; None if the picture carries no stamp."""
    word = _read_word(picture)
    return None if word is None else word >> HOP_BITS & ((1 << VALUE_BITS) - 1)


def read_stamp_hops(picture: np.ndarray) -> tuple[int, int] | None:
    """(value, hop bits) stamped into a frame, or None."""
    word = _read_word(picture)
    if word is None:
        return None
    return word >> HOP_BITS & ((1 << VALUE_BITS) - 1), word & ((1 << HOP_BITS) - 1)


def _read_word(picture: np.ndarray) -> int | None:
    height = picture.shape[0]
    centre = height - BLOCK // 2
    word = 0
    for bit in range(BITS):
        pixel = picture[centre - 1 : centre + 1, bit * BLOCK + 3 : bit * BLOCK + 5].mean()
        word = (word << 1) | int(pixel > 128)
    if word >> (VALUE_BITS + HOP_BITS) != MARKER >> (VALUE_BITS + HOP_BITS):
        return None
    return word
