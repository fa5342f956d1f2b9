"""``evp eval expression``: does the face show each emotion as real faces do?

The reference is real: for each MEAD identity with a neutral clip, how each emotion moves
its frontal face from that identity's neutral, in eight named measures
(engine.targets.expressions.FEATURES, IOD units). The held-out identities (the MEAD ones among
engine.data.speakers.HELDOUT_GROUPS) never make training targets; the headline compares
against them.

The model is asked for each emotion on the same speech (a held-out speaker's), through
the live pipeline (``evp render``) with each avatar, at intensity 1 and 0.5 and neutral.
Its displacement for an emotion is the median over frames of the per-frame feature
difference from the neutral render (same audio, so speech cancels frame by frame), on

    predicted   the frontal landmarks the generator was given
    rendered    FaceMesh on the rendered video, frontalised (a generator that ignores
                the sketch shows nothing here)

and against the reference displacement of each identity:

    cosine      of the two 8-vectors (1: the same direction)
    magnitude   |displacement| over |reference| (1: as strong as the real face)

Distinguishable: the predicted per-frame displacements at intensity 1 are cut into
1 s windows; each window goes to the emotion whose mean displacement (of the other
windows) is nearest. An emotion is distinguishable when at least 90 % of its windows
land on it; the table gives each emotion's share.

Judged (the pixel yardstick, engine.evaluation.judge): an outside facial-expression
classifier (FER2013) reads every other settled frame of each render, and the mean of its
probabilities is the render's verdict:

    top         the class it reads
    p_asked     its probability of the emotion asked for (contempt has no class)
    lift        p_asked minus the same class's probability on the neutral render
    monotonic   p_asked rises from the neutral render to intensity 0.5 to intensity 1
    blend       p(to) along a blend from sad to happy at alpha 0, .25, .5, .75, 1 (a
                live transition, set_emotion's transition_ms, passes the same codes)

and beside it the same classifier on the real MEAD clips (its ceiling on real faces).
"""

import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.avatar.bundle import Avatar
from engine.constants import EMOTIONS, VIDEO_FPS
from engine.data.speakers import HELDOUT_GROUPS
from engine.emotion_state import EmotionState
from engine.errors import EngineError
from engine.evaluation.judge import CLASSES, ExpressionJudge, Verdict, video_frames
from engine.face.tracking import track_video
from engine.pipeline.portrait import PortraitEngine
from engine.pipeline.render_video import EmotionChoice, render_video
from engine.targets.expressions import FEATURES, expression_features, reference_expressions

INTENSITIES = (1.0, 0.5)
SETTLE_S = 0.6  # the first frames are skipped: the emotion's transition from neutral
WINDOW_S = 1.0
DISTINGUISHABLE = 0.9
JUDGE_STEP = 2  # the judge reads every other frame
BLEND = ("sad", "happy")  # a blend between two emotions, judged along its alpha
BLEND_ALPHAS = (0.0, 0.25, 0.5, 0.75, 1.0)


@dataclass(frozen=True)
class Render:
    """One render's per-frame features: (T, 8) predicted and (T, 8) rendered (NaN where
    the rendered face was not tracked), the middle frame's face crop and the judge's
    verdict on the settled frames."""

    predicted: np.ndarray
    rendered: np.ndarray
    still: np.ndarray
    verdict: Verdict


def render_features(
    speech: Path,
    engine: PortraitEngine,
    avatar: Avatar,
    state: EmotionState,
    work: Path,
    judge: ExpressionJudge,
) -> Render:
    name = f"{avatar.manifest.name}-{state.label().replace(' ', '-')}"
    video, landmarks = work / f"{name}.mp4", work / f"{name}.npy"
    render_video(speech, video, engine, avatar, EmotionChoice(state), landmarks)
    predicted = expression_features(np.load(landmarks))
    track = track_video(video, cache_dir=work / "tracking")
    frames = min(len(predicted), len(track.valid))
    rendered = np.full((frames, len(FEATURES)), np.nan)
    rendered[track.valid[:frames]] = expression_features(
        track.frontal68[:frames][track.valid[:frames]]
    )
    verdict = judge.verdict(video_frames(video, int(SETTLE_S * VIDEO_FPS), JUDGE_STEP))
    return Render(predicted[:frames], rendered, _still(video, track, frames // 2), verdict)


def _still(video: Path, track, index: int) -> np.ndarray:
    """(H, W, 3) the face of frame ``index``, cropped around its landmarks."""
    import av

    with av.open(str(video)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i == index:
                image = frame.to_ndarray(format="rgb24")
                break
        else:
            raise EngineError(f"{video}: no frame {index}")
    points = track.landmarks68[min(index, len(track.valid) - 1), :, :2]
    (x0, y0), (x1, y1) = points.min(axis=0), points.max(axis=0)
    pad = 0.25 * (x1 - x0)
    x0, y0 = int(max(x0 - pad, 0)), int(max(y0 - 1.5 * pad, 0))
    x1, y1 = int(min(x1 + pad, image.shape[1])), int(min(y1 + pad, image.shape[0]))
    return image[y0:y1, x0:x1]


def displacement(shown: np.ndarray, neutral: np.ndarray) -> np.ndarray | None:
    """(8,) median over settled frames of shown - neutral; None if no frame has both."""
    skip = int(SETTLE_S * VIDEO_FPS)
    diff = (shown - neutral)[skip:]
    diff = diff[~np.isnan(diff).any(axis=1)]
    return np.median(diff, axis=0) if len(diff) else None


def compare(shown: np.ndarray | None, reference: np.ndarray) -> dict:
    """Cosine and magnitude ratio of a displacement against a reference (both (8,))."""
    if shown is None:
        return {"cosine": None, "magnitude": None}
    norm = float(np.linalg.norm(shown)) * float(np.linalg.norm(reference))
    return {
        "cosine": round(float(shown @ reference) / norm, 3) if norm > 0 else None,
        "magnitude": round(float(np.linalg.norm(shown) / np.linalg.norm(reference)), 3),
    }


def distinguishability(per_frame: dict[str, np.ndarray]) -> dict[str, float]:
    """{emotion: share of its 1 s windows nearest its own mean} (module doc)."""
    size = int(WINDOW_S * VIDEO_FPS)
    skip = int(SETTLE_S * VIDEO_FPS)
    windows = {
        e: np.array([d[i : i + size].mean(axis=0) for i in range(skip, len(d) - size + 1, size)])
        for e, d in per_frame.items()
    }
    share = {}
    for emotion, own in windows.items():
        hits = 0
        for k, window in enumerate(own):
            means = {
                e: (np.delete(w, k, axis=0) if e == emotion else w).mean(axis=0)
                for e, w in windows.items()
            }
            nearest = min(means, key=lambda e: float(np.linalg.norm(window - means[e])))
            hits += nearest == emotion
        share[emotion] = round(hits / max(len(own), 1), 3)
    return share


def judged(shown: Verdict, neutral: Verdict, emotion: str) -> dict:
    """The judge's reading of one render against the neutral render's (module doc)."""
    return shown.to_json() | {
        "p_asked": round(shown.p(emotion), 3),
        "lift": round(shown.p(emotion) - neutral.p(emotion), 3),
        "as_asked": shown.top == emotion,
    }


def evaluate_avatar(
    engine: PortraitEngine,
    avatar: Avatar,
    speech: Path,
    references: dict[str, dict[str, np.ndarray]],
    work: Path,
    judge: ExpressionJudge,
) -> tuple[dict, dict[str, np.ndarray]]:
    """The figures of one avatar (module doc) and its stills {emotion: crop}."""
    render = lambda state: render_features(speech, engine, avatar, state, work, judge)
    neutral = render(EmotionState(emotion="neutral"))
    rows: dict = {}
    per_frame: dict[str, np.ndarray] = {"neutral": neutral.predicted - neutral.predicted}
    stills = {"neutral": neutral.still}
    judge_rows = {"neutral": judged(neutral.verdict, neutral.verdict, "neutral")}
    for emotion in (e for e in EMOTIONS if e != "neutral" and e in engine.space.known):
        ramp = [neutral.verdict.p(emotion)]
        for intensity in sorted(INTENSITIES):
            shown = render(EmotionState(emotion=emotion, intensity=intensity))
            predicted = displacement(shown.predicted, neutral.predicted)
            rendered = displacement(shown.rendered, neutral.rendered)
            key = emotion if intensity == 1.0 else f"{emotion}:{intensity:g}"
            ramp.append(shown.verdict.p(emotion))
            rows[key] = {
                "predicted": _rounded(predicted),
                "rendered": _rounded(rendered),
                "against": {
                    identity: {
                        "predicted": compare(predicted, intensity * ref[emotion]),
                        "rendered": compare(rendered, intensity * ref[emotion]),
                    }
                    for identity, ref in references.items()
                    if emotion in ref
                },
                "judge": judged(shown.verdict, neutral.verdict, emotion),
            }
            if intensity == 1.0:
                per_frame[emotion] = shown.predicted - neutral.predicted
                stills[emotion] = shown.still
                judge_rows[emotion] = rows[key]["judge"] | {
                    "monotonic": bool(np.all(np.diff(ramp) > 0)),
                    "ramp": [round(p, 3) for p in ramp],
                }
    return {
        "per_emotion": rows,
        "distinguishable": distinguishability(per_frame),
        "judge": judge_rows,
        "blend": judged_blend(render, BLEND),
    }, stills


def judged_blend(render, pair: tuple[str, str]) -> dict:
    """The judge along a blend from one emotion to another (alpha 0 .. 1): p(to) at each
    alpha, and whether it rises all the way (a live transition passes the same codes)."""
    source, target = pair
    p = [
        render(
            EmotionState(mode="blend", blend_from=source, blend_to=target, alpha=alpha)
        ).verdict.p(target)
        for alpha in BLEND_ALPHAS
    ]
    return {
        "from": source,
        "to": target,
        "alphas": list(BLEND_ALPHAS),
        "p_to": [round(x, 3) for x in p],
        "monotonic": bool(np.all(np.diff(p) > 0)),
    }


def judge_summary(rows: dict[str, dict]) -> dict:
    """Of the judgeable emotions at intensity 1 (those the judge has a class for): how many
    it reads as asked, how many lift p(asked) above the neutral render, how many rise
    monotonically with intensity."""
    judgeable = {e: r for e, r in rows.items() if e in CLASSES}
    others = {e: r for e, r in judgeable.items() if e != "neutral"}
    return {
        "as_asked": sum(r["as_asked"] for r in judgeable.values()),
        "of": len(judgeable),
        "lifted": sum(r["lift"] > 0 for r in others.values()),
        "monotonic": sum(r.get("monotonic", False) for r in others.values()),
        "of_others": len(others),
        "neutral_top": rows["neutral"]["top"],
    }


def judge_ceiling(mead_dir: Path, judge: ExpressionJudge) -> dict:
    """The judge on the real MEAD clips (the strongest level of each emotion and the
    neutral ones): per clip its reading, and how many it reads as labelled."""
    from engine.data.mead import load_mead

    clips = {}
    for record in load_mead(mead_dir).records:
        if record.emotion not in CLASSES:
            continue
        frames = video_frames(record.path, int(SETTLE_S * VIDEO_FPS), JUDGE_STEP)
        verdict = judge.verdict(frames)
        clips[record.path.name] = {
            "emotion": record.emotion,
            "top": verdict.top,
            "p_asked": round(verdict.p(record.emotion), 3),
        }
    return {
        "as_labelled": sum(c["top"] == c["emotion"] for c in clips.values()),
        "of": len(clips),
        "clips": clips,
    }


def _rounded(vector: np.ndarray | None) -> dict | None:
    if vector is None:
        return None
    return {name: round(float(v), 4) for name, v in zip(FEATURES, vector, strict=True)}


def _summary(result: dict, identities: tuple[str, ...]) -> dict:
    """Per avatar: the worst and mean cosine and the range of magnitudes over the
    emotions at intensity 1, against the held-out identities."""
    out = {}
    for name, figures in result.items():
        row = {}
        for kind in ("predicted", "rendered"):
            values = [
                entry["against"][identity][kind]
                for emotion, entry in figures["per_emotion"].items()
                if ":" not in emotion
                for identity in identities
                if identity in entry["against"]
            ]
            cosines = [v["cosine"] for v in values if v["cosine"] is not None]
            magnitudes = [v["magnitude"] for v in values if v["magnitude"] is not None]
            row[kind] = {
                "min_cosine": min(cosines, default=None),
                "mean_cosine": round(float(np.mean(cosines)), 3) if cosines else None,
                "magnitudes": [min(magnitudes), max(magnitudes)] if magnitudes else None,
            }
        row["min_distinguishable"] = min(figures["distinguishable"].values())
        row["judge"] = judge_summary(figures["judge"]) | {
            "blend_monotonic": figures["blend"]["monotonic"]
        }
        out[name] = row
    return out


def evaluate_expression(
    engine: PortraitEngine,
    avatars: list[Avatar],
    speech: Path,
    mead_dir: Path,
    cache_dir: Path | None = None,
    keep: Path | None = None,
    png: Path | None = None,
) -> dict:
    """The module doc's figures for every avatar, with the references they are held to."""
    if not avatars:
        raise EngineError("no avatar to evaluate")
    if not speech.is_file():
        raise EngineError(f"no speech file {speech}: pass --speech with a speech recording")
    references = reference_expressions(mead_dir, cache_dir)
    held_out = tuple(sorted(i for i in references if i in HELDOUT_GROUPS))
    if not held_out:
        raise EngineError(
            f"no held-out identity ({', '.join(sorted(HELDOUT_GROUPS))}) has a neutral and "
            f"emotion clips under {mead_dir}: the reference needs them"
        )
    judge = ExpressionJudge.load()
    per_avatar, stills = {}, {}
    with tempfile.TemporaryDirectory(prefix="evp-expression-") as tmp:
        work = Path(keep) if keep else Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        for avatar in avatars:
            name = avatar.manifest.name
            per_avatar[name], stills[name] = evaluate_avatar(
                engine, avatar, speech, references, work, judge
            )
    result = {
        "units": "displacements in inter-ocular distances; cosine and magnitude against "
        "the reference identity's displacement for the same emotion (scaled by intensity)",
        "features": list(FEATURES),
        "speech": str(speech),
        "held_out_identities": list(held_out),
        "reference": {i: {e: _rounded(v) for e, v in r.items()} for i, r in references.items()},
        "summary": _summary(per_avatar, held_out),
        "judge_on_real_faces": judge_ceiling(mead_dir, judge),
        "per_avatar": per_avatar,
    }
    if png is not None:
        plot_expressions(stills, references[held_out[0]], held_out[0], png)
    return result


def plot_expressions(
    stills: dict[str, dict[str, np.ndarray]],
    reference: dict[str, np.ndarray],
    identity: str,
    png: Path,
) -> None:
    """A grid: one row per avatar of its face at one moment of speech for each emotion,
    and a last row of the reference displacements as bars."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    emotions = [e for e in EMOTIONS if all(e in s for s in stills.values())]
    rows = len(stills) + 1
    figure, axes = plt.subplots(
        rows, len(emotions), figsize=(1.8 * len(emotions), 2.0 * rows), squeeze=False
    )
    for r, (name, faces) in enumerate(stills.items()):
        for c, emotion in enumerate(emotions):
            axes[r, c].imshow(faces[emotion])
            axes[r, c].set_xticks([])
            axes[r, c].set_yticks([])
            if r == 0:
                axes[r, c].set_title(emotion, fontsize=9)
            if c == 0:
                axes[r, c].set_ylabel(name, fontsize=9)
    limit = max(float(np.abs(v).max()) for v in reference.values()) or 1.0
    for c, emotion in enumerate(emotions):
        ax = axes[-1, c]
        ax.barh(range(len(FEATURES)), reference[emotion], color="tab:purple")
        ax.set_xlim(-limit, limit)
        ax.set_yticks(range(len(FEATURES)))
        ax.set_yticklabels(FEATURES if c == 0 else [], fontsize=6)
        ax.tick_params(axis="x", labelsize=6)
        ax.axvline(0, color="grey", linewidth=0.5)
        ax.invert_yaxis()
    axes[-1, 0].set_ylabel(f"{identity}\n(IOD)", fontsize=8)
    figure.tight_layout()
    png.parent.mkdir(parents=True, exist_ok=True)
    figure.savefig(png, dpi=110)
    plt.close(figure)
