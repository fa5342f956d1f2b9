"""``evp eval emotion``: speaker-independent emotion accuracy on RAVDESS-layout folders.

Only speakers the checkpoint was not trained on are scored (the checkpoint records its
training speakers). Predictions are restricted to the emotions present in the folder,
so RAVDESS (no contempt) is scored over its 7 classes; calm counts as neutral.
"""

from pathlib import Path

import numpy as np

from engine.constants import EMOTIONS, SAMPLE_RATE
from engine.data.ravdess import load_ravdess
from engine.errors import EngineError
from engine.model.checkpoint import Checkpoint
from engine.model.emotion_space import EmotionSpace
from engine.wav import read_wav


def evaluate_emotion(checkpoint: Checkpoint, ravdess_dir: Path) -> dict:
    loaded = load_ravdess(Path(ravdess_dir))
    trained = set(checkpoint.info.get("train_speakers", []))
    held = [r for r in loaded.records if r.speaker not in trained]
    if not held:
        raise EngineError(
            f"every speaker under {ravdess_dir} was used to train this checkpoint; "
            "point --ravdess at speakers it has not heard"
        )
    space = EmotionSpace.from_checkpoint(checkpoint)
    present = sorted({EMOTIONS.index(r.emotion) for r in held})
    names = [EMOTIONS[k] for k in present]
    truth, predicted = [], []
    for record in held:
        code = space.from_signal(read_wav(record.path, SAMPLE_RATE))
        probabilities = space.probabilities(code)
        best = max((e for e in names if e in probabilities), key=probabilities.get)
        truth.append(names.index(record.emotion))
        predicted.append(names.index(best))
    truth, predicted = np.array(truth), np.array(predicted)
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
