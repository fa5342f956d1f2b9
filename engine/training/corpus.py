"""The corpus of `evp data build`, loaded for training: one ``Item`` per utterance.

Per-hop MFCC and prosody (engine.audio.prosody) are computed once from the audio and
cached in the corpus folder under ``derived/``; windows for any look-ahead are cut from
them exactly as the front-end cuts them. RAVDESS utterances
get phone timings by forced alignment with their known text (cached in the corpus folder
under ``derived/``) and from those the same landmark targets as the synthetic speech.
"""

import json
import logging
from collections import namedtuple
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from engine.audio.mfcc import WindowSpec, video_frame_windows
from engine.audio.prosody import compute_hop_features, speech_span
from engine.constants import EMOTIONS, MFCC_HOPS_PER_VIDEO_FRAME, MFCC_N_COEFFS, MOUTH, SAMPLE_RATE
from engine.data.build import open_dataset
from engine.errors import EngineError
from engine.model.emotion_space import MIN_CLIP_HOPS
from engine.targets.expressions import ExpressionOffsets
from engine.targets.visemes import VISEMES, VisemeModel, dominance_weights, frame_times
from engine.wav import read_wav

logger = logging.getLogger(__name__)

HOP_FEATURES_VERSION = 1  # bump when engine.audio.prosody or the MFCC definition changes
EspeakPhone = namedtuple("EspeakPhone", "symbol start end")
ArpabetPhone = namedtuple("ArpabetPhone", "phone start end")


@dataclass
class Item:
    id: str
    kind: str  # "synthetic" | "ravdess"
    speaker: str
    sentence: str
    emotion: int  # index in EMOTIONS
    intensity: float
    split: str
    hops: np.ndarray  # (H, 15) MFCC and prosody per 10 ms hop
    visemes: np.ndarray  # (T,) viseme class per video frame
    targets: np.ndarray  # (T, 68, 2) frontal landmark targets

    @property
    def frames(self) -> int:
        return len(self.visemes)

    @property
    def speech(self) -> np.ndarray:
        """The hops of the utterance without its leading and trailing silence: what the
        emotion encoder is trained and evaluated on (as EmotionSpace.from_audio does)."""
        return self.hops[speech_span(self.hops, MIN_CLIP_HOPS)]


@dataclass
class Corpus:
    items: list[Item]
    pairs: list[tuple[int, int, np.ndarray]]  # (item a, item b, (T_a,) frame of b per frame of a)
    canonical: np.ndarray  # (68, 2) the neutral face the targets were made on

    def select(self, split: str) -> list[int]:
        return [i for i, item in enumerate(self.items) if item.split == split]

    def windows(self, index: int, spec: WindowSpec) -> np.ndarray:
        item = self.items[index]
        return video_frame_windows(item.hops[:, :MFCC_N_COEFFS], item.frames, spec)


def viseme_labels(phones, frames: int) -> np.ndarray:
    return dominance_weights(phones, frame_times(frames)).argmax(axis=1).astype(np.int64)


def _ravdess_phones(directory: Path, records: list[dict]) -> dict[str, list]:
    """Forced alignment of every RAVDESS record with its text, cached in derived/ (saved
    as it goes, so an interrupted run keeps what it aligned)."""
    cache = directory / "derived" / "ravdess-phones.json"
    known = json.loads(cache.read_text()) if cache.is_file() else {}
    missing = [r for r in records if r["id"] not in known]
    if not missing:
        return known
    from engine.speech.align import AlignmentError, PhoneAligner

    aligner = PhoneAligner()
    try:
        for n, r in enumerate(missing, 1):
            audio = read_wav(r["path"], SAMPLE_RATE)
            try:
                segments = aligner.align(audio, r["text"])
            except AlignmentError as e:  # recognised phones: noisier labels, real timings
                logger.warning("%s: %s; using recognised phones", r["id"], e)
                segments = aligner.recognise_phones(audio)
            known[r["id"]] = [[s.phone, s.start, s.end] for s in segments]
            if n % 50 == 0:
                _write_json(cache, known)
    finally:
        _write_json(cache, known)
    return known


def _write_json(path: Path, data: dict) -> None:
    path.parent.mkdir(exist_ok=True)
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data))
    tmp.replace(path)


def _hop_features(directory: Path, records: list[dict]) -> dict[str, np.ndarray]:
    """(H, 15) hop features of every record, computed from its audio once and cached;
    new records are added to the cache, never dropped from it."""
    cache = directory / "derived" / f"hops-v{HOP_FEATURES_VERSION}.npz"
    known: dict[str, np.ndarray] = {}
    if cache.is_file():
        with np.load(cache) as data:
            known = {k: data[k] for k in data.files}
    missing = [r for r in records if r["id"] not in known]
    if not missing:
        return known
    shards: dict[str, np.ndarray] = {}
    for r in missing:
        if r["kind"] == "synthetic":
            if r["shard"] not in shards:
                with np.load(directory / "shards" / r["shard"]) as data:
                    shards = {r["shard"]: data["audio"]}
            pcm = shards[r["shard"]][r["audio_offset"] : r["audio_offset"] + r["samples"]]
            audio = pcm.astype(np.float32) / 32767.0
        else:
            audio = read_wav(r["path"], SAMPLE_RATE)
        known[r["id"]] = compute_hop_features(audio)
    cache.parent.mkdir(exist_ok=True)
    tmp = cache.with_name(cache.name + ".partial.npz")
    np.savez(tmp, **known)
    tmp.replace(cache)
    return known


def load_corpus(directory: Path, kinds: tuple[str, ...] = ("synthetic", "ravdess")) -> Corpus:
    directory = Path(directory)
    _, records = open_dataset(directory)
    with np.load(directory / "teacher.npz") as teacher:
        visemes = VisemeModel(teacher["visemes"])
        offsets = ExpressionOffsets(teacher["offsets"], identities=0)
        canonical = teacher["canonical"].astype(np.float32)
    records = [r for r in records if r["kind"] in kinds]
    aligned = _ravdess_phones(directory, [r for r in records if r["kind"] == "ravdess"])
    features = _hop_features(directory, records)
    shards: dict[str, dict] = {}
    items: list[Item] = []
    for r in records:
        hops = features[r["id"]][: MFCC_HOPS_PER_VIDEO_FRAME * r["frames"] + 1]
        phones: list[EspeakPhone] | list[ArpabetPhone]
        if r["kind"] == "synthetic":
            if r["shard"] not in shards:
                with np.load(directory / "shards" / r["shard"]) as data:
                    shards = {r["shard"]: data["targets"]}
            phones = [EspeakPhone(*p) for p in r["phones"]]
            targets = shards[r["shard"]][r["frame_offset"] : r["frame_offset"] + r["frames"]]
        else:
            phones = [ArpabetPhone(*p) for p in aligned.get(r["id"], [])]
            face = np.repeat(canonical[None], r["frames"], axis=0)
            rest = canonical[MOUTH.start : MOUTH.stop]
            face[:, MOUTH.start : MOUTH.stop] = visemes.mouth(
                phones, frame_times(r["frames"]), rest
            )
            targets = offsets.apply(face, r["emotion"], r["intensity"]).astype(np.float32)
        items.append(
            Item(
                id=r["id"],
                kind=r["kind"],
                speaker=r["speaker"],
                sentence=r["sentence"],
                emotion=EMOTIONS.index(r["emotion"]),
                intensity=float(r["intensity"]),
                split=r["split"],
                hops=hops.astype(np.float32),
                visemes=viseme_labels(phones, r["frames"]),
                targets=targets.astype(np.float32),
            )
        )
    if not items:
        raise EngineError(f"{directory} holds no {' or '.join(kinds)} utterances")
    by_id = {item.id: i for i, item in enumerate(items)}
    pairs = _ravdess_pairs(directory, by_id) + _synthetic_pairs(records, items, by_id)
    logger.info("corpus: %d utterances, %d pairs", len(items), len(pairs))
    return Corpus(items, pairs, canonical)


def _ravdess_pairs(directory: Path, by_id: dict[str, int]) -> list:
    path = directory / "pairs.jsonl"
    if not path.is_file():
        return []
    frame_map = np.load(directory / "pairs.npz")["frame_map"]
    pairs = []
    for line in path.read_text().splitlines():
        p = json.loads(line)
        if p["a"] in by_id and p["b"] in by_id:
            pairs.append(
                (by_id[p["a"]], by_id[p["b"]], frame_map[p["offset"] : p["offset"] + p["frames"]])
            )
    return pairs


def _synthetic_pairs(records: list[dict], items: list[Item], by_id: dict[str, int]) -> list:
    """Synthetic takes of one sentence by one voice in two emotions, aligned exactly by
    their phone boundaries (same phone sequence, different timing)."""
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r["kind"] == "synthetic":
            groups.setdefault((r["speaker"], r["sentence"]), []).append(r)
    pairs = []
    for members in groups.values():
        neutral = [r for r in members if r["emotion"] == "neutral"]
        for a in neutral:  # neutral against every emotional take: both directions
            for b in members:
                if b["emotion"] == "neutral" or [p[0] for p in a["phones"]] != [
                    p[0] for p in b["phones"]
                ]:
                    continue
                ia, ib = by_id[a["id"]], by_id[b["id"]]
                pairs.append(
                    (
                        ia,
                        ib,
                        _phone_warp(a["phones"], b["phones"], items[ia].frames, items[ib].frames),
                    )
                )
                pairs.append(
                    (
                        ib,
                        ia,
                        _phone_warp(b["phones"], a["phones"], items[ib].frames, items[ia].frames),
                    )
                )
    return pairs


def _phone_warp(phones_a, phones_b, frames_a: int, frames_b: int) -> np.ndarray:
    knots_a = np.array([0.0] + [p[2] for p in phones_a])
    knots_b = np.array([0.0] + [p[2] for p in phones_b])
    keep = np.concatenate([[True], np.diff(knots_a) > 0])
    t_b = np.interp(frame_times(frames_a), knots_a[keep], knots_b[keep])
    return np.clip(np.round(t_b * 25 - 0.5), 0, frames_b - 1).astype(np.int64)


N_VISEMES = len(VISEMES)
