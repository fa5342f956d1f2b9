"""``evp bench engine``: per-stage cost of one frame of the audio-to-portrait chain.

Runs the real stages over a speech file for one session, frame by frame, on the chosen
backend, and reports milliseconds p50/p95/p99 per stage and per whole frame:

    features    streaming front-end (16 kHz in 40 ms chunks: resample-free, VAD, MFCC)
    landmarks   Ec + one LSTM step through the LandmarkBatcher (batch of one)
    emotion     Ee on the last 3 s of hops (live voice emotion runs it every 5th frame,
                so a fifth of one call counts towards each frame)
    alignment   3D-aware alignment (eq. 8) to the loop frame's pose
    guidance    crop, sketch, mask and generator input
    generator   the avatar's generator
    composite   blending the face into the full frame
    encode      RGB -> I420 and H.264 (libx264, ultrafast, zerolatency), as sent

Then the neural part's throughput as sessions grow: Ec + LSTM step at batch 1..64, and
the generator at batch 1..8, in frames per second.
"""

import time
from fractions import Fraction

import numpy as np

from engine.constants import SAMPLE_RATE, SAMPLES_PER_VIDEO_FRAME, VIDEO_FPS

EMOTION_EVERY = 5  # frames between live voice-emotion updates
EMOTION_HOPS = 300  # 3 s


STAGES = (
    "features", "landmarks", "emotion", "alignment", "guidance", "generator", "composite",
    "encode",
)  # fmt: skip


def percentiles_ms(seconds: list[float]) -> dict:
    """Durations in seconds -> {"p50", "p95", "p99"} in milliseconds."""
    ms = 1000 * np.asarray(seconds)
    return {f"p{q}": round(float(np.percentile(ms, q)), 3) for q in (50, 95, 99)}


def bench_engine(audio: np.ndarray, avatar, backend: str = "auto", seconds: float = 10.0) -> dict:
    import av

    from engine.audio.frontend import AudioFrontEnd
    from engine.avatar.render import FaceRenderer
    from engine.avatar.samples import generator_input, to_image
    from engine.face.align3d import align_3d
    from engine.face.pose import Pose
    from engine.runtime.batching import FrameRequest, LandmarkBatcher
    from engine.runtime.generator import load_generator_runtime
    from engine.runtime.landmarks import load_landmark_runtime

    runtime = load_landmark_runtime(backend)
    generator = load_generator_runtime(avatar, backend)
    renderer = FaceRenderer(avatar, generator)
    batcher = LandmarkBatcher(runtime)
    neutral = avatar.track.neutral
    batcher.open("bench", neutral[:, :2])
    code = np.zeros(runtime.emotion(np.zeros((1, 50, 15), np.float32)).shape[1], np.float32)
    encoder = av.CodecContext.create("libx264", "w")
    encoder.width, encoder.height = avatar.manifest.width, avatar.manifest.height
    encoder.pix_fmt, encoder.time_base = "yuv420p", Fraction(1, VIDEO_FPS)
    encoder.options = {"preset": "ultrafast", "tune": "zerolatency", "threads": "1"}

    frontend = AudioFrontEnd()
    audio = audio[: int(seconds * SAMPLE_RATE)]
    stages = {name: [] for name in STAGES}
    totals, hops = [], np.zeros((1, EMOTION_HOPS, 15), np.float32)
    pose = avatar.track.pose
    for start in range(0, len(audio) - SAMPLES_PER_VIDEO_FRAME + 1, SAMPLES_PER_VIDEO_FRAME):
        t0 = time.perf_counter()
        records = frontend.push(audio[start : start + SAMPLES_PER_VIDEO_FRAME])
        t1 = time.perf_counter()
        stages["features"].append(t1 - t0)
        for record in records:
            marks = [time.perf_counter()]  # the end of each stage after "features"
            frontal = batcher.run([FrameRequest("bench", record.mfcc, code)])["bench"]
            marks.append(time.perf_counter())
            hops = np.roll(hops, -4, axis=1)
            hops[0, -4:] = record.hops
            if record.index % EMOTION_EVERY == 0:
                runtime.emotion(hops)
            marks.append(time.perf_counter())
            i = avatar.loop_index(record.index)
            posed = align_3d(
                frontal[None],
                neutral[:, 2],
                Pose(pose.rotation[i : i + 1], pose.translation[i : i + 1], pose.scale[i : i + 1]),
            )[0]
            marks.append(time.perf_counter())
            sample = renderer.sample(i, posed)
            x = generator_input(sample)[None]
            marks.append(time.perf_counter())
            crop = to_image(generator(x)[0])
            marks.append(time.perf_counter())
            frame = renderer.composite(i, crop, sample.mask)
            marks.append(time.perf_counter())
            encoder.encode(
                av.VideoFrame.from_ndarray(frame, format="rgb24").reformat(format="yuv420p")
            )
            marks.append(time.perf_counter())
            for name, spent in zip(STAGES[1:], np.diff(marks), strict=True):
                stages[name].append(spent)
            totals.append(marks[-1] - marks[0] + stages["features"][-1])
    return {
        "backend": {"landmarks": runtime.name, "generator": generator.name},
        "avatar": avatar.manifest.name,
        "frame": f"{avatar.manifest.width}x{avatar.manifest.height}",
        "frames": len(totals),
        "fps": round(len(totals) / sum(totals), 1),  # sustained by one session's compute
        "per_frame_ms": percentiles_ms(totals),
        "stages": {name: percentiles_ms(values) for name, values in stages.items()},
        "throughput": _throughput(runtime, generator),
    }


def _throughput(runtime, generator, repeats: int = 20) -> dict:
    """Frames per second of the neural part as the batch (sessions per tick) grows."""
    rng = np.random.default_rng(0)
    out = {"landmarks": {}, "generator": {}}
    for n in (1, 4, 16, 64):
        windows = rng.standard_normal((n, 28, 12)).astype(np.float32)
        identity = runtime.identity(np.zeros((n, 68, 2), np.float32))
        emotion = np.zeros((n, 32), np.float32)
        h = np.zeros((runtime.layers, n, runtime.hidden), np.float32)
        started = time.perf_counter()
        for _ in range(repeats):
            runtime.step(runtime.content(windows), emotion, identity, h, h)
        out["landmarks"][n] = round(n * repeats / (time.perf_counter() - started), 1)
    for n in (1, 2, 4, 8):
        x = rng.random((n, 10, generator.size, generator.size)).astype(np.float32)
        started = time.perf_counter()
        for _ in range(max(3, repeats // n)):
            generator(x)
        out["generator"][n] = round(n * max(3, repeats // n) / (time.perf_counter() - started), 1)
    return out
