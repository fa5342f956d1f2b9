"""``evp render AUDIO -o OUT.mp4``: check the avatar offline, through the live pipeline."""

import argparse
import json
from pathlib import Path

from engine.emotion_state import EmotionState
from engine.errors import EngineError
from engine.runtime.backends import BACKENDS


def parse_emotion(text: str) -> EmotionState:
    """``NAME`` or ``NAME:INTENSITY`` (0..1), or ``auto`` for the voice's own emotion."""
    if text == "auto":
        return EmotionState(mode="auto", transition_ms=0)
    name, _, intensity = text.partition(":")
    return EmotionState(
        emotion=name, intensity=_unit(intensity or "1", "INTENSITY"), transition_ms=0
    )


def parse_blend(text: str) -> EmotionState:
    """``FROM:TO:ALPHA``: alpha * TO + (1 - alpha) * FROM."""
    parts = text.split(":")
    if len(parts) != 3:
        raise EngineError(f"--blend wants FROM:TO:ALPHA, e.g. neutral:happy:0.5; got {text!r}")
    return EmotionState(
        mode="blend",
        blend_from=parts[0],
        blend_to=parts[1],
        alpha=_unit(parts[2], "ALPHA"),
        transition_ms=0,
    )


def _unit(text: str, what: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise EngineError(f"{what} must be a number in [0, 1], got {text!r}") from None
    if not 0.0 <= value <= 1.0:
        raise EngineError(f"{what} must be in [0, 1], got {value}")
    return value


def _render(args: argparse.Namespace) -> int:
    from engine.avatar.bundle import AvatarLibrary
    from engine.pipeline.portrait import PortraitEngine
    from engine.pipeline.render_video import EmotionChoice, render_video

    if args.blend:
        choice = EmotionChoice(parse_blend(args.blend))
    elif args.emotion_audio:
        choice = EmotionChoice(audio=args.emotion_audio)
    else:
        choice = EmotionChoice(parse_emotion(args.emotion))
    avatar = AvatarLibrary(args.avatars).get(args.avatar)
    engine = PortraitEngine.load(args.backend)
    result = render_video(args.audio, args.out, engine, avatar, choice, args.landmarks_out)
    print(json.dumps(result, indent=2))
    return 0


def add_render_command(commands: argparse._SubParsersAction) -> None:
    from engine.avatar.bundle import DEFAULT_AVATARS

    parser = commands.add_parser(
        "render",
        help="render a speech file as the avatar speaking it (MP4 with the audio)",
        description="Runs the live server's pipeline offline. The emotion follows the voice "
        "unless --emotion, --blend or --emotion-audio says otherwise.",
    )
    parser.add_argument("audio", type=Path, help="speech: any audio or video file FFmpeg reads")
    parser.add_argument("-o", "--out", type=Path, required=True, help="the video, .mp4")
    parser.add_argument("--avatar", default="default")
    parser.add_argument("--avatars", type=Path, default=DEFAULT_AVATARS)
    parser.add_argument("--backend", default="auto", choices=BACKENDS)
    choice = parser.add_mutually_exclusive_group()
    choice.add_argument(
        "--emotion",
        default="auto",
        metavar="NAME[:INTENSITY]",
        help="e.g. happy or happy:0.6; auto (default) follows the voice",
    )
    choice.add_argument(
        "--blend",
        metavar="FROM:TO:ALPHA",
        help="alpha * TO + (1 - alpha) * FROM, e.g. sad:happy:0.3",
    )
    choice.add_argument(
        "--emotion-audio", type=Path, metavar="FILE", help="take the emotion from another clip"
    )
    parser.add_argument(
        "--landmarks-out", type=Path, help="also save the frontal landmarks, (T, 68, 2) .npy"
    )
    parser.set_defaults(handler=_render)
