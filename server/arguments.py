"""argparse types shared by the commands that take them: each says what it expected."""

import argparse
from collections.abc import Callable
from typing import TypeVar

from aiortc.rtcicetransport import parse_stun_turn_uri

from server.receive_buffer import MAX_DEPTH

T = TypeVar("T", int, float)


def _number(text: str, convert: Callable[[str], T], ok: Callable[[T], bool], expected: str) -> T:
    """``convert(text)`` if it converts and ``ok`` accepts it, else an argparse error that
    says what was expected."""
    try:
        value = convert(text)
    except ValueError:
        value = None
    if value is None or not ok(value):
        raise argparse.ArgumentTypeError(f"expected {expected}, got {text!r}")
    return value


def max_sessions(text: str) -> int | None:
    if text == "auto":
        return None
    return _number(text, int, lambda v: v >= 1, "'auto' or a whole number >= 1")


def margin_ms(text: str) -> float | None:
    if text == "auto":
        return None
    return _number(
        text, float, lambda v: 0 <= v <= 2000, "'auto' or milliseconds between 0 and 2000"
    )


def packets(text: str) -> int:
    return _number(text, int, lambda v: 0 <= v <= MAX_DEPTH, f"0 to {MAX_DEPTH} packets")


def fraction(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v < 1, "a fraction in [0, 1)")


def milliseconds(text: str) -> float:
    return _number(text, float, lambda v: 0 <= v <= 1000, "0 to 1000 ms")


def at_least(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number >= ``minimum``."""
    return lambda text: _number(text, int, lambda v: v >= minimum, f"a whole number >= {minimum}")


def whole_between(low: int, high: int) -> Callable[[str], int]:
    """An argparse type: a whole number in [low, high]."""
    return lambda text: _number(
        text, int, lambda v: low <= v <= high, f"a whole number from {low} to {high}"
    )


def in_range(low: float, high: float, unit: str) -> Callable[[str], float]:
    """An argparse type: a number in [low, high] (``unit`` for the message)."""
    return lambda text: _number(
        text, float, lambda v: low <= v <= high, f"{unit} between {low:g} and {high:g}"
    )


def port(text: str) -> int:
    return _number(text, int, lambda v: 1 <= v <= 65535, "a TCP port, 1 to 65535")


def ice_server(text: str) -> str:
    """A STUN/TURN URL as aiortc parses it (checked here, not at the first offer)."""
    try:
        parse_stun_turn_uri(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(
            f"expected stun:HOST[:PORT] or turn:HOST[:PORT][?transport=udp|tcp] "
            f"(turns: for TLS), got {text!r} ({e})"
        ) from e
    return text


def turn_problem(urls: list[str], username: str | None, credential: str | None) -> str | None:
    """Why these ICE options cannot work together, or None: a TURN server needs both
    credentials (aioice would fail to allocate and say nothing), and credentials need one."""
    turn = [url for url in urls if url.startswith("turn")]
    if turn and not (username and credential):
        return f"TURN server {turn[0]} needs --ice-username and --ice-credential"
    if (username or credential) and not turn:
        return "--ice-username/--ice-credential are for a TURN server: add --ice-server turn:HOST"
    return None
