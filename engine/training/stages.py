"""The four training stages of the audio-to-landmark module.

    emotion      Ee + Ce: emotion classification of variable-length clips (pretraining)
    content      Ec + a viseme head: per-frame viseme classification (pretraining)
    disentangle  Ec, Ee, D, Ce with L_cross + L_self + λcla L_cla + λcon L_con (eq. 2-6)
                 on pseudo-pairs: same sentence and speaker, two emotions, frames aligned
    landmarks    identity MLP + LSTM + MLP on frozen Ec/Ee codes, loss eq. 7 plus a
                 velocity term

Each stage starts from the previous stage's checkpoint and writes a full checkpoint, so
any stage's output can be loaded and run. Only ``train`` split speakers are used.
"""

import logging
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from engine.audio.mfcc import WindowSpec
from engine.constants import EMOTIONS, MFCC_N_COEFFS, MOUTH, VIDEO_FPS
from engine.errors import EngineError
from engine.model.checkpoint import Checkpoint, load_checkpoint, new_checkpoint, save_checkpoint
from engine.model.networks import ModelConfig
from engine.training.corpus import N_VISEMES, Corpus
from engine.training.loop import LoopOptions, run_loop
from engine.training.names import DEFAULT_STEPS, LOSSES, STAGES

logger = logging.getLogger(__name__)

CLIP_HOPS = (100, 300)  # emotion clips: 1 to 3 s


@dataclass(frozen=True)
class StageOptions:
    steps: int | None = None  # None: DEFAULT_STEPS[stage]
    batch: int | None = None
    lr: float = 1e-3
    seed: int = 0
    lookahead_hops: int = 12
    without: tuple[str, ...] = ()  # disentangle ablation: losses left out
    lambda_cla: float = 1.0
    lambda_con: float = 1.0


def stage_path(run: Path, stage: str) -> Path:
    return run / f"{stage}.safetensors"


def crop(hops: np.ndarray, length: int, rng: np.random.Generator) -> np.ndarray:
    """A random (length, 12) stretch of an utterance; short ones repeat (wrap around)."""
    if len(hops) >= length:
        start = int(rng.integers(0, len(hops) - length + 1))
        return hops[start : start + length]
    return np.resize(hops, (length, hops.shape[1]))


def _balanced(
    corpus: Corpus, indices: list[int], rng: np.random.Generator, count: int
) -> list[int]:
    """Items drawn with every present emotion equally likely."""
    if not indices:
        raise EngineError("no training utterances to draw from; check the corpus splits")
    by_emotion: dict[int, list[int]] = {}
    for i in indices:
        by_emotion.setdefault(corpus.items[i].emotion, []).append(i)
    emotions = sorted(by_emotion)
    picks = rng.integers(0, len(emotions), count)
    return [
        by_emotion[emotions[p]][int(rng.integers(0, len(by_emotion[emotions[p]])))] for p in picks
    ]


def mfcc_stats(corpus: Corpus, indices: list[int]) -> tuple[torch.Tensor, torch.Tensor]:
    hops = np.concatenate([corpus.items[i].hops[:, :MFCC_N_COEFFS] for i in indices])
    return torch.from_numpy(hops.mean(0)), torch.from_numpy(hops.std(0) + 1e-3)


@torch.no_grad()
def encode_emotions(
    checkpoint: Checkpoint, hops_list: list[np.ndarray], chunk: int = 64
) -> torch.Tensor:
    """Emotion codes of whole utterances, (N, emotion_dim). Batches equal lengths."""
    model = checkpoint.model.eval()
    codes = torch.zeros(len(hops_list), checkpoint.config.emotion_dim)
    order = sorted(range(len(hops_list)), key=lambda i: len(hops_list[i]))
    for start in range(0, len(order), chunk):
        group = order[start : start + chunk]
        for length in sorted({len(hops_list[i]) for i in group}):
            same = [i for i in group if len(hops_list[i]) == length]
            x = torch.from_numpy(np.stack([hops_list[i] for i in same]))
            codes[same] = model.emotion(x)
    return codes


def emotion_means(checkpoint: Checkpoint, corpus: Corpus, indices: list[int]) -> None:
    """Per-emotion cluster means of the training utterances' codes, into the checkpoint."""
    codes = encode_emotions(checkpoint, [corpus.items[i].speech for i in indices])
    labels = torch.tensor([corpus.items[i].emotion for i in indices])
    # Full-intensity takes define a category (half-intensity ones sit between it and
    # neutral); every neutral take counts, whatever its recorded intensity.
    neutral = EMOTIONS.index("neutral")
    strong = torch.tensor(
        [corpus.items[i].intensity != 0.5 or corpus.items[i].emotion == neutral for i in indices]
    )
    for k in range(len(EMOTIONS)):
        chosen = (labels == k) & strong
        checkpoint.counts[k] = float(chosen.sum())
        if chosen.any():
            checkpoint.means[k] = codes[chosen].mean(0)


def _start(
    run: Path, stage: str, options: StageOptions, corpus: Corpus, start_from: Path | None
) -> Checkpoint:
    index = STAGES.index(stage)
    if index == 0 and start_from is None:
        config = ModelConfig(lookahead_hops=options.lookahead_hops, n_visemes=N_VISEMES)
        checkpoint = new_checkpoint(config)
        train = corpus.select("train")
        checkpoint.model.set_mfcc_stats(*mfcc_stats(corpus, train))
        checkpoint.info = {
            "train_speakers": sorted({corpus.items[i].speaker for i in train}),
            "stages": {},
        }
        return checkpoint
    previous = start_from or stage_path(run, STAGES[index - 1])
    if not previous.is_file():
        raise EngineError(
            f"stage '{stage}' needs {previous}; run `evp train {STAGES[index - 1]}` first"
        )
    checkpoint = load_checkpoint(previous)
    if checkpoint.config.lookahead_hops != options.lookahead_hops and stage == "content":
        # Only Ec reads the window; an emotion-stage checkpoint serves any look-ahead.
        return _with_lookahead(checkpoint, options.lookahead_hops)
    if checkpoint.config.lookahead_hops != options.lookahead_hops:
        raise EngineError(
            f"{previous} was trained with lookahead_hops={checkpoint.config.lookahead_hops}, "
            f"not {options.lookahead_hops}; use another --run folder"
        )
    return checkpoint


def _with_lookahead(checkpoint: Checkpoint, lookahead_hops: int) -> Checkpoint:
    config = replace(checkpoint.config, lookahead_hops=lookahead_hops)
    moved = new_checkpoint(config)
    moved.model.load_state_dict(checkpoint.model.state_dict())
    moved.means, moved.counts, moved.info = checkpoint.means, checkpoint.counts, checkpoint.info
    moved.canonical = checkpoint.canonical
    return moved


def _signature(options: StageOptions, stage: str) -> dict:
    return _signature_of(asdict(options), stage)


def _signature_of(options: dict, stage: str) -> dict:
    """The options that change what a stage learns (JSON-comparable)."""
    keys = ["steps", "batch", "lr", "seed", "lookahead_hops"]
    if stage == "disentangle":
        keys += ["without", "lambda_cla", "lambda_con"]
    picked = {k: options.get(k) for k in keys}
    picked["steps"] = picked["steps"] or DEFAULT_STEPS[stage]
    if "without" in picked:
        picked["without"] = sorted(picked["without"] or [])
    return picked


def train_stage(
    stage: str, corpus: Corpus, run: Path, options: StageOptions, start_from: Path | None = None
) -> Path:
    """Trains one stage into ``run`` (resuming if interrupted); returns its checkpoint.
    The stage starts from ``start_from`` or else from the previous stage in ``run``."""
    if stage not in STAGES:
        raise EngineError(f"unknown stage {stage!r}; stages are {', '.join(STAGES)}")
    run.mkdir(parents=True, exist_ok=True)
    out = stage_path(run, stage)
    wanted = _signature(options, stage)
    if out.is_file():
        done = load_checkpoint(out).info.get("stages", {}).get(stage, {}).get("options")
        if done is not None and _signature_of(done, stage) != wanted:
            raise EngineError(
                f"{out} was trained with other options ({done}); delete it to train again "
                "or choose another --run folder"
            )
        logger.info("%s is finished (%s); delete it to train again", stage, out)
        return out
    checkpoint = _start(run, stage, options, corpus, start_from)
    steps = options.steps or DEFAULT_STEPS[stage]
    loop = LoopOptions(steps=steps, lr=options.lr, seed=options.seed, signature=wanted)
    started = time.monotonic()
    trainer = {
        "emotion": _emotion,
        "content": _content,
        "disentangle": _disentangle,
        "landmarks": _landmarks,
    }
    final = trainer[stage](checkpoint, corpus, run, loop, options)
    train = corpus.select("train")
    if stage in ("emotion", "disentangle"):
        emotion_means(checkpoint, corpus, train)
    checkpoint.canonical = torch.from_numpy(corpus.canonical).float()
    checkpoint.info["stages"][stage] = {
        "steps": steps,
        "seconds": round(time.monotonic() - started, 1),
        "final_losses": {k: round(v, 5) for k, v in final.items()},
        "options": asdict(options),
    }
    save_checkpoint(checkpoint, out)
    (run / f"{stage}.state.pt").unlink(missing_ok=True)
    return out


# --- emotion -----------------------------------------------------------------------------


def _emotion_batch(
    corpus: Corpus, picks: list[int], rng: np.random.Generator
) -> tuple[torch.Tensor, torch.Tensor]:
    length = int(rng.integers(*CLIP_HOPS))
    x = np.stack([augment_clip(crop(corpus.items[i].speech, length, rng), rng) for i in picks])
    y = np.array([corpus.items[i].emotion for i in picks])
    return torch.from_numpy(x), torch.from_numpy(y)


def augment_clip(hops: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """Speaking-rate perturbation (+-10 %), one masked time span, one masked MFCC band."""
    length = len(hops)
    source = np.clip(np.arange(length) * rng.uniform(0.9, 1.1), 0, length - 1)
    out = hops[np.round(source).astype(int)].copy()
    span = int(rng.integers(0, length // 8 + 1))
    start = int(rng.integers(0, length - span + 1))
    out[start : start + span, :MFCC_N_COEFFS] = hops[:, :MFCC_N_COEFFS].mean(0)
    band = int(rng.integers(0, 3))
    first = int(rng.integers(0, MFCC_N_COEFFS - band + 1))
    out[:, first : first + band] = hops[:, first : first + band].mean(0)
    return out


def _accuracy(checkpoint: Checkpoint, corpus: Corpus, indices: list[int]) -> float:
    if not indices:
        return float("nan")
    codes = encode_emotions(checkpoint, [corpus.items[i].speech for i in indices])
    logits = checkpoint.model.classifier(codes)
    present = sorted({corpus.items[i].emotion for i in indices})
    predicted = torch.tensor(present)[logits[:, present].argmax(1)]
    truth = torch.tensor([corpus.items[i].emotion for i in indices])
    return float((predicted == truth).float().mean())


def _emotion(checkpoint, corpus, run, loop, options) -> dict:
    model = checkpoint.model
    train = corpus.select("train")
    real = [i for i in train if corpus.items[i].kind == "ravdess"]
    synthetic = [i for i in train if corpus.items[i].kind == "synthetic"]
    val = [i for i in corpus.select("val") if corpus.items[i].kind == "ravdess"]
    batch = options.batch or 32

    def step(rng):
        picks = _balanced(corpus, real, rng, batch - batch // 4) if real else []
        picks += _balanced(corpus, synthetic or real, rng, batch - len(picks))
        x, y = _emotion_batch(corpus, picks, rng)
        x[..., :MFCC_N_COEFFS] += (
            0.05 * torch.randn_like(x[..., :MFCC_N_COEFFS]) * model.emotion.norm.std
        )
        return {"cla": F.cross_entropy(model.classifier(model.emotion(x)), y, label_smoothing=0.1)}

    params = list(model.emotion.parameters()) + list(model.classifier.parameters())
    return run_loop(
        "emotion",
        run / "emotion.state.pt",
        model,
        params,
        step,
        loop,
        on_log=lambda _: {"val_acc": _accuracy(checkpoint, corpus, val)},
    )


# --- content -----------------------------------------------------------------------------


def _frame_table(corpus: Corpus, indices: list[int], spec: WindowSpec):
    windows = np.concatenate([corpus.windows(i, spec) for i in indices])
    owners = np.concatenate([np.full(corpus.items[i].frames, i) for i in indices])
    frames = np.concatenate([np.arange(corpus.items[i].frames) for i in indices])
    return windows, owners, frames


def _content(checkpoint, corpus, run, loop, options) -> dict:
    model = checkpoint.model
    spec = WindowSpec(checkpoint.config.lookahead_hops)
    train = corpus.select("train")
    windows, owners, frames = _frame_table(corpus, train, spec)
    labels = np.array([corpus.items[o].visemes[f] for o, f in zip(owners, frames, strict=True)])
    batch = options.batch or 256

    def step(rng):
        pick = rng.integers(0, len(windows), batch)
        logits = model.viseme_head(model.content(torch.from_numpy(windows[pick])))
        return {"viseme": F.cross_entropy(logits, torch.from_numpy(labels[pick]))}

    params = list(model.content.parameters()) + list(model.viseme_head.parameters())
    return run_loop("content", run / "content.state.pt", model, params, step, loop)


# --- disentangle -------------------------------------------------------------------------


def _disentangle(checkpoint, corpus, run, loop, options) -> dict:
    unknown = set(options.without) - set(LOSSES)
    if unknown:
        raise EngineError(f"unknown losses {sorted(unknown)}; choose from {', '.join(LOSSES)}")
    model = checkpoint.model
    spec = WindowSpec(checkpoint.config.lookahead_hops)
    train = set(corpus.select("train"))
    pairs = [p for p in corpus.pairs if p[0] in train and p[1] in train]
    if not pairs:
        raise EngineError(
            "the corpus has no training pairs (same sentence and speaker, two emotions)"
        )
    windows = {i: corpus.windows(i, spec) for p in pairs for i in p[:2]}
    same_voice: dict[tuple[str, int], list[int]] = {}
    for i in train:
        item = corpus.items[i]
        same_voice.setdefault((item.speaker, item.emotion), []).append(i)
    real = [k for k, p in enumerate(pairs) if corpus.items[p[0]].kind == "ravdess"]
    weight = {name: 0.0 if name in options.without else 1.0 for name in LOSSES}
    weight["cla"] *= options.lambda_cla
    weight["con"] *= options.lambda_con
    batch = options.batch or 48

    def other_take(i: int, rng) -> int:
        """Another utterance by the same speaker in the same emotion, of another sentence
        when there is one (so the emotion code cannot carry this sentence's content)."""
        item = corpus.items[i]
        takes = same_voice[(item.speaker, item.emotion)]
        others = [j for j in takes if corpus.items[j].sentence != item.sentence] or takes
        return others[int(rng.integers(0, len(others)))]

    def step(rng):
        chosen = [pairs[k] for k in rng.choice(real, batch // 2)] if real else []
        chosen += [pairs[k] for k in rng.integers(0, len(pairs), batch - len(chosen))]
        xa, xb, ea, eb, ya, yb = [], [], [], [], [], []
        for a, b, frame_map in chosen:
            t = int(rng.integers(0, len(frame_map)))
            xa.append(windows[a][t])
            xb.append(windows[b][frame_map[t]])
            ea.append(a)
            eb.append(b)
            ya.append(corpus.items[a].emotion)
            yb.append(corpus.items[b].emotion)
        length = int(rng.integers(*CLIP_HOPS))
        clip = lambda i: augment_clip(crop(corpus.items[i].speech, length, rng), rng)
        x_a, x_b = torch.from_numpy(np.stack(xa)), torch.from_numpy(np.stack(xb))
        self_a = torch.from_numpy(np.stack([clip(i) for i in ea]))
        self_b = torch.from_numpy(np.stack([clip(i) for i in eb]))
        cross_m = torch.from_numpy(np.stack([clip(other_take(i, rng)) for i in ea]))
        cross_n = torch.from_numpy(np.stack([clip(other_take(i, rng)) for i in eb]))
        emotion = model.emotion(torch.cat([self_a, self_b, cross_m, cross_n]))
        e_self_a, e_self_b, e_m, e_n = emotion.chunk(4)
        c_a, c_b = model.content(x_a), model.content(x_b)
        target_a, target_b = model.content.norm(x_a), model.content.norm(x_b)
        losses = {}
        if weight["self"]:
            losses["self"] = weight["self"] * (
                F.mse_loss(model.decoder(c_a, e_self_a), target_a)
                + F.mse_loss(model.decoder(c_b, e_self_b), target_b)
            )
        if weight["cross"]:
            losses["cross"] = weight["cross"] * (
                F.mse_loss(model.decoder(c_a, e_n), target_b)
                + F.mse_loss(model.decoder(c_b, e_m), target_a)
            )
        if weight["cla"]:
            labels = torch.tensor(ya + yb + ya + yb)
            losses["cla"] = weight["cla"] * F.cross_entropy(model.classifier(emotion), labels)
        if weight["con"]:
            losses["con"] = weight["con"] * F.l1_loss(c_a, c_b)
        return losses

    params = [
        p
        for net in (model.content, model.emotion, model.decoder, model.classifier)
        for p in net.parameters()
    ]
    val = [i for i in corpus.select("val") if corpus.items[i].kind == "ravdess"]
    return run_loop(
        "disentangle",
        run / "disentangle.state.pt",
        model,
        params,
        step,
        loop,
        on_log=lambda _: {"val_acc": _accuracy(checkpoint, corpus, val)},
    )


# --- landmarks ---------------------------------------------------------------------------


def augment_identity(neutral: np.ndarray, faces: np.ndarray, rng: np.random.Generator):
    """Another plausible identity: the face stretched, and the mouth scaled about its
    centre. The same map moves the neutral face (68, 2) and the targets (..., 68, 2), so
    displacements grow and shrink with the face."""
    centre = neutral.mean(axis=0)
    scale = rng.uniform(0.9, 1.1, 2)
    mouth_scale = rng.uniform(0.85, 1.15, 2)
    mouth_centre = (neutral[MOUTH.start : MOUTH.stop] - centre).mean(axis=0) * scale + centre

    def warp(points: np.ndarray) -> np.ndarray:
        out = (points - centre) * scale + centre
        out[..., MOUTH.start : MOUTH.stop, :] = (
            out[..., MOUTH.start : MOUTH.stop, :] - mouth_centre
        ) * mouth_scale + mouth_centre
        return out

    return warp(neutral), warp(faces)


@torch.no_grad()
def encode_content(checkpoint: Checkpoint, windows: np.ndarray, chunk: int = 2048) -> np.ndarray:
    model = checkpoint.model.eval()
    return np.concatenate(
        [
            model.content(torch.from_numpy(windows[s : s + chunk])).numpy()
            for s in range(0, len(windows), chunk)
        ]
    )


def _landmarks(checkpoint, corpus, run, loop, options) -> dict:
    model = checkpoint.model
    spec = WindowSpec(checkpoint.config.lookahead_hops)
    train = corpus.select("train")
    emotion_means(checkpoint, corpus, train)  # Ee is frozen from here on: final means
    content = {i: encode_content(checkpoint, corpus.windows(i, spec)) for i in train}
    voice_codes = encode_emotions(checkpoint, [corpus.items[i].speech for i in train]).numpy()
    voice = dict(zip(train, voice_codes, strict=True))
    means = checkpoint.means.numpy()
    neutral_code = means[EMOTIONS.index("neutral")]
    batch, length = options.batch or 16, int(2.56 * VIDEO_FPS)
    canonical = corpus.canonical.astype(np.float64)

    def step(rng):
        cs, es, ids, targets = [], [], [], []
        for i in rng.choice(train, batch):
            item = corpus.items[i]
            start = int(rng.integers(0, max(1, item.frames - length + 1)))
            span = slice(start, start + length)
            c = np.resize(content[i][span], (length, content[i].shape[1]))
            faces = np.resize(item.targets[span], (length, *item.targets.shape[1:]))
            if rng.random() < 0.5:  # emotion as the voice says, or as a user sets it
                code = voice[i]
            else:  # targets carry the take's intensity (neutral: none), and so does the code
                code = neutral_code + item.intensity * (means[item.emotion] - neutral_code)
            neutral, faces = augment_identity(canonical, faces.astype(np.float64), rng)
            cs.append(c)
            es.append(np.repeat(code[None], length, axis=0))
            ids.append(neutral)
            targets.append(faces - neutral[None])
        c = torch.from_numpy(np.stack(cs)).float()
        e = torch.from_numpy(np.stack(es)).float()
        identity = torch.from_numpy(np.stack(ids)).float()
        target = torch.from_numpy(np.stack(targets)).float()
        predicted, _ = model.landmarks(c, e, model.identity(identity))
        error = (predicted - target) * 100  # % of IOD
        velocity = torch.diff(predicted - target, dim=1) * 100
        return {"position": error.pow(2).mean(), "velocity": velocity.pow(2).mean()}

    params = list(model.identity.parameters()) + list(model.landmarks.parameters())
    return run_loop("landmarks", run / "landmarks.state.pt", model, params, step, loop)
