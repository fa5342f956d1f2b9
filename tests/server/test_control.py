import pytest

from server.control import (
    Auto,
    Blend,
    ControlError,
    Flush,
    SetEmotion,
    parse_command,
    parse_emotion_spec,
)


def test_valid_messages_become_commands():
    assert parse_command(
        {"type": "set_emotion", "emotion": "happy", "intensity": 0.8, "transition_ms": 500}
    ) == SetEmotion("happy", 0.8, 500)
    assert parse_command({"type": "blend", "from": "sad", "to": "happy", "alpha": 0.25}) == Blend(
        "sad", "happy", 0.25, 300
    )
    assert parse_command({"type": "auto"}) == Auto()
    assert parse_command({"type": "flush"}) == Flush()
    assert parse_emotion_spec("angry:0.5") == SetEmotion("angry", 0.5)


@pytest.mark.parametrize(
    "message, complaint",
    [
        ([], "JSON object"),
        ({"emotion": "happy"}, "unknown message type None"),
        ({"type": "dance"}, "unknown message type 'dance'"),
        ({"type": ["set_emotion"]}, "unknown message type ['set_emotion']"),
        ({"type": "set_emotion"}, "missing 'emotion'"),
        ({"type": "set_emotion", "emotion": "joyful"}, "'joyful' is not an emotion"),
        (
            {"type": "set_emotion", "emotion": "happy", "intensity": 1.5},
            "intensity must be a number in [0, 1]",
        ),
        ({"type": "set_emotion", "emotion": "happy", "intensity": True}, "intensity must be"),
        ({"type": "set_emotion", "emotion": "happy", "transition_ms": -1}, "transition_ms"),
        ({"type": "blend", "from": "sad", "to": "happy"}, "missing 'alpha'"),
        ({"type": "flush", "now": True}, "unknown field(s) ['now']"),
    ],
)
def test_invalid_messages_say_what_is_wrong(message, complaint):
    with pytest.raises(ControlError) as caught:
        parse_command(message)
    assert complaint in str(caught.value)


def test_bad_emotion_spec():
    with pytest.raises(ControlError, match="must be a number"):
        parse_emotion_spec("happy:lots")
