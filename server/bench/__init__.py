"""Benchmark clients of the server and their analysis: `evp bench ...`.

Nothing that serves imports this package; it talks to a server only through the public
API (HTTP offers, WebRTC, the control socket, /metrics), as a browser or a user would.

    client.py      an aiortc peer (WAV microphone, talking or watching) and helpers
    impairment.py  loss and jitter on a client's outgoing RTP, on loopback
    transport.py   evp bench transport: one peer's fps, first-frame and compute figures
    live.py        evp bench live: runs the sessions (or a ramp of them), spawns a server
    live_session.py  one benchmark session: its peer, microphone and what it received
    live_report.py   the report: latency windows, growth, budget, A/V offsets, server figures
    analysis.py    burst signals, onsets, stamp latencies, mouth lag (pure functions)
    recording.py   evp bench live --record: an MP4 of what a client got, checked offline
    plot.py        evp bench live --plot
    throughput.py  evp bench throughput: the render path's frames a second, no clock
    browser.py     evp bench av-sync: face against voice in headless Chromium
"""
