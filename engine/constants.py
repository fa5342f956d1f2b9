"""Stream geometry and conventions shared by every stage (DESIGN.md §2).

Everything that is a rate, a window or an index lives here once; other values are
derived from these so that they cannot drift apart.
"""

from typing import Final

# --- audio inside the engine: 16 kHz mono float32 in [-1, 1] ---------------------------
SAMPLE_RATE: Final = 16_000  # Hz
WEBRTC_SAMPLE_RATE: Final = 48_000  # Hz, what Opus decoders hand us
VAD_FRAME_SAMPLES: Final = 320  # 20 ms; webrtcvad accepts 10, 20 or 30 ms at 16 kHz

# --- video ------------------------------------------------------------------------------
VIDEO_FPS: Final = 25
VIDEO_PERIOD_S: Final = 1 / VIDEO_FPS  # seconds a video frame covers
SAMPLES_PER_VIDEO_FRAME: Final = SAMPLE_RATE // VIDEO_FPS  # 640 samples = 40 ms
VIDEO_CLOCK_RATE: Final = 90_000  # RTP clock for video
PTS_PER_VIDEO_FRAME: Final = VIDEO_CLOCK_RATE // VIDEO_FPS  # 3600

# --- MFCC as in EVP (python_speech_features settings, computed like librosa) -----------
MFCC_WIN_LENGTH: Final = 400  # 25 ms analysis window
MFCC_HOP_LENGTH: Final = 160  # 10 ms hop
MFCC_N_FFT: Final = 512
MFCC_N_MELS: Final = 26
MFCC_N_COEFFS: Final = 12  # 13 cepstral coefficients with c0 dropped
MFCC_AMIN: Final = 1e-10  # floor of the mel power before log, as librosa's power_to_db
MFCC_HOPS_PER_VIDEO_FRAME: Final = SAMPLES_PER_VIDEO_FRAME // MFCC_HOP_LENGTH  # 4
MFCC_WINDOW_FRAMES: Final = 28  # 280 ms of MFCC frames per video frame
# EVP takes MFCC frames [(k-3)*4, (k+4)*4) for video frame k: the window ends 12 hops
# after the end of the video frame. That is the default look-ahead; see engine.audio.mfcc.
EVP_LOOKAHEAD_HOPS: Final = 3 * MFCC_HOPS_PER_VIDEO_FRAME  # 12

# --- emotions: the 8 MEAD categories, in a fixed order used by every model -------------
EMOTIONS: Final = (
    "neutral",
    "angry",
    "contempt",
    "disgusted",
    "fear",
    "happy",
    "sad",
    "surprised",
)

# --- 68-point iBUG landmark layout -----------------------------------------------------
N_LANDMARKS: Final = 68
JAW: Final = range(17)
BROWS: Final = range(17, 27)
NOSE: Final = range(27, 36)
EYES: Final = range(36, 48)
MOUTH: Final = range(48, 68)
