"""The arbiter's control socket server in this process: framing, limits, peers, pending replies."""

from __future__ import annotations

import os
import select
import socket
import stat
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from tests.unit.test_control_commands import FakeTarget

from corral.arbiter import control
from corral.arbiter.commands import StackCollection
from corral.arbiter.control import ControlService, ControlSocket, Peer, allowed, bind_socket
from corral.ctl import protocol
from corral.ctl.client import read_message


class Log:
    """The two logger methods the server uses, kept for the asserts."""

    def __init__(self) -> None:
        self.lines: list[str] = []

    def _add(self, text: str, *args: object) -> None:
        self.lines.append(text % args)

    info = warning = debug = exception = _add


@pytest.fixture
def served(tmp_path: Path) -> Iterator[tuple[ControlSocket, str, FakeTarget]]:
    path = str(tmp_path / "c.ctl")
    target = FakeTarget()
    server = ControlSocket(bind_socket(path, 0o600), path, 0o600, target)
    yield server, path, target
    server.close(unlink=True)


def turn(server: ControlSocket, now: float | None = None, wait: float = 0.05) -> None:
    """One turn of the arbiter's loop, as far as the control socket goes."""
    poller = select.poll()
    for fd, events in server.watched().items():
        poller.register(fd, events)
    ready = poller.poll(int(wait * 1000))
    server.ready(ready, time.monotonic() if now is None else now)


def client(path: str) -> socket.socket:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(5)
    sock.connect(path)
    return sock


def ask(
    server: ControlSocket, sock: socket.socket, command: str, rid: int = 1
) -> dict[str, object]:
    sock.sendall(protocol.encode(protocol.request(rid, command)))
    for _ in range(5):
        turn(server)
    return read_message(sock)


def test_requests_on_one_connection_are_answered_in_order(served: tuple) -> None:
    server, path, _ = served
    with client(path) as sock:
        assert ask(server, sock, "show stats") == {
            "id": 1,
            "status": "ok",
            "data": {"pid": 100, "workers_current": 2},
        }
        assert ask(server, sock, "worker add 2", 2)["data"] == {
            "added": 2,
            "previous": 2,
            "total": 4,
        }
        # Pipelined: both sent before the server looks.
        sock.sendall(
            protocol.encode(protocol.request(3, "help"))
            + protocol.encode(protocol.request(4, "bogus"))
        )
        for _ in range(5):
            turn(server)
        decoder = protocol.Decoder(protocol.MAX_REPLY)
        assert read_message(sock, decoder)["id"] == 3
        assert read_message(sock, decoder) == {
            "id": 4,
            "status": "error",
            "error": "Invalid argument: Unknown command: bogus",
        }


def test_errors_have_gunicorns_texts(served: tuple) -> None:
    server, path, _ = served
    with client(path) as sock:
        assert ask(server, sock, "   ")["error"] == "Empty command"
        assert ask(server, sock, "worker kill x")["error"].startswith(
            "Invalid argument: invalid literal"
        )
        assert ask(server, sock, "dump")["error"] == "dump is not available yet"


def test_a_message_over_the_limit_is_refused_unread_and_the_connection_closed(
    served: tuple,
) -> None:
    server, path, _ = served
    with client(path) as sock:
        sock.sendall(protocol.HEADER.pack(control.MAX_REQUEST + 1) + b"{")
        for _ in range(3):
            turn(server)
        reply = read_message(sock)
        assert reply["status"] == "error" and "message too large" in str(reply["error"])
        assert sock.recv(10) == b""  # closed


def test_bad_json_is_an_error_then_a_close(served: tuple) -> None:
    server, path, _ = served
    with client(path) as sock:
        sock.sendall(protocol.HEADER.pack(5) + b"{nope")
        for _ in range(3):
            turn(server)
        assert "invalid JSON" in str(read_message(sock)["error"])
        assert sock.recv(10) == b""


def test_clients_are_bounded_and_the_rest_wait_in_the_backlog(served: tuple) -> None:
    server, path, _ = served
    socks = [client(path) for _ in range(control.MAX_CLIENTS)]
    try:
        for _ in range(3):
            turn(server)
        socks += [client(path) for _ in range(3)]
        for _ in range(3):
            turn(server)
        assert len(server._clients) == control.MAX_CLIENTS
        assert server.sock.fileno() not in server.watched()
        socks[0].close()
        for _ in range(3):
            turn(server)
        assert len(server._clients) == control.MAX_CLIENTS  # one more taken from the backlog
        # The last one is served once others leave.
        for sock in socks[1:4]:
            sock.close()
        assert ask(server, socks[-1], "show stats")["status"] == "ok"
    finally:
        for sock in socks:
            sock.close()


def test_idle_and_half_sent_clients_are_dropped(served: tuple) -> None:
    server, path, _ = served
    idle, half = client(path), client(path)
    try:
        half.sendall(protocol.HEADER.pack(50) + b'{"id"')
        for _ in range(3):
            turn(server)
        assert len(server._clients) == 2
        turn(server, now=time.monotonic() + control.IO_TIMEOUT + 1, wait=0)
        assert len(server._clients) == 1  # the half-sent message's deadline is near
        turn(server, now=time.monotonic() + control.IDLE_TIMEOUT + 1, wait=0)
        assert len(server._clients) == 0
        assert half.recv(10) == b"" and idle.recv(10) == b""
    finally:
        idle.close()
        half.close()


def test_a_pending_reply_waits_while_other_clients_are_served(served: tuple) -> None:
    server, path, target = served
    texts: dict[int, str | None] = {101: None}
    target.pending = StackCollection([(101, 1, lambda: texts[101])], time.monotonic() + 60)
    with client(path) as dumping, client(path) as other:
        dumping.sendall(protocol.encode(protocol.request(7, "dump")))
        for _ in range(3):
            turn(server)
        assert ask(server, other, "show stats")["status"] == "ok"
        dumping.setblocking(False)
        with pytest.raises(BlockingIOError):
            dumping.recv(10)
        texts[101] = "stack"
        turn(server, wait=0)
        dumping.setblocking(True)
        assert read_message(dumping) == {
            "id": 7,
            "status": "ok",
            "data": {"workers": [{"pid": 101, "age": 1, "text": "stack"}], "count": 1},
        }


def test_a_refused_peer_gets_one_error_reply_and_a_close(
    served: tuple, monkeypatch: pytest.MonkeyPatch
) -> None:
    server, path, target = served
    log = Log()
    server.log = log  # type: ignore[assignment]
    monkeypatch.setattr(control, "allowed", lambda *args: False)
    with client(path) as sock:
        reply = ask(server, sock, "shutdown")
        assert reply["status"] == "error"
        assert str(reply["error"]).startswith(f"permission denied: uid {os.getuid()} may not")
        assert sock.recv(10) == b""
    assert target.calls == []  # nothing ran
    assert any("control socket: refused pid" in line for line in log.lines)


def test_peer_rule() -> None:
    me, group = 1000, 50
    assert allowed(Peer(1, me, 1), me, group, 0o600)
    assert allowed(Peer(1, 0, 0), me, group, 0o600)  # root
    assert not allowed(Peer(1, 1001, group), me, group, 0o600)
    assert allowed(Peer(1, 1001, group), me, group, 0o660)
    assert allowed(Peer(1, 1001, 7, frozenset({group})), me, group, 0o660)
    assert not allowed(Peer(1, 1001, 7, frozenset({8})), me, group, 0o660)
    assert allowed(Peer(1, 1001, 7), me, group, 0o666)


def test_peer_credentials_are_the_connecting_process(served: tuple) -> None:
    _, path, _ = served
    with client(path) as sock:
        peer = control.peer_of(sock)  # the server's end looks the same from our side
    assert (peer.pid, peer.uid, peer.gid) == (os.getpid(), os.getuid(), os.getgid())


def test_the_socket_file_gets_the_mode_and_replaces_only_a_socket(tmp_path: Path) -> None:
    path = str(tmp_path / "sub" / "c.ctl")
    sock = bind_socket(path, 0o660)
    try:
        assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
        assert stat.S_IMODE(os.stat(tmp_path / "sub").st_mode) == 0o700
        assert control.listening_pid(path) == os.getpid()
    finally:
        sock.close()
    assert control.listening_pid(path) is None  # stale: nobody listens
    bind_socket(path, 0o600).close()  # a stale socket file is replaced
    regular = tmp_path / "file"
    regular.write_text("keep me")
    with pytest.raises(OSError, match="not a socket"):
        bind_socket(str(regular), 0o600)
    assert regular.read_text() == "keep me"


def test_close_unlinks_only_our_own_socket_file(tmp_path: Path) -> None:
    path = str(tmp_path / "c.ctl")
    first = ControlSocket(bind_socket(path, 0o600), path, 0o600, FakeTarget())
    second = ControlSocket(bind_socket(path, 0o600), path, 0o600, FakeTarget())  # took it over
    first.close(unlink=True)
    assert os.path.exists(path) and second.holds_path()
    second.close(unlink=True)
    assert not os.path.exists(path)


def test_the_service_takes_a_path_over_and_says_whose_it_was(tmp_path: Path) -> None:
    path = str(tmp_path / "c.ctl")
    log = Log()
    first = ControlService(path, 0o600, log, FakeTarget())  # type: ignore[arg-type]
    first.open()
    second = ControlService(path, 0o600, log, FakeTarget())  # type: ignore[arg-type]
    second.open(predecessor=os.getpid())  # an upgrade: no warning
    third = ControlService(path, 0o600, log, FakeTarget())  # type: ignore[arg-type]
    third.open()
    assert log.lines.count(f"Control socket listening at {path}") == 3
    warnings = [line for line in log.lines if "was in use by pid" in line]
    assert warnings == [
        f"Control socket {path} was in use by pid {os.getpid()}; it now reaches this server"
    ]
    for service in (first, second, third):
        service.close(unlink=True)
    assert not os.path.exists(path)


def test_a_socket_that_cannot_be_made_is_a_warning(tmp_path: Path) -> None:
    log = Log()
    (tmp_path / "file").write_text("")
    service = ControlService(str(tmp_path / "file"), 0o600, log, FakeTarget())  # type: ignore[arg-type]
    service.open()
    assert service.server is None and service.watched() == {}
    where = tmp_path / "file"
    assert log.lines == [
        f"Control socket: cannot listen at {where}: a file that is not a socket is there"
    ]
    disabled = ControlService(None, 0o600, log, FakeTarget())  # type: ignore[arg-type]
    disabled.open()
    assert disabled.server is None


def test_reconfigure_moves_the_socket(tmp_path: Path) -> None:
    log = Log()
    old, new = str(tmp_path / "a.ctl"), str(tmp_path / "b.ctl")
    service = ControlService(old, 0o600, log, FakeTarget())  # type: ignore[arg-type]
    service.open()
    service.reconfigure(new, 0o660, log)  # type: ignore[arg-type]
    assert not os.path.exists(old) and stat.S_IMODE(os.stat(new).st_mode) == 0o660
    service.reconfigure(None, 0o660, log)  # type: ignore[arg-type]
    assert not os.path.exists(new) and service.server is None
