"""Read the audio of any media file (WAV, MP3, M4A, a video's sound track) with FFmpeg."""

from pathlib import Path

import av
import numpy as np

from engine.errors import AudioFormatError

MAX_SECONDS = 600.0  # longer files are refused rather than held in memory


def read_audio(path: Path | str, sample_rate: int) -> np.ndarray:
    """(n,) float32 mono at ``sample_rate`` of the file's first audio stream."""
    path = Path(path)
    if not path.is_file():
        raise AudioFormatError(f"{path}: no such file")
    resampler = av.AudioResampler(format="flt", layout="mono", rate=sample_rate)
    chunks: list[np.ndarray] = []
    total, limit = 0, int(MAX_SECONDS * sample_rate)
    try:
        with av.open(str(path)) as container:
            if not container.streams.audio:
                raise AudioFormatError(f"{path}: has no audio stream")
            for frame in container.decode(audio=0):
                for out in resampler.resample(frame):
                    chunks.append(out.to_ndarray().reshape(-1))
                    total += len(chunks[-1])
                if total > limit:
                    raise AudioFormatError(
                        f"{path}: longer than {MAX_SECONDS:.0f} s; cut it into shorter parts"
                    )
            for out in resampler.resample(None):
                chunks.append(out.to_ndarray().reshape(-1))
    except (av.error.FFmpegError, ValueError) as e:  # PyAV raises ValueError on odd streams
        raise AudioFormatError(f"{path}: not a readable audio or video file ({e})") from e
    audio = np.concatenate(chunks).astype(np.float32) if chunks else np.zeros(0, np.float32)
    if not len(audio):
        raise AudioFormatError(f"{path}: the audio stream is empty")
    return np.nan_to_num(np.clip(audio, -1.0, 1.0))
