"""``evp data build``: the versioned training corpus of the model issue.

Output directory::

    manifest.json      version, configuration, "complete": true only when everything is written
    teacher.npz        viseme targets, expression offsets, canonical face used for targets
    shards/*.npz       synthetic-NNNNN: audio, MFCC windows, landmark targets per frame
                       ravdess-NNNNN: MFCC windows, voicing per frame
    shards/*.jsonl     the records of each shard (written after its .npz)
    index.jsonl        every record, in shard order
    pairs.npz, pairs.jsonl   DTW pseudo-pairs: same speaker and sentence, two emotions
    report.json, report.md, trajectories.png

Shards are written atomically and skipped when present, so an interrupted build resumes.
Readers must check ``manifest["complete"]`` (``open_dataset`` does).
"""

import hashlib
import json
import logging
import sys
from collections import Counter
from dataclasses import asdict, dataclass, field
from itertools import combinations
from pathlib import Path

import numpy as np

from engine.audio.frontend import analyse_offline
from engine.audio.mfcc import compute_mfcc, n_video_frames
from engine.constants import EMOTIONS, MOUTH, SAMPLE_RATE
from engine.data.dtw import align_video_frames, dtw
from engine.data.ravdess import load_ravdess
from engine.data.sentences import SENTENCES
from engine.data.splits import speaker_split
from engine.errors import EngineError
from engine.wav import read_wav

logger = logging.getLogger(__name__)

DATASET_VERSION = 1
SHARED = Path(__file__).resolve().parents[2] / ".." / "shared" / "data"


@dataclass(frozen=True)
class BuildConfig:
    sentences: int = 40
    voices: int = 3
    intensities: tuple[float, ...] = (0.5, 1.0)
    seed: int = 0
    shard_size: int = 64
    ravdess: str | None = str(SHARED / "ravdess")
    clips: str = str(SHARED / "talking")
    mead: str = str(SHARED / "mead")
    ravdess_pairs_per_sentence: int = 21  # emotion pairs per (speaker, sentence)

    def key(self) -> str:
        return hashlib.sha256(json.dumps(asdict(self), sort_keys=True).encode()).hexdigest()[:16]


@dataclass
class Progress:
    """Progress on stderr: one rewritten line on a terminal, a line per 10 % in logs."""

    label: str
    total: int
    done: int = field(default=0)

    def step(self, count: int = 1) -> None:
        before, self.done = self.done, self.done + count
        if sys.stderr.isatty():
            end = "\n" if self.done >= self.total else ""
            print(f"\r{self.label}: {self.done}/{self.total}", end=end, file=sys.stderr, flush=True)
        elif self.done >= self.total or self.done * 10 // self.total > before * 10 // self.total:
            print(f"{self.label}: {self.done}/{self.total}", file=sys.stderr, flush=True)


def synthetic_plan(config: BuildConfig) -> list[dict]:
    """Every synthetic utterance to make, in a fixed order (deterministic under the seed)."""
    from engine.speech.emotional import VOICES

    if not 1 <= config.sentences <= len(SENTENCES) or not 1 <= config.voices <= len(VOICES):
        raise EngineError(f"sentences must be 1..{len(SENTENCES)} and voices 1..{len(VOICES)}")
    plan: list[dict] = []
    for s, text in enumerate(SENTENCES[: config.sentences]):
        for voice in VOICES[: config.voices]:
            for emotion in EMOTIONS:
                for intensity in (0.0,) if emotion == "neutral" else config.intensities:
                    plan.append(
                        {
                            "id": f"syn-{len(plan):06d}",
                            "kind": "synthetic",
                            "text": text,
                            "sentence": f"syn-s{s:02d}",
                            "speaker": f"espeak-{voice}",
                            "voice": voice,
                            "emotion": emotion,
                            "intensity": intensity,
                            "seed": config.seed * 1_000_003 + len(plan),
                        }
                    )
    return plan


def _write_shard(path: Path, arrays: dict, records: list[dict]) -> None:
    tmp = path.with_name(path.name + ".partial.npz")
    np.savez_compressed(tmp, **arrays)
    tmp.replace(path)
    sidecar = path.with_suffix(".jsonl")
    tmp_records = sidecar.with_name(sidecar.name + ".partial")
    tmp_records.write_text("".join(json.dumps(r) + "\n" for r in records))
    tmp_records.replace(sidecar)


def _shard_done(path: Path) -> bool:
    return path.is_file() and path.with_suffix(".jsonl").is_file()


class Teacher:
    """Landmark targets for synthetic speech: visemes + expression offsets on a canonical face."""

    def __init__(self, config: BuildConfig, out: Path) -> None:
        # Heavy optional packages (mediapipe, pocketsphinx) load only when building.
        from engine.data.clips import load_clips
        from engine.speech.align import PhoneAligner
        from engine.targets.expressions import estimate_offsets
        from engine.targets.teacher import evaluate, prepare_clip
        from engine.targets.visemes import VisemeModel

        clips, _ = load_clips(Path(config.clips))
        aligner = PhoneAligner()
        prepared = [prepare_clip(c.path, aligner) for c in clips]
        self.visemes = VisemeModel.fit([(c.phones, c.times, c.mouth - c.rest) for c in prepared])
        self.error = {k: v for k, v in evaluate(prepared).items() if k != "per_clip"}
        self.offsets = estimate_offsets(Path(config.mead))
        self.canonical = np.mean([c.face for c in prepared], axis=0)  # (68, 2)
        # The canonical face rests with its mouth closed: the mean of the clips' rest mouths.
        self.canonical[MOUTH.start : MOUTH.stop] = np.mean([c.rest for c in prepared], axis=0)
        np.savez(
            out / "teacher.npz",
            visemes=self.visemes.targets,
            offsets=self.offsets.offsets,
            canonical=self.canonical,
        )

    def targets(self, phones, frames: int, emotion: str, intensity: float) -> np.ndarray:
        """(frames, 68, 2) frontal landmarks for an utterance."""
        from engine.targets.visemes import frame_times

        face = np.repeat(self.canonical[None], frames, axis=0)
        rest = self.canonical[MOUTH.start : MOUTH.stop]
        face[:, MOUTH.start : MOUTH.stop] = self.visemes.mouth(phones, frame_times(frames), rest)
        return self.offsets.apply(face, emotion, intensity).astype(np.float32)


def build_synthetic(config: BuildConfig, out: Path, teacher: Teacher) -> list[dict]:
    from engine.speech.emotional import synthesize
    from engine.speech.espeak import Espeak

    plan = synthetic_plan(config)
    espeak = None
    progress = Progress("synthetic speech", len(plan))
    records: list[dict] = []
    for start in range(0, len(plan), config.shard_size):
        path = out / "shards" / f"synthetic-{start // config.shard_size:05d}.npz"
        items = plan[start : start + config.shard_size]
        if _shard_done(path):
            records += [
                json.loads(line) for line in path.with_suffix(".jsonl").read_text().splitlines()
            ]
            progress.step(len(items))
            continue
        espeak = espeak or Espeak()
        audio: list[np.ndarray] = []
        mfcc: list[np.ndarray] = []
        targets: list[np.ndarray] = []
        shard_records: list[dict] = []
        for item in items:
            take = synthesize(
                espeak,
                item["text"],
                item["emotion"],
                item["intensity"],
                item["voice"],
                np.random.default_rng(item["seed"]),
            )
            windows, _, _voiced = analyse_offline(take.audio)
            frames = len(windows)
            shard_records.append(
                item
                | {
                    "shard": path.name,
                    "frame_offset": sum(len(m) for m in mfcc),
                    "frames": frames,
                    "audio_offset": sum(a.size for a in audio),
                    "samples": int(take.audio.size),
                    "seconds": round(take.seconds, 3),
                    "split": "train",
                    "prosody": asdict(take.prosody),
                    "phones": [[p.symbol, round(p.start, 4), round(p.end, 4)] for p in take.phones],
                }
            )
            audio.append((np.clip(take.audio, -1, 1) * 32767).astype(np.int16))
            mfcc.append(windows)
            targets.append(teacher.targets(take.phones, frames, item["emotion"], item["intensity"]))
            progress.step()
        _write_shard(
            path,
            {
                "audio": np.concatenate(audio),
                "mfcc": np.concatenate(mfcc),
                "targets": np.concatenate(targets),
            },
            shard_records,
        )
        records += shard_records
    return records


def build_ravdess(config: BuildConfig, out: Path) -> tuple[list[dict], list[tuple[str, str]]]:
    assert config.ravdess is not None  # build() calls this only with a RAVDESS folder
    result = load_ravdess(Path(config.ravdess))
    split = speaker_split([r.speaker for r in result.records], seed=config.seed)
    progress = Progress("RAVDESS features", len(result.records))
    records: list[dict] = []
    for start in range(0, len(result.records), config.shard_size):
        path = out / "shards" / f"ravdess-{start // config.shard_size:05d}.npz"
        chunk = result.records[start : start + config.shard_size]
        if _shard_done(path):
            records += [
                json.loads(line) for line in path.with_suffix(".jsonl").read_text().splitlines()
            ]
            progress.step(len(chunk))
            continue
        mfcc: list[np.ndarray] = []
        voiced_all: list[np.ndarray] = []
        shard_records: list[dict] = []
        for record in chunk:
            audio = read_wav(record.path, SAMPLE_RATE)
            windows, _, voiced = analyse_offline(audio)
            shard_records.append(
                {
                    "id": f"rav-{record.path.stem}",
                    "kind": "ravdess",
                    "path": str(record.path),
                    "text": record.text,
                    "sentence": record.sentence,
                    "speaker": record.speaker,
                    "emotion": record.emotion,
                    "original_label": record.original_label,
                    "intensity": record.intensity,
                    "split": split[record.speaker],
                    "shard": path.name,
                    "frame_offset": sum(len(m) for m in mfcc),
                    "frames": len(windows),
                    "seconds": round(audio.size / SAMPLE_RATE, 3),
                }
            )
            mfcc.append(windows)
            voiced_all.append(voiced)
            progress.step()
        _write_shard(
            path,
            {"mfcc": np.concatenate(mfcc), "voiced": np.concatenate(voiced_all)},
            shard_records,
        )
        records += shard_records
    return records, [(str(p), reason) for p, reason in result.skipped]


def build_pairs(config: BuildConfig, out: Path, records: list[dict]) -> int:
    """DTW pseudo-pairs between takes of one sentence by one speaker in two emotions."""
    if (out / "pairs.npz").is_file() and (out / "pairs.jsonl").is_file():
        return len((out / "pairs.jsonl").read_text().splitlines())
    groups: dict[tuple[str, str], list[dict]] = {}
    for r in records:  # any two takes of one sentence by one speaker in different emotions
        groups.setdefault((r["speaker"], r["sentence"]), []).append(r)
    rng = np.random.default_rng(config.seed)
    pairs: list[dict] = []
    maps: list[np.ndarray] = []
    jobs = []
    for members in groups.values():
        candidates = [(a, b) for a, b in combinations(members, 2) if a["emotion"] != b["emotion"]]
        order = rng.permutation(len(candidates))[: config.ravdess_pairs_per_sentence]
        jobs += [candidates[i] for i in sorted(order)]
    progress = Progress("DTW pairs", len(jobs))
    for a, b in jobs:
        sa, sb = read_wav(a["path"], SAMPLE_RATE), read_wav(b["path"], SAMPLE_RATE)
        ma, mb = compute_mfcc(sa), compute_mfcc(sb)
        path, cost = dtw(ma, mb)
        frame_map = align_video_frames(path, len(ma), n_video_frames(sa.size))
        pairs.append(
            {
                "a": a["id"],
                "b": b["id"],
                "offset": sum(len(m) for m in maps),
                "frames": len(frame_map),
                "cost_per_step": round(cost / len(path), 3),
                "emotions": [a["emotion"], b["emotion"]],
            }
        )
        maps.append(frame_map)
        progress.step()
    tmp = out / "pairs.partial.npz"
    np.savez_compressed(tmp, frame_map=np.concatenate(maps) if maps else np.zeros(0, np.int64))
    tmp.replace(out / "pairs.npz")
    (out / "pairs.jsonl.partial").write_text("".join(json.dumps(p) + "\n" for p in pairs))
    (out / "pairs.jsonl.partial").replace(out / "pairs.jsonl")
    return len(pairs)


def build(config: BuildConfig, out: Path) -> dict:
    """Build (or resume) the data set in ``out``; returns the report."""
    inputs = [("--ravdess", config.ravdess), ("--clips", config.clips), ("--mead", config.mead)]
    missing = [f"{flag} {path}" for flag, path in inputs if path and not Path(path).is_dir()]
    if missing:  # before anything is synthesised or written
        raise EngineError(
            f"no such folder: {', '.join(missing)}; point it at the data "
            "(../shared/data by default), or leave RAVDESS out with --no-ravdess"
        )
    out.mkdir(parents=True, exist_ok=True)
    (out / "shards").mkdir(exist_ok=True)
    manifest_path = out / "manifest.json"
    if manifest_path.is_file():
        existing = json.loads(manifest_path.read_text())
        if existing.get("config_key") != config.key():
            raise EngineError(f"{out} holds a build with another configuration; choose a new --out")
    manifest = {
        "format": "evp-corpus",
        "version": DATASET_VERSION,
        "config": asdict(config),
        "config_key": config.key(),
        "complete": False,
    }
    _write_json(manifest_path, manifest)

    teacher = Teacher(config, out)
    records = build_synthetic(config, out, teacher)
    skipped: list[tuple[str, str]] = []
    pairs = 0
    if config.ravdess:
        ravdess, skipped = build_ravdess(config, out)
        records += ravdess
        pairs = build_pairs(config, out, ravdess)
    (out / "index.jsonl.partial").write_text("".join(json.dumps(r) + "\n" for r in records))
    (out / "index.jsonl.partial").replace(out / "index.jsonl")
    report = make_report(records, skipped, pairs, teacher.error)
    _write_json(out / "report.json", report)
    (out / "report.md").write_text(report_markdown(report))
    plot_trajectories(out, records)
    _write_json(manifest_path, manifest | {"complete": True, "records": len(records)})
    return report


def _write_json(path: Path, data: dict) -> None:
    tmp = path.with_name(path.name + ".partial")
    tmp.write_text(json.dumps(data, indent=2) + "\n")
    tmp.replace(path)


def make_report(records: list[dict], skipped, pairs: int, teacher_error: dict) -> dict:
    by_kind = Counter(r["kind"] for r in records)
    report = {
        "records": len(records),
        "by_kind": dict(by_kind),
        "pairs": pairs,
        "skipped": {"count": len(skipped), "examples": skipped[:10]},
        "teacher_error": teacher_error,
    }
    for kind in by_kind:
        mine = [r for r in records if r["kind"] == kind]
        report[kind] = {
            "hours": round(sum(r["seconds"] for r in mine) / 3600, 3),
            "emotions": dict(Counter(r["emotion"] for r in mine)),
            "sentences": len({r["sentence"] for r in mine}),
            "speakers": dict(Counter(r["speaker"] for r in mine)),
            "splits": dict(Counter(r["split"] for r in mine)),
        }
    return report


def report_markdown(report: dict) -> str:
    lines = [
        "# Corpus report",
        "",
        f"Records: {report['records']}; DTW pairs: {report['pairs']}; skipped files: {report['skipped']['count']}.",
        "",
    ]
    for kind in report["by_kind"]:
        part = report[kind]
        lines += (
            [
                f"## {kind}",
                "",
                f"{part['hours']} h, {part['sentences']} sentences, {len(part['speakers'])} speakers, splits {part['splits']}",
                "",
                "| emotion | utterances |",
                "|---|---|",
            ]
            + [f"| {e} | {part['emotions'].get(e, 0)} |" for e in EMOTIONS]
            + [""]
        )
    error = report["teacher_error"]
    lines += [
        "## Teacher error (leave-one-clip-out on real clips, % of inter-ocular distance)",
        "",
        "| | M-LD | M-LVD |",
        "|---|---|---|",
        f"| viseme targets | {error['viseme']['M-LD']} | {error['viseme']['M-LVD']} |",
        f"| mouth held closed | {error['closed']['M-LD']} | {error['closed']['M-LVD']} |",
        f"| mouth held at the clip's mean (oracle) | {error['mean']['M-LD']} | {error['mean']['M-LVD']} |",
        "",
        f"Correlation of predicted and tracked mouth opening: {error['opening_correlation_mean']}.",
        "",
    ]
    return "\n".join(lines)


def plot_trajectories(out: Path, records: list[dict]) -> None:
    """Mouth opening and brow height over time for one sentence in every emotion."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    synthetic = [r for r in records if r["kind"] == "synthetic"]
    if not synthetic:
        return
    first = synthetic[0]
    chosen = [
        r
        for r in synthetic
        if r["sentence"] == first["sentence"]
        and r["voice"] == first["voice"]
        and r["intensity"] in (0.0, max(x["intensity"] for x in synthetic))
    ]
    figure, (mouth_axis, brow_axis) = plt.subplots(2, 1, figsize=(9, 6), sharex=True)
    for r in chosen:
        with np.load(out / "shards" / r["shard"]) as shard:
            targets = shard["targets"][r["frame_offset"] : r["frame_offset"] + r["frames"]]
        t = np.arange(len(targets)) / 25
        mouth_axis.plot(t, 100 * (targets[:, 66, 1] - targets[:, 62, 1]), label=r["emotion"])
        brow_axis.plot(
            t,
            100 * (targets[:, 36:48, 1].mean(1) - targets[:, 17:27, 1].mean(1)),
            label=r["emotion"],
        )
    mouth_axis.set_ylabel("inner-lip opening, % IOD")
    brow_axis.set_ylabel("brow height over eyes, % IOD")
    brow_axis.set_xlabel("seconds")
    mouth_axis.set_title(f'Landmark targets: "{first["text"]}" ({first["voice"]})')
    mouth_axis.legend(ncol=4, fontsize=8)
    figure.tight_layout()
    figure.savefig(out / "trajectories.png", dpi=100)
    plt.close(figure)


def open_dataset(directory: Path) -> tuple[dict, list[dict]]:
    """(manifest, records) of a finished build; refuses incomplete or foreign folders."""
    manifest_path = directory / "manifest.json"
    if not manifest_path.is_file():
        raise EngineError(f"{directory} is not a corpus built by `evp data build`")
    manifest = json.loads(manifest_path.read_text())
    if manifest.get("format") != "evp-corpus" or manifest.get("version") != DATASET_VERSION:
        raise EngineError(
            f"{directory}: unsupported corpus format {manifest.get('format')} v{manifest.get('version')}"
        )
    if not manifest.get("complete"):
        raise EngineError(
            f"{directory}: the build did not finish; run `evp data build` again to resume it"
        )
    records = [json.loads(line) for line in (directory / "index.jsonl").read_text().splitlines()]
    return manifest, records
