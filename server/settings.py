"""Server settings: parsed once in main() and passed down; never read from globals."""

import os
from dataclasses import dataclass, field
from pathlib import Path

from engine.audio.mfcc import WindowSpec
from engine.avatar.bundle import DEFAULT_AVATARS
from engine.playout import MarginPolicy

PROJECT_ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WEB_CLIENT = PROJECT_ROOT / "web_client"


@dataclass(frozen=True)
class ServerSettings:
    host: str = "127.0.0.1"
    port: int = 8080
    avatars_dir: Path = DEFAULT_AVATARS
    web_client_dir: Path = DEFAULT_WEB_CLIENT
    default_avatar: str = "default"
    max_sessions: int | None = None
    """Talking sessions served at once; more get 503. None (``auto``): as many as the
    measured headroom keeps at full rate (server.capacity)."""
    render_threads: int = 0
    """Frames drawn at once (and H.264 encodes); 0: one per usable core, at most 8."""
    max_viewers: int = 8
    """Receive-only viewers per session."""
    ice_servers: tuple[str, ...] = ()
    """STUN/TURN URLs handed to aiortc. Empty: host candidates only (LAN, localhost)."""
    ice_username: str | None = None
    ice_credential: str | None = None
    """The TURN servers' long-term credentials (every turn: and turns: URL uses them)."""
    media_timeout_s: float = 10.0
    """A session whose peer sends no audio for this long is closed."""
    connect_timeout_s: float = 15.0
    """A session whose peer never starts sending audio within this long is closed."""
    margin: MarginPolicy = field(default_factory=MarginPolicy)
    """The playout margin added to the look-ahead and frame period: measured per session
    (engine.playout.PlayoutMargin), or fixed (``--margin-ms``)."""
    receive_buffer_packets: int = 1
    """How many later packets a missing microphone packet waits for before it counts as
    lost (server.receive_buffer); in-order packets never wait. aiortc's own waits 4."""
    window: WindowSpec | None = None
    """The MFCC window; None: the one the model was trained with (set at startup)."""
    model: str = "evp"
    """The shipped landmark model (engine.runtime.landmarks.MODELS): evp or low-latency."""
    backend: str = "auto"
    """Where the networks run: auto, tensorrt, torch or onnx (engine.runtime.backends)."""
    allowed_origins: tuple[str, ...] = ()
    """Origins allowed on the control socket besides the server's own."""
    control_max_message_bytes: int = 4096
    control_rate_per_s: float = 20.0
    """Sustained control messages per second per socket (bursts of twice that)."""
    stats_interval_s: float = 1.0

    def render_pool_size(self) -> int:
        """The render (and encode) pool's threads: ``render_threads``, or the cores this
        process may run on (its CPU affinity: ``taskset`` limits it), at most 8."""
        if self.render_threads > 0:
            return self.render_threads
        return max(1, min(8, len(os.sched_getaffinity(0))))
