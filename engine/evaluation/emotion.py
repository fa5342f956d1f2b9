"""``evp eval emotion``: speaker-independent emotion accuracy on RAVDESS-layout folders.

Only speakers the checkpoint was not trained on are scored (the checkpoint records its
training speakers). Predictions are restricted to the emotions present in the folder,
so RAVDESS (no contempt) is scored over its 7 classes; calm counts as neutral.
"""

from pathlib import Path

import numpy as np

from engine.constants import EMOTIONS, SAMPLE_RATE
from engine.data.ravdess import unheard_speakers
from engine.errors import EngineError
from engine.model.checkpoint import Checkpoint
from engine.model.emotion_space import EmotionSpace
from engine.wav import read_wav


def evaluate_emotion(checkpoint: Checkpoint, ravdess_dir: Path) -> dict:
    trained = set(checkpoint.info.get("train_speakers", []))
    loaded, held = unheard_speakers(ravdess_dir, trained)
    space = EmotionSpace.from_checkpoint(checkpoint)
    present = sorted({EMOTIONS.index(r.emotion) for r in held})
    names = [EMOTIONS[k] for k in present]
    truth_indices: list[int] = []
    predicted_indices: list[int] = []
    for record in held:
        code = space.from_signal(read_wav(record.path, SAMPLE_RATE))
        probabilities = space.probabilities(code)
        best = max((e for e in names if e in probabilities), key=probabilities.__getitem__)
        truth_indices.append(names.index(record.emotion))
        predicted_indices.append(names.index(best))
    truth, predicted = np.array(truth_indices), np.array(predicted_indices)
    confusion = np.zeros((len(names), len(names)), dtype=int)
    np.add.at(confusion, (truth, predicted), 1)
    recall = confusion.diagonal() / np.maximum(confusion.sum(axis=1), 1)
    return {
        "accuracy": round(float((truth == predicted).mean()), 4),
        "balanced_accuracy": round(float(recall.mean()), 4),
        "chance": round(1.0 / len(names), 4),
        "utterances": len(held),
        "speakers": sorted({r.speaker for r in held}),
        "emotions": names,
        "recall": {n: round(float(r), 3) for n, r in zip(names, recall, strict=True)},
        "confusion": {"rows": "truth", "columns": "predicted", "matrix": confusion.tolist()},
        "skipped_files": len(loaded.skipped),
    }


def plot_confusion(result: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    matrix = np.array(result["confusion"]["matrix"])
    names = result["emotions"]
    figure, axis = plt.subplots(figsize=(6, 5))
    axis.imshow(matrix, cmap="Blues")
    for (i, j), n in np.ndenumerate(matrix):
        axis.text(j, i, str(n), ha="center", va="center", fontsize=8)
    axis.set_xticks(range(len(names)), names, rotation=45, ha="right")
    axis.set_yticks(range(len(names)), names)
    axis.set_xlabel("predicted")
    axis.set_ylabel("truth")
    axis.set_title(
        f"Emotion from voice: accuracy {result['accuracy']:.2f} ({result['utterances']} utterances)"
    )
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)


#: Auto mode's intensity below this reads as "near neutral" (the emotion issue's target).
NEAR_NEUTRAL = 0.3


def auto_mode_timeline(space: EmotionSpace, audio: np.ndarray) -> dict:
    """What auto mode shows, frame by frame, for 16 kHz speech streamed as the live
    session streams it (EmotionControl in auto mode, from neutral): the share of frames
    whose shown intensity stays below NEAR_NEUTRAL, the largest intensity and
    calibrated probability, and which emotion it showed most."""
    from engine.audio.frontend import analyse_offline
    from engine.audio.prosody import compute_hop_features
    from engine.constants import MFCC_HOPS_PER_VIDEO_FRAME
    from engine.emotion_state import EmotionState
    from engine.pipeline.emotion import EmotionControl

    _, _, voiced = analyse_offline(audio)
    hops = compute_hop_features(audio)
    control = EmotionControl(space, EmotionState(mode="auto"))
    step = MFCC_HOPS_PER_VIDEO_FRAME
    per_frame: list[float] = []
    peaks: list[float] = []
    shown: dict[str, int] = {}
    for k in range(min(len(voiced), len(hops) // step)):
        control.next(hops[k * step : (k + 1) * step], bool(voiced[k]))
        code = control.voice_code
        if code is None:
            per_frame.append(0.0)
            continue
        emotion, strength = space.evidence(code)
        per_frame.append(strength)
        peaks.append(max(space.probabilities(code).values()))
        if strength >= NEAR_NEUTRAL:
            shown[emotion] = shown.get(emotion, 0) + 1
    strengths = np.array(per_frame)
    return {
        "seconds": round(len(strengths) / 25, 1),
        "near_neutral": round(float((strengths < NEAR_NEUTRAL).mean()), 3),
        "max_intensity": round(float(strengths.max(initial=0.0)), 3),
        "max_probability": round(float(max(peaks, default=0.0)), 3),
        "shown": {e: round(n / len(strengths), 3) for e, n in sorted(shown.items())},
    }


def evaluate_auto_mode(space: EmotionSpace, files: list[Path]) -> dict:
    """auto_mode_timeline for every file (audio of any media file), and over all."""
    from engine.targets.teacher import read_media_audio

    per_file = {}
    for path in files:
        per_file[path.name] = auto_mode_timeline(space, read_media_audio(path, SAMPLE_RATE))
    if not per_file:
        raise EngineError("no speech files to measure auto mode on")
    seconds = np.array([r["seconds"] for r in per_file.values()])
    near = np.array([r["near_neutral"] for r in per_file.values()])
    return {
        "files": len(per_file),
        "seconds": round(float(seconds.sum()), 1),
        "temperature": space.temperature,
        "near_neutral": round(float((near * seconds).sum() / seconds.sum()), 3),
        "files_mostly_near_neutral": int((near > 0.5).sum()),
        "max_intensity": max(r["max_intensity"] for r in per_file.values()),
        "per_file": per_file,
    }
