"""Bind strings: every accepted form, every rejection, and systemd's environment."""

from __future__ import annotations

import pytest

from corral.sockets import (
    DEFAULT_PORT,
    BindError,
    BindSpec,
    format_address,
    parse_bind,
    take_systemd_fds,
)


@pytest.mark.parametrize(
    ("text", "spec"),
    [
        ("127.0.0.1:8080", BindSpec("tcp", host="127.0.0.1", port=8080)),
        ("localhost:0", BindSpec("tcp", host="localhost", port=0)),
        ("Example.COM:80", BindSpec("tcp", host="example.com", port=80)),
        ("127.0.0.1", BindSpec("tcp", host="127.0.0.1", port=DEFAULT_PORT)),
        (":9000", BindSpec("tcp", host="0.0.0.0", port=9000)),
        ("tcp://10.0.0.1:81", BindSpec("tcp", host="10.0.0.1", port=81)),
        ("  127.0.0.1:1 ", BindSpec("tcp", host="127.0.0.1", port=1)),
        ("[::1]:8080", BindSpec("tcp", host="::1", port=8080)),
        ("[::]:0", BindSpec("tcp", host="::", port=0)),
        ("[fe80::1]", BindSpec("tcp", host="fe80::1", port=DEFAULT_PORT)),
        ("unix:/run/app.sock", BindSpec("unix", path="/run/app.sock")),
        ("unix:///run/app.sock", BindSpec("unix", path="/run/app.sock")),
        ("unix:rel/app.sock", BindSpec("unix", path="rel/app.sock")),
        ("unix:/run/app.sock?mode=660", BindSpec("unix", path="/run/app.sock", mode=0o660)),
        ("unix:/run/a.sock?mode=0600", BindSpec("unix", path="/run/a.sock", mode=0o600)),
        ("unix:/run/a.sock?mode=0o777", BindSpec("unix", path="/run/a.sock", mode=0o777)),
        ("unix:/tmp/a:660", BindSpec("unix", path="/tmp/a:660")),
        ("unix:@corral", BindSpec("unix", path="@corral")),
        ("fd://3", BindSpec("fd", fd=3)),
        ("fd://0", BindSpec("fd", fd=0)),
    ],
)
def test_accepted(text: str, spec: BindSpec) -> None:
    assert parse_bind(text) == spec


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("", "empty"),
        ("::1:8000", "brackets"),
        ("[::1", r"\[IPV6\]:PORT"),
        ("[::1]8000", r"\[IPV6\]:PORT"),
        ("[nope]:80", "not an IPv6 address"),
        ("[127.0.0.1]:80", "not an IPv6 address"),
        ("127.0.0.1:http", "port"),
        ("127.0.0.1:65536", "port"),
        ("127.0.0.1:-1", "port"),
        ("127.0.0.1:", "port"),
        ("127.0.0.1:٣", "port"),
        ("user@host:80", "not a host"),
        ("ho st:80", "not a host"),
        ("unix:", "needs a path"),
        ("unix:?mode=600", "needs a path"),
        ("unix:/a.sock?mode=8", "not octal"),
        ("unix:/a.sock?mode=", "not octal"),
        ("unix:/a.sock?mode=1000", "outside"),
        ("unix:/a.sock?owner=x", "only unix socket option"),
        ("unix:@abstract?mode=600", "abstract"),
        ("fd://", "file descriptor"),
        ("fd://x", "file descriptor"),
        ("fd://-1", "file descriptor"),
    ],
)
def test_rejected(text: str, message: str) -> None:
    with pytest.raises(BindError, match=message):
        parse_bind(text)


@pytest.mark.parametrize(
    "text",
    ["127.0.0.1:80", "[::1]:80", "unix:/a.sock", "unix:/a.sock?mode=640", "unix:@x", "fd://7"],
)
def test_str_round_trips(text: str) -> None:
    spec = parse_bind(text)
    assert str(spec) == text
    assert parse_bind(str(spec)) == spec


def test_format_address() -> None:
    import socket

    assert format_address(socket.AF_INET, ("127.0.0.1", 5)) == "http://127.0.0.1:5"
    assert format_address(socket.AF_INET6, ("::1", 5, 0, 0)) == "http://[::1]:5"
    assert format_address(socket.AF_UNIX, "/run/a.sock") == "unix:/run/a.sock"
    assert format_address(socket.AF_UNIX, b"\0name") == "unix:@name"


class TestSystemdEnv:
    def test_matching_pid_gives_fds_from_3_and_unsets(self) -> None:
        env = {"LISTEN_FDS": "2", "LISTEN_PID": "77", "LISTEN_FDNAMES": "a:b", "OTHER": "x"}
        assert take_systemd_fds(env, 77) == [3, 4]
        assert env == {"OTHER": "x"}

    def test_other_pid_gives_nothing_but_still_unsets(self) -> None:
        env = {"LISTEN_FDS": "1", "LISTEN_PID": "78"}
        assert take_systemd_fds(env, 77) == []
        assert env == {}

    def test_missing_pid_gives_nothing(self) -> None:
        env = {"LISTEN_FDS": "1"}
        assert take_systemd_fds(env, 77) == []
        assert env == {}

    def test_absent_gives_nothing(self) -> None:
        env = {"PATH": "/bin"}
        assert take_systemd_fds(env, 77) == []
        assert env == {"PATH": "/bin"}

    def test_zero_fds(self) -> None:
        assert take_systemd_fds({"LISTEN_FDS": "0", "LISTEN_PID": "77"}, 77) == []

    def test_garbage_is_an_error(self) -> None:
        with pytest.raises(BindError, match="not numbers"):
            take_systemd_fds({"LISTEN_FDS": "two", "LISTEN_PID": "77"}, 77)
