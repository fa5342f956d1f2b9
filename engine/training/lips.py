"""The ``lips`` stage: the landmark LSTM learns mouths from real talking faces.

It starts from a checkpoint trained through ``landmarks`` (the viseme teacher: the
pretraining) or, with ``reinit``, from a fresh identity MLP and LSTM (the ablation that
says whether the teacher helps), and trains them on tracked frontal landmarks of real
speech (engine.training.talking), train-split speakers only, together with Ec's fully
connected layers (``tune_content``); Ec's convolutions and Ee stay frozen.

Loss per frame the tracking can be trusted on (% of IOD):

    position   eq. 7: L2 on every landmark's displacement
    velocity   L2 on frame-to-frame velocity
    opening    λo · L2 on the inner-lip opening (iBUG 66 below 62) and on its velocity
    spread     λs · (std of predicted opening - std of real opening)² per sequence: L2 on
               its own pulls uncertain frames toward a half-open mouth, which shrinks the
               motion; this keeps each sequence's range of opening that of the speaker

Pauses: the clips have few long silences, and an LSTM that never saw one keeps the
mouth open through it. A fraction ``pause_fraction`` of the sequences gets 0.4-1.2 s of
digital silence spliced in (the content codes of silent windows), with the speaker's
closed neutral face as the target; the frames where the mouth is closing, and the
look-ahead before speech resumes, are left out of the loss.

The emotion input: the talking clips are mostly neutral speech, so on their own they
would teach the LSTM to ignore emotion. A fraction ``emotion_fraction`` of the sequences
is therefore shown a set emotion (the neutral mean moved a random intensity u of the way
to the emotion's cluster mean, as EmotionSpace.category does), and its target is the
real face plus u times the real expression: how that emotion moves MEAD faces from their
own neutral (engine.targets.expressions.expression_offsets, in IOD, scaled to the
speaker's face), averaged over the identities not held out. The rest see the clip's
voice code (Ee on its speech) or the neutral mean, half each, with the real face as it is.
"""

import logging
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from engine.audio.frontend import FrontEndOptions, analyse_offline
from engine.audio.mfcc import WindowSpec
from engine.audio.prosody import speech_span
from engine.constants import EMOTIONS, MOUTH, SAMPLE_RATE, VIDEO_FPS
from engine.errors import EngineError
from engine.evaluation.lipsync import MAX_LAG_S, amplitude_ratio
from engine.model.checkpoint import Checkpoint, load_checkpoint, new_checkpoint, save_checkpoint
from engine.model.emotion_space import MIN_CLIP_HOPS
from engine.targets.expressions import ExpressionOffsets, region_gains
from engine.targets.sync import best_lag
from engine.targets.visemes import frame_times, inner_lip_opening
from engine.training.loop import LoopOptions, run_loop
from engine.training.stages import augment_identity, encode_content, encode_emotions
from engine.training.talking import TalkingClip, TalkingSet

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LipsOptions:
    steps: int = 1200
    batch: int = 16
    length: int = 64  # frames per training sequence (2.56 s)
    lr: float = 5e-4
    seed: int = 0
    lambda_opening: float = 2.0
    lambda_spread: float = 2.0
    reinit: bool = False  # fresh identity MLP + LSTM: no teacher pretraining
    voice_fraction: float = 0.5
    emotion_fraction: float = 0.25  # sequences shown a set emotion, with its real expression
    # ... that expression times this on the brows and eyes, and mouth_gain on the mouth
    # and jaw: a real face's expression is a few hundredths of the eye distance and
    # carries wrinkles and teeth a sketch cannot; drawn at the real size, an outside
    # classifier reads every rendered emotion as neutral (docs/decisions.md). A mouth at
    # 2x read as neutral too: the mouth carries happy and surprised.
    expression_gain: float = 1.0  # 4 measured, not shipped: docs/models.md
    mouth_gain: float = 1.0
    pause_fraction: float = 0.3  # sequences with a stretch of silence spliced in
    content_dropout: float = 0.3  # dropout on Ec's codes (regularises the small data)
    tune_content: bool = True  # also train Ec's fully connected layers (its convolutions
    # stay as the teacher stages left them: their features are computed once)


def opening(faces: torch.Tensor) -> torch.Tensor:
    """(..., 68, 2) landmarks -> (...) inner-lip gap (engine.targets.visemes)."""
    return inner_lip_opening(faces[..., MOUTH.start : MOUTH.stop, :])


def lips_loss(
    predicted: torch.Tensor,
    target: torch.Tensor,
    neutral: torch.Tensor,
    usable: torch.Tensor,
    options: LipsOptions,
) -> dict[str, torch.Tensor]:
    """predicted / target displacements (B, T, 68, 2), neutral (B, 68, 2), usable (B, T)."""
    weight = usable.float()
    pair = weight[:, 1:] * weight[:, :-1]
    masked = lambda x, w: (x * w).sum() / w.sum().clamp(min=1.0)
    error = ((predicted - target) * 100).pow(2).mean(dim=(2, 3))
    velocity = (torch.diff(predicted - target, dim=1) * 100).pow(2).mean(dim=(2, 3))
    face = neutral[:, None]
    o_pred, o_true = opening(predicted + face) * 100, opening(target + face) * 100
    losses = {"position": masked(error, weight), "velocity": masked(velocity, pair)}
    if options.lambda_opening:
        gap = (o_pred - o_true).pow(2)
        gap_velocity = (torch.diff(o_pred, dim=1) - torch.diff(o_true, dim=1)).pow(2)
        losses["opening"] = options.lambda_opening * (
            masked(gap, weight) + masked(gap_velocity, pair)
        )
    if options.lambda_spread:
        count = weight.sum(1).clamp(min=2.0)

        def spread(o):
            mean = (o * weight).sum(1) / count
            return (((o - mean[:, None]) ** 2 * weight).sum(1) / count).clamp(min=1e-6).sqrt()

        losses["spread"] = options.lambda_spread * (spread(o_pred) - spread(o_true)).pow(2).mean()
    return losses


@torch.no_grad()
def conv_features(checkpoint: Checkpoint, windows: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """(T, 28, 12) MFCC windows -> (T, F) Ec's flattened convolution output (eval mode)."""
    content = checkpoint.model.content.eval()
    return np.concatenate(
        [
            content.conv(content.norm(torch.from_numpy(windows[s : s + chunk])).unsqueeze(1))
            .flatten(1)
            .numpy()
            for s in range(0, len(windows), chunk)
        ]
    )


def silent_window(window: WindowSpec) -> np.ndarray:
    """(1, 28, 12): the front-end's MFCC window in the middle of digital silence."""
    windows, _, _ = analyse_offline(np.zeros(SAMPLE_RATE, np.float32), FrontEndOptions(window))
    return windows[len(windows) // 2][None].astype(np.float32)


def _start(start_from: Path, reinit: bool) -> Checkpoint:
    if not start_from.is_file():
        raise EngineError(
            f"the lips stage starts from a landmarks checkpoint; {start_from} does not exist "
            "(run `evp train landmarks` first, or pass --from)"
        )
    checkpoint = load_checkpoint(start_from)
    if "landmarks" not in checkpoint.info.get("stages", {}):
        raise EngineError(f"{start_from} has not been trained through 'landmarks'")
    if reinit:
        fresh = new_checkpoint(checkpoint.config).model
        checkpoint.model.identity.load_state_dict(fresh.identity.state_dict())
        checkpoint.model.landmarks.load_state_dict(fresh.landmarks.state_dict())
    return checkpoint


@torch.no_grad()
def validation_figures(checkpoint: Checkpoint, clips: list[TalkingClip]) -> dict[str, float]:
    """Mean over held-out clips: opening r at the best lag (as `evp eval lipsync`, but
    on the usable frames and with the neutral code), and the amplitude ratio."""
    model = checkpoint.model.eval()
    window = WindowSpec(checkpoint.config.lookahead_hops)
    neutral_code = checkpoint.means[EMOTIONS.index("neutral")]
    rs, amplitudes = [], []
    for clip in clips:
        content = torch.from_numpy(encode_content(checkpoint, clip.windows(window)))[None]
        codes = neutral_code[None, None].expand(1, clip.frames, -1)
        neutral = torch.from_numpy(clip.neutral)[None]
        displacement, _ = model.landmarks(content, codes, model.identity(neutral))
        keep = clip.usable
        predicted = opening(displacement[0] + neutral).numpy()[keep]
        real = opening(torch.from_numpy(clip.targets)).numpy()[keep]
        sync = best_lag(frame_times(clip.frames)[keep], real, predicted, MAX_LAG_S)
        if sync.r is not None:
            rs.append(sync.r)
        amplitudes.append(amplitude_ratio(real, predicted))
    return {"val_r": float(np.mean(rs)), "val_amp": float(np.nanmean(amplitudes))}


def train_lips(
    talking: TalkingSet,
    run: Path,
    options: LipsOptions,
    start_from: Path,
    expressions: ExpressionOffsets,
) -> Path:
    """Trains the lips stage into ``run``/lips.safetensors (resuming if interrupted);
    ``expressions``: (8, 68, 2) IOD offsets, what each emotion adds at intensity 1."""
    run.mkdir(parents=True, exist_ok=True)
    out = run / "lips.safetensors"
    wanted = asdict(options) | {
        "from": str(start_from),
        "offsets": talking.shifted,
        "expressions": list(expressions.names),
    }
    if out.is_file():
        done = load_checkpoint(out).info.get("stages", {}).get("lips", {}).get("options")
        if done is not None and done != wanted:
            raise EngineError(
                f"{out} was trained with other options ({done}); delete it to train again "
                "or choose another --run folder"
            )
        logger.info("lips is finished (%s); delete it to train again", out)
        return out
    train, val = talking.select("train"), talking.select("val")
    if not train:
        raise EngineError("no training-split talking clips: every clip is a held-out speaker")
    checkpoint = _start(start_from, options.reinit)
    model = checkpoint.model
    window = WindowSpec(checkpoint.config.lookahead_hops)
    encode = conv_features if options.tune_content else encode_content
    content = [encode(checkpoint, clip.windows(window)) for clip in train]
    shown = [
        k
        for k, name in enumerate(EMOTIONS)
        if name != "neutral"
        and float(checkpoint.counts[k]) > 0
        and np.abs(expressions.offsets[k]).any()
    ]
    means = checkpoint.means.numpy()
    silence = encode(checkpoint, silent_window(window))[0]  # what Ec makes of digital silence
    settle = 3 + (checkpoint.config.lookahead_hops + 3) // 4  # frames masked at each edge
    speech = [clip.hops[speech_span(clip.hops, MIN_CLIP_HOPS)] for clip in train]
    voice = encode_emotions(checkpoint, speech).numpy()
    neutral_code = checkpoint.means[EMOTIONS.index("neutral")].numpy()
    seconds = np.array([clip.frames for clip in train], dtype=np.float64)
    draw = seconds / seconds.sum()  # every second of speech equally likely
    length = options.length

    gains = region_gains(options.expression_gain, options.mouth_gain)
    if (gains != 1).any():  # drawn stronger than life: the mouth's opening stays the speech's
        expressions = expressions.closed()

    def step(rng):
        cs, es, ids, targets, masks = [], [], [], [], []
        for i in rng.choice(len(train), options.batch, p=draw):
            clip = train[i]
            start = int(rng.integers(0, max(1, clip.frames - length + 1)))
            span = slice(start, start + length)
            pad = lambda x, span=span: np.resize(x[span], (length, *x.shape[1:]))
            expression = np.zeros_like(expressions.offsets[0])
            if shown and rng.random() < options.emotion_fraction:
                k = shown[int(rng.integers(0, len(shown)))]
                intensity = rng.uniform(0.1, 1.0)
                code = neutral_code + intensity * (means[k] - neutral_code)
                expression = intensity * gains * expressions.offsets[k]
            else:
                code = voice[i] if rng.random() < options.voice_fraction else neutral_code
            faces, codes_in, usable = pad(clip.targets), pad(content[i]), pad(clip.usable)
            if rng.random() < options.pause_fraction:
                span_len = min(int(rng.integers(10, 31)), length // 2)  # 0.4-1.2 s
                at = int(rng.integers(0, length - span_len + 1))
                gap = slice(at, at + span_len)
                faces, codes_in, usable = faces.copy(), codes_in.copy(), usable.copy()
                faces[gap], codes_in[gap] = clip.neutral, silence
                usable[at : at + settle] = False
                usable[max(0, at + span_len - settle) : at + span_len + settle] = False
            neutral, faces = augment_identity(
                clip.neutral.astype(np.float64), faces.astype(np.float64), rng
            )
            iod = float(np.linalg.norm(neutral[45] - neutral[36]))
            cs.append(codes_in)
            es.append(np.repeat(code[None], length, axis=0))
            ids.append(neutral)
            targets.append(faces - neutral[None] + iod * expression[None])
            masks.append(usable)
        tensor = lambda x: torch.from_numpy(np.stack(x)).float()
        identity, e = tensor(ids), tensor(es)
        codes = model.content.fc(tensor(cs)) if options.tune_content else tensor(cs)
        codes = torch.nn.functional.dropout(codes, options.content_dropout, training=True)
        predicted, _ = model.landmarks(codes, e, model.identity(identity))
        return lips_loss(
            predicted,
            tensor(targets),
            identity,
            torch.from_numpy(np.stack(masks)),
            options,
        )

    started = time.monotonic()
    loop = LoopOptions(steps=options.steps, lr=options.lr, seed=options.seed, signature=wanted)
    params = list(model.identity.parameters()) + list(model.landmarks.parameters())
    if options.tune_content:
        params += list(model.content.fc.parameters())
    final = run_loop(
        "lips",
        run / "lips.state.pt",
        model,
        params,
        step,
        loop,
        on_log=(lambda _: validation_figures(checkpoint, val)) if val else None,
    )
    report = talking.report()
    checkpoint.info["stages"]["lips"] = {
        "steps": options.steps,
        "seconds": round(time.monotonic() - started, 1),
        "final_losses": {k: round(v, 5) for k, v in final.items()},
        "options": wanted,
        "train_groups": sorted({c.group for c in train}),
        "heldout_groups": sorted({c.group for c in val}),
        "train_seconds": round(float(seconds.sum()) / VIDEO_FPS, 1),
        "expression_identities": list(expressions.names),
        "data": report,
    }
    save_checkpoint(checkpoint, out)
    (run / "lips.state.pt").unlink(missing_ok=True)
    return out
