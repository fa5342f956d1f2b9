"""Where a video frame's input ends against the microphone's packets."""

from server.audio_input import packet_phase_lead

RATE = 48_000


def test_the_lead_puts_a_frames_last_needed_sample_at_a_packet_end():
    # 42.5 ms look-ahead + 1.5 ms resampler, 20 ms packets: 4 ms of lead, not 16 ms waiting
    assert packet_phase_lead(0.044, 0.02, RATE) == round(0.004 * RATE)
    assert packet_phase_lead(0.124, 0.02, RATE) == round(0.004 * RATE)  # EVP's 122.5 ms
    assert packet_phase_lead(0.044, 0.01, RATE) == round(0.004 * RATE)  # 10 ms packets
    for need_ms in (44, 124, 51):
        lead = packet_phase_lead(need_ms / 1000, 0.02, RATE)
        assert (need_ms / 1000 * RATE - lead) % (0.02 * RATE) == 0 or lead == 0


def test_no_lead_where_it_would_show_the_face_more_than_half_a_packet_early():
    assert packet_phase_lead(0.056, 0.02, RATE) == 0  # 16 ms: wait instead
    assert packet_phase_lead(0.040, 0.02, RATE) == 0  # already on a packet end
    assert packet_phase_lead(0.044, 0.0, RATE) == 0  # no packet length known
