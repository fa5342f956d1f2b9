"""Give memory freed by closed sessions back to the system.

A session's peer connections, codecs and frame buffers are freed from many threads;
glibc keeps such memory in per-thread arenas, so the process's resident size creeps up
by tens of MB per session cycle although nothing is leaked (measured:
tests/server/test_churn.py). ``malloc_trim(0)`` returns it. Elsewhere it does nothing.
"""

import ctypes
import ctypes.util
import logging
from collections.abc import Callable

logger = logging.getLogger(__name__)


def _load_trim() -> Callable[[int], int] | None:
    name = ctypes.util.find_library("c")
    try:
        return ctypes.CDLL(name).malloc_trim if name else None
    except (OSError, AttributeError):  # not glibc
        return None


_MALLOC_TRIM = _load_trim()


def release_freed_memory() -> None:
    """Blocking (milliseconds): run it on a worker thread."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)
