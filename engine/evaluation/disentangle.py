"""``evp eval disentangle``: the paper's Table 2 ablation on held-out speakers.

Each variant is a checkpoint of the disentangle stage trained with one loss left out
(``evp train disentangle --without LOSS``). On RAVDESS utterances and pairs of speakers
no variant was trained on, it measures

    emotion_accuracy   Ce(Ee(x)) over the emotions present (7 for RAVDESS)
    silhouette         cluster quality of the emotion codes by emotion label (cosine;
                       -1..1, higher = emotions form tighter, better separated clusters)
    cross_mse          L_cross on held-out pairs: D(Ec(x_a), Ee(x_b)) vs x_b's aligned frame
    self_mse           L_self: D(Ec(x_a), Ee(x_a)) vs x_a
    content_gap        L_con: mean |Ec(x_a) - Ec(x_b)| on aligned frames of a pair

and draws the emotion codes of the full model and of the model without L_cross in 2-D
(PCA fitted on each) as a PNG.
"""

from pathlib import Path

import numpy as np
import torch

from engine.audio.mfcc import WindowSpec
from engine.constants import EMOTIONS
from engine.errors import EngineError
from engine.model.checkpoint import Checkpoint
from engine.training.corpus import Corpus
from engine.training.stages import encode_emotions

FRAMES_PER_PAIR = 16


def held_out(corpus: Corpus, checkpoints: list[Checkpoint]) -> list[int]:
    """RAVDESS utterances of speakers none of the checkpoints was trained on."""
    trained = {s for c in checkpoints for s in c.info.get("train_speakers", [])}
    return [
        i
        for i, item in enumerate(corpus.items)
        if item.kind == "ravdess" and item.speaker not in trained
    ]


def silhouette(codes: np.ndarray, labels: np.ndarray) -> float:
    """Mean silhouette with cosine distance (numpy; labels with one member score 0)."""
    if len(set(labels.tolist())) < 2:
        return 0.0
    unit = codes / np.maximum(np.linalg.norm(codes, axis=1, keepdims=True), 1e-12)
    distance = 1.0 - unit @ unit.T
    scores = []
    for i in range(len(codes)):
        same = labels == labels[i]
        same[i] = False
        if not same.any():
            scores.append(0.0)
            continue
        a = distance[i, same].mean()
        b = min(distance[i, labels == other].mean() for other in set(labels.tolist()) - {labels[i]})
        scores.append((b - a) / max(a, b, 1e-12))
    return float(np.mean(scores))


@torch.no_grad()
def measure(
    checkpoint: Checkpoint, corpus: Corpus, indices: list[int], seed: int = 0
) -> tuple[dict, np.ndarray, np.ndarray]:
    model = checkpoint.model.eval()
    if not indices:
        raise EngineError("the corpus has no RAVDESS speakers this checkpoint was not trained on")
    codes = encode_emotions(checkpoint, [corpus.items[i].speech for i in indices])
    labels = np.array([corpus.items[i].emotion for i in indices])
    present = sorted(set(labels.tolist()))
    logits = model.classifier(codes)[:, present]
    predicted = np.array(present)[logits.argmax(1).numpy()]
    code_of = dict(zip(indices, codes, strict=True))
    spec = WindowSpec(checkpoint.config.lookahead_hops)
    rng = np.random.default_rng(seed)
    held = set(indices)
    cross, self_, gap = [], [], []
    for a, b, frame_map in corpus.pairs:
        if a not in held or b not in held:
            continue
        frames = rng.choice(len(frame_map), min(FRAMES_PER_PAIR, len(frame_map)), replace=False)
        xa = torch.from_numpy(corpus.windows(a, spec)[frames])
        xb = torch.from_numpy(corpus.windows(b, spec)[frame_map[frames]])
        ca, cb = model.content(xa), model.content(xb)
        ea, eb = code_of[a].expand(len(frames), -1), code_of[b].expand(len(frames), -1)
        cross.append(float(((model.decoder(ca, eb) - model.content.norm(xb)) ** 2).mean()))
        self_.append(float(((model.decoder(ca, ea) - model.content.norm(xa)) ** 2).mean()))
        gap.append(float((ca - cb).abs().mean()))
    result = {
        "emotion_accuracy": round(float((predicted == labels).mean()), 4),
        "silhouette": round(silhouette(codes.numpy(), labels), 4),
        "cross_mse": round(float(np.mean(cross)), 4) if cross else None,
        "self_mse": round(float(np.mean(self_)), 4) if self_ else None,
        "content_gap": round(float(np.mean(gap)), 4) if gap else None,
        "utterances": len(indices),
        "pairs": len(cross),
    }
    return result, codes.numpy(), labels


def evaluate_disentangle(
    variants: dict[str, Checkpoint], corpus: Corpus, png: Path | None = None
) -> dict:
    """variants: name ("full", "without-cross", ...) -> disentangle-stage checkpoint."""
    results, embeddings = {}, {}
    indices = held_out(corpus, list(variants.values()))  # the same utterances for every variant
    for name, checkpoint in variants.items():
        results[name], codes, labels = measure(checkpoint, corpus, indices)
        embeddings[name] = (codes, labels)
    if png is not None:
        plot_embeddings(
            {k: v for k, v in embeddings.items() if k in ("full", "without-cross")}, png
        )
    return {"held_out": "RAVDESS speakers none of the variants was trained on", "variants": results}


def plot_embeddings(embeddings: dict[str, tuple[np.ndarray, np.ndarray]], path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(1, len(embeddings), figsize=(6 * len(embeddings), 5), squeeze=False)
    for axis, (name, (codes, labels)) in zip(axes[0], embeddings.items(), strict=True):
        centred = codes - codes.mean(axis=0)
        _, _, vt = np.linalg.svd(centred, full_matrices=False)
        xy = centred @ vt[:2].T
        for k in sorted(set(labels.tolist())):
            chosen = labels == k
            axis.scatter(xy[chosen, 0], xy[chosen, 1], s=14, label=EMOTIONS[k])
        axis.set_title(f"emotion codes, {name} (PCA)")
        axis.legend(fontsize=7)
    figure.tight_layout()
    figure.savefig(path, dpi=100)
    plt.close(figure)
