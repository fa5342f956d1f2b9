"""The audio receive buffer, driven packet by packet (no clock): in-order packets go at
once, a hole waits at most ``depth`` later packets, reordering within that is undone."""

import pytest
from aiortc.rtp import RtpPacket

from server.receive_buffer import AudioReceiveBuffer


def packets(*sequence_numbers: int) -> list[RtpPacket]:
    return [
        RtpPacket(sequence_number=s % 65536, timestamp=960 * s % 2**32) for s in sequence_numbers
    ]


def feed(depth: int, *sequence_numbers: int):
    """Released sequence numbers after each arrival, and the buffer."""
    out: list[int] = []
    buffer = AudioReceiveBuffer(lambda p: out.append(p.sequence_number), depth)
    after = []
    for packet in packets(*sequence_numbers):
        buffer.add(packet)
        after.append(list(out))
    return after, buffer


def test_packets_in_order_are_released_on_arrival():
    after, buffer = feed(2, 100, 101, 102, 103)
    assert after == [[100], [100, 101], [100, 101, 102], [100, 101, 102, 103]]
    assert buffer.held == 0 and buffer.counts.lost == 0


def test_a_swapped_pair_is_put_back_in_order():
    after, buffer = feed(1, 1, 3, 2, 4)
    assert after[1] == [1]  # 3 waits for 2
    assert after[2] == [1, 2, 3] and after[3] == [1, 2, 3, 4]
    assert buffer.counts.lost == 0


def test_a_lost_packet_is_given_up_after_depth_later_packets():
    after, buffer = feed(2, 1, 3, 4, 5, 6)  # 2 never comes
    assert after[1] == [1] and after[2] == [1]  # waiting: 3 and 4 held
    assert after[3] == [1, 3, 4, 5]  # the third later packet: 2 is lost
    assert buffer.counts.lost == 1
    late, _ = feed(2, 1, 3, 4, 5, 2, 6)
    assert late[-1] == [1, 3, 4, 5, 6]  # 2 arriving after its place was given up is dropped


def test_depth_zero_never_waits():
    after, buffer = feed(0, 1, 3, 2, 4)
    assert after == [[1], [1, 3], [1, 3], [1, 3, 4]]
    assert buffer.counts.lost == 1 and buffer.counts.late == 1


def test_sequence_numbers_wrap():
    after, buffer = feed(1, 65534, 65535, 1, 0, 2)
    assert after[-1] == [65534, 65535, 0, 1, 2] and buffer.counts.lost == 0


def test_a_sender_restart_starts_a_new_sequence_and_keeps_what_was_held():
    after, buffer = feed(3, 10, 12, 5000, 5001)
    assert after[2] == [10, 12, 5000] and after[3][-1] == 5001
    assert buffer.counts.restarts == 1
    duplicate, buffer = feed(1, 7, 8, 8)
    assert duplicate[-1] == [7, 8] and buffer.counts.late == 1


def test_a_bad_depth_says_what_is_allowed():
    with pytest.raises(ValueError, match="0..16 packets"):
        AudioReceiveBuffer(lambda p: None, depth=40)
