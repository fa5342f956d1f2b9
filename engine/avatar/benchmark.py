"""``evp bench generator``: per-frame cost of drawing an avatar's face on this machine.

Times, over the loop's frames, the three parts of rendering one frame from landmarks:
the crop sample (crop, sketch, mask; the edges come from the bundle), the generator under
ONNX Runtime, and compositing into the full frame. Milliseconds, p50/p95/p99.
"""

import time

from engine.avatar.bundle import Avatar
from engine.avatar.render import FaceRenderer
from engine.avatar.samples import generator_input, to_image
from engine.runtime.bench import percentiles_ms
from engine.runtime.generator import OnnxGenerator


def bench_generator(avatar: Avatar, frames: int = 200, threads: int | None = None) -> dict:
    generator = OnnxGenerator(avatar.generator_onnx, threads=threads)
    renderer = FaceRenderer(avatar, generator)
    count = avatar.manifest.frame_count
    for index in range(min(5, count)):  # warm-up
        renderer.render(index, avatar.track.landmarks[index])
    stages: dict[str, list[float]] = {"sample": [], "generator": [], "composite": []}
    totals = []
    for tick in range(frames):
        index = avatar.loop_index(tick)
        started = time.perf_counter()
        sample = renderer.sample(index, avatar.track.landmarks[index])
        x = generator_input(sample)[None]
        sampled = time.perf_counter()
        crop = to_image(generator(x)[0])
        generated = time.perf_counter()
        renderer.composite(index, crop, sample.mask)
        done = time.perf_counter()
        stages["sample"].append(sampled - started)
        stages["generator"].append(generated - sampled)
        stages["composite"].append(done - generated)
        totals.append(done - started)
    return {
        "avatar": avatar.manifest.name,
        "backend": "onnxruntime-cpu",
        "threads": generator.threads,
        "size": generator.size,
        "frame": f"{avatar.manifest.width}x{avatar.manifest.height}",
        "frames": frames,
        "per_frame_ms": percentiles_ms(totals),
        "stages_ms": {name: percentiles_ms(values) for name, values in stages.items()},
    }
