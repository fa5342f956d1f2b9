"""``evp bench engine``: per-stage cost of one frame of the audio-to-portrait chain.

Runs the live pipeline's own objects (engine.pipeline.portrait) over a speech file for one
session in auto emotion mode, frame by frame, on the chosen backend, and reports
milliseconds p50/p95/p99 per stage and per whole frame:

    features    streaming front-end (16 kHz in 40 ms chunks: resample-free, VAD, MFCC)
    emotion     the session's emotion control: Ee on the last 3 s of voiced hops every
                5th voiced frame (auto mode), eased transitions otherwise
    landmarks   Ec + one LSTM step through the LandmarkBatcher (batch of one)
    alignment   3D-aware alignment (eq. 8) to the loop frame's pose
    guidance    crop, sketch, mask and generator input
    generator   the avatar's generator
    composite   blending the face into the full frame
    encode      RGB -> I420 and H.264: the server's own encoder (engine.pipeline.h264)

Then the neural part's throughput as sessions grow: Ec + LSTM step at batch 1..64, and
the generator at batch 1..8, in frames per second. ``plot_engine`` draws both.
"""

import time
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from engine.constants import (
    MFCC_N_COEFFS,
    MFCC_WINDOW_FRAMES,
    N_LANDMARKS,
    PTS_PER_VIDEO_FRAME,
    SAMPLE_RATE,
    SAMPLES_PER_VIDEO_FRAME,
    VIDEO_FPS,
)
from engine.emotion_state import EmotionState

if TYPE_CHECKING:
    from engine.avatar.bundle import Avatar
    from engine.runtime.generator import GeneratorRuntime
    from engine.runtime.landmarks import LandmarkRuntime

WARMUP_FRAMES = 5
STAGES = (
    "features", "emotion", "landmarks", "alignment", "guidance", "generator", "composite",
    "encode",
)  # fmt: skip


def percentiles_ms(seconds: list[float]) -> dict:
    """Durations in seconds -> {"p50", "p95", "p99"} in milliseconds."""
    ms = 1000 * np.asarray(seconds)
    return {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}


def bench_engine(
    audio: np.ndarray, avatar: "Avatar", backend: str = "auto", seconds: float = 10.0
) -> dict:
    from engine.audio.frontend import AudioFrontEnd, FrontEndOptions
    from engine.avatar.samples import generator_input, to_image
    from engine.pipeline.h264 import H264Stream, to_i420
    from engine.pipeline.portrait import PortraitEngine

    engine = PortraitEngine.load(backend)
    session = engine.open("bench", avatar, EmotionState(mode="auto"))
    renderer = session.renderer
    encoder = H264Stream(avatar.manifest.width, avatar.manifest.height)

    frontend = AudioFrontEnd(options=FrontEndOptions(window=engine.window))
    audio = audio[: int(seconds * SAMPLE_RATE)]
    stages: dict[str, list[float]] = {name: [] for name in STAGES}
    totals = []
    for start in range(0, len(audio) - SAMPLES_PER_VIDEO_FRAME + 1, SAMPLES_PER_VIDEO_FRAME):
        t0 = time.perf_counter()
        records = frontend.push(audio[start : start + SAMPLES_PER_VIDEO_FRAME])
        t1 = time.perf_counter()
        stages["features"].append(t1 - t0)
        for record in records:
            marks = [time.perf_counter()]  # the end of each stage after "features"
            request = session.request(record)
            marks.append(time.perf_counter())
            frontal = engine.batcher.run([request])["bench"]
            marks.append(time.perf_counter())
            index, posed = session.pose(record.index, frontal)
            marks.append(time.perf_counter())
            sample = renderer.sample(index, posed)
            x = generator_input(sample)[None]
            marks.append(time.perf_counter())
            crop = to_image(renderer.generator(x)[0])
            marks.append(time.perf_counter())
            frame = renderer.composite(index, crop, sample.mask)
            marks.append(time.perf_counter())
            encoder.encode(to_i420(frame), record.index * PTS_PER_VIDEO_FRAME)
            marks.append(time.perf_counter())
            for name, spent in zip(STAGES[1:], np.diff(marks), strict=True):
                stages[name].append(spent)
            totals.append(marks[-1] - marks[0] + stages["features"][-1])
    session.close()
    # The first frames load lazily (ONNX Runtime's arenas, a GPU's graph capture): untimed.
    totals = totals[WARMUP_FRAMES:]
    stages = {name: values[WARMUP_FRAMES:] for name, values in stages.items()}
    return {
        "backend": {"landmarks": engine.runtime.name, "generator": renderer.generator.name},
        "avatar": avatar.manifest.name,
        "frame": f"{avatar.manifest.width}x{avatar.manifest.height}",
        "frames": len(totals),
        "fps": round(len(totals) / sum(totals), 1),  # sustained by one session's compute
        "per_frame_ms": percentiles_ms(totals),
        "stages": {name: percentiles_ms(values) for name, values in stages.items()},
        "throughput": _throughput(engine.runtime, renderer.generator),
    }


def _throughput(
    runtime: "LandmarkRuntime", generator: "GeneratorRuntime", repeats: int = 20
) -> dict:
    """Frames per second of the neural part as the batch (sessions per tick) grows."""
    rng = np.random.default_rng(0)
    out: dict[str, dict[int, float]] = {"landmarks": {}, "generator": {}}
    for n in (1, 4, 16, 64):
        windows = rng.standard_normal((n, MFCC_WINDOW_FRAMES, MFCC_N_COEFFS)).astype(np.float32)
        identity = runtime.identity(np.zeros((n, N_LANDMARKS, 2), np.float32))
        emotion = np.zeros((n, runtime.emotion_means.shape[1]), np.float32)
        h = np.zeros((runtime.layers, n, runtime.hidden), np.float32)
        runtime.step(runtime.content(windows), emotion, identity, h, h)  # warm-up, untimed
        started = time.perf_counter()
        for _ in range(repeats):
            runtime.step(runtime.content(windows), emotion, identity, h, h)
        out["landmarks"][n] = round(n * repeats / (time.perf_counter() - started), 1)
    for n in (1, 2, 4, 8):
        x = rng.random((n, 10, generator.size, generator.size)).astype(np.float32)
        generator(x)  # warm-up (a GPU captures its graph), untimed
        started = time.perf_counter()
        for _ in range(max(3, repeats // n)):
            generator(x)
        out["generator"][n] = round(n * max(3, repeats // n) / (time.perf_counter() - started), 1)
    return out


def plot_engine(result: dict, path: Path) -> None:
    """Per-stage p50/p99 bars and throughput against batch size, as one PNG."""
    try:
        import matplotlib
    except ImportError as e:
        from engine.errors import EngineError

        raise EngineError("--plot needs matplotlib: pip install matplotlib") from e
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, (stages, batch) = plt.subplots(1, 2, figsize=(11, 4))
    names = list(result["stages"])
    y = np.arange(len(names))
    for offset, q in ((-0.2, "p50"), (0.2, "p99")):
        stages.barh(y + offset, [result["stages"][n][q] for n in names], 0.4, label=q)
    stages.set_yticks(y, names)
    stages.invert_yaxis()
    stages.set_xlabel("ms per frame")
    per_frame = result["per_frame_ms"]
    stages.set_title(
        f"one session: {per_frame['p50']:.1f} ms p50, {per_frame['p99']:.1f} ms p99, "
        f"{result['fps']:.0f} fps",
        fontsize=9,
    )
    stages.axvline(40, color="grey", ls=":", lw=1)
    stages.legend(fontsize=8)
    for part, values in result["throughput"].items():
        sizes = [int(k) for k in values]
        batch.plot(sizes, list(values.values()), "o-", label=part)
    batch.axhline(VIDEO_FPS, color="grey", ls=":", lw=1)
    batch.set_xscale("log", base=2)
    batch.set_yscale("log")
    batch.set_xlabel("sessions per tick (batch)")
    batch.set_ylabel("frames per second")
    batch.set_title("throughput as the batch grows", fontsize=9)
    batch.legend(fontsize=8)
    backend = result["backend"]
    figure.suptitle(
        f"evp bench engine: {result['avatar']} ({result['frame']}), landmarks on "
        f"{backend['landmarks']}, generator on {backend['generator']}",
        fontsize=10,
    )
    figure.tight_layout()
    tmp = path.with_name(path.name + ".partial.png")
    figure.savefig(tmp, dpi=100)
    plt.close(figure)
    tmp.replace(path)
