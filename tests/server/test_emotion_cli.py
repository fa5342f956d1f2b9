"""``evp emotion`` against a live session, run as the command streamers' scripts run."""

import asyncio
import json
import re
import sys

import numpy as np
import pytest

from engine.constants import SAMPLE_RATE
from server.bench.client import Peer, WavMicrophone
from server.control import ControlError
from server.emotion_cli import command_message, control_url


async def evp(*args: str) -> tuple[int, str, str]:
    process = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "server.cli", *args,
        stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE,
    )  # fmt: skip
    out, err = await asyncio.wait_for(process.communicate(), 30)
    return process.returncode, out.decode(), err.decode()


async def test_a_script_sets_blends_and_flushes_a_live_session(server):
    peer = Peer(server.url, WavMicrophone(np.zeros(SAMPLE_RATE * 20, np.float32), SAMPLE_RATE))
    await peer.talk()
    # ids and tokens are hex: a leading '-' would read as an option to argparse and shells
    assert re.fullmatch("[0-9a-f]+", peer.session_id) and re.fullmatch("[0-9a-f]+", peer.token)
    session = ["--url", server.url, "--session", peer.session_id, "--token", peer.token]
    try:
        code, out, err = await evp("emotion", *session, "happy:0.7", "--transition-ms", "500")
        assert code == 0, err
        state = json.loads(out)["emotion"]
        assert (state["emotion"], state["intensity"], state["transition_ms"]) == ("happy", 0.7, 500)
        assert server.evp.sessions[peer.session_id].emotion.emotion == "happy"
        code, out, _ = await evp("emotion", *session, "--blend", "sad:happy:0.25")
        assert code == 0 and json.loads(out)["emotion"]["alpha"] == 0.25
        assert (await evp("emotion", *session, "auto"))[0] == 0
        assert server.evp.sessions[peer.session_id].emotion.mode == "auto"
        assert (await evp("emotion", *session, "flush"))[0] == 0

        code, _, err = await evp("emotion", *session[:4], "--token", "wrong", "sad")
        assert code == 2 and "403 (wrong token or origin)" in err
        code, _, err = await evp("emotion", *session[:2], "--session", "nope", "--token", "x")
        assert code == 2 and "404 (no such session)" in err
    finally:
        await peer.close()
    code, _, err = await evp("emotion", "--url", "http://127.0.0.1:9", "--session", "s",
                             "--token", "t", "sad")  # fmt: skip
    assert code == 2 and "cannot reach" in err


def test_commands_are_checked_before_connecting():
    assert command_message("happy:0.8", None, 300) == {
        "type": "set_emotion", "emotion": "happy", "intensity": 0.8, "transition_ms": 300,
    }  # fmt: skip
    assert command_message("flush", None, 300) == {"type": "flush"}
    with pytest.raises(ControlError, match="not an emotion"):
        command_message("bored", None, 300)
    with pytest.raises(ControlError, match=r"\[0, 1\]"):
        command_message("happy:2", None, 300)
    with pytest.raises(ControlError, match="FROM:TO:ALPHA"):
        command_message("", "sad:happy", 300)
    assert control_url("https://avatar.example/x/", "S", "a b") == (
        "wss://avatar.example/x/api/sessions/S/control?token=a+b"
    )
