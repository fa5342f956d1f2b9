"""The figure of ``evp bench live``: fps per session, latency distributions, the ramp."""

from pathlib import Path

import numpy as np


def plot_live(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    ramp = result.get("ramp")
    figure, axes = plt.subplots(1, 3 if ramp else 2, figsize=(14 if ramp else 10, 4))
    fps = [s["fps"] for s in result["per_session"]]
    axes[0].bar(np.arange(1, len(fps) + 1), fps, color="tab:blue")
    axes[0].axhline(25, color="grey", ls=":", lw=1)
    axes[0].set_xlabel("session")
    axes[0].set_ylabel("frames per second received")
    axes[0].set_ylim(0, 30)
    axes[0].set_title(
        f"{result['sessions']} sessions, {result['drops']} frames missing", fontsize=9
    )
    names = ("p50", "p95", "p99")
    x = np.arange(len(names))
    for offset, key, label in ((-0.2, "latency_ms", "every frame"),
                               (0.2, "burst_latency_ms", "burst starts")):  # fmt: skip
        values = [result[key][n] or 0 for n in names]
        axes[1].bar(x + offset, values, 0.4, label=label)
    axes[1].set_xticks(x, names)
    axes[1].set_ylabel("ms, audio sent -> video received")
    av_offset, lag = result.get("av_offset_ms"), result.get("mouth_lag_ms")
    axes[1].set_title(
        f"end-to-end latency; mouth follows at {lag} ms; A/V offset {av_offset} ms", fontsize=9
    )
    axes[1].legend(fontsize=8)
    if ramp:
        held = [s for s in ramp if "fps_min" in s]
        axes[2].plot([s["sessions"] for s in held], [s["fps_min"] for s in held], "o-")
        axes[2].axhline(24, color="grey", ls=":", lw=1)
        axes[2].set_xlabel("sessions")
        axes[2].set_ylabel("lowest session fps")
        axes[2].set_title(f"ramp: {result.get('max_sessions')} sessions held", fontsize=9)
    figure.suptitle(f"evp bench live ({result.get('url', '')})", fontsize=10)
    figure.tight_layout()
    tmp = path.with_name(path.name + ".partial.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    tmp.replace(path)
