import argparse

import pytest

from server.arguments import ice_server, in_range, port, turn_problem, whole_between
from server.cli import main


def test_ice_servers_are_checked_when_given_not_at_the_first_offer():
    assert ice_server("stun:stun.l.google.com:19302") == "stun:stun.l.google.com:19302"
    assert ice_server("turn:turn.example:3478?transport=tcp")
    with pytest.raises(argparse.ArgumentTypeError, match="expected stun:HOST"):
        ice_server("stun.l.google.com:19302")  # no scheme: aiortc would fail every offer


@pytest.mark.parametrize(
    ("parse", "good", "bad"),
    [
        (port, ["1", "8080", "65535"], ["0", "70000", "-1", "http"]),
        (whole_between(0, 28), ["0", "12", "28"], ["29", "-1", "4.5"]),
        (in_range(1, 3600, "seconds"), ["1", "10.5", "3600"], ["nan", "0", "inf", "x"]),
    ],
)
def test_numbers_outside_their_range_are_refused_with_the_range(parse, good, bad):
    for text in good:
        parse(text)
    for text in bad:
        with pytest.raises(argparse.ArgumentTypeError, match="expected"):
            parse(text)


def test_serve_refuses_bad_flags_before_loading_anything(capsys):
    for flags in (["--media-timeout", "nan"], ["--max-viewers", "-1"], ["--port", "70000"]):
        with pytest.raises(SystemExit) as exited:
            main(["serve", *flags])
        assert exited.value.code == 2
        assert f"argument {flags[0]}: expected" in capsys.readouterr().err


def test_turn_needs_its_credentials_and_carries_them_to_every_connection():
    from server.session_connections import ice_servers
    from server.settings import ServerSettings

    stun, turn = "stun:stun.example:3478", "turn:turn.example:3478?transport=udp"
    assert turn_problem([stun], None, None) is None
    assert "needs --ice-username and --ice-credential" in turn_problem([turn], "u", None)
    assert "for a TURN server" in turn_problem([stun], "u", "p")
    assert turn_problem([stun, turn], "u", "p") is None
    settings = ServerSettings(ice_servers=(stun, turn), ice_username="u", ice_credential="p")
    servers = ice_servers(settings)
    assert [(s.urls, s.username, s.credential) for s in servers] == [
        (stun, None, None),
        (turn, "u", "p"),
    ]


def test_serve_refuses_turn_without_credentials_before_loading_anything(capsys):
    assert main(["serve", "--ice-server", "turn:turn.example:3478"]) == 2
    assert "needs --ice-username and --ice-credential" in capsys.readouterr().err
