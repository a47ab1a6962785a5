"""Real listeners: TCP on 127.0.0.1 and ::1, Unix sockets with modes, fd://N and LISTEN_FDS."""

from __future__ import annotations

import os
import socket
import stat
import subprocess
import sys
import textwrap
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.sockets import (
    BindError,
    Listener,
    close_listeners,
    create_listener,
    open_listeners,
    parse_bind,
)


@pytest.fixture
def opened() -> Iterator[list[Listener]]:
    made: list[Listener] = []
    yield made
    close_listeners(made, unlink=True)


def listen(bind: str, opened: list[Listener], *, reuse_port: bool = False) -> Listener:
    listener = create_listener(parse_bind(bind), backlog=16, reuse_port=reuse_port)
    opened.append(listener)
    return listener


def round_trip(listener: Listener, family: int, address: tuple[object, ...] | str) -> None:
    """Connect, accept, and pass a few bytes: the socket really listens where it says."""
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(5)
        client.connect(address)
        # Before the accept: with TCP_DEFER_ACCEPT a connection is accepted once data arrives
        # (or, without any, after the kernel's SYN-ACK retries, seconds later).
        client.sendall(b"ping")
        server, _ = listener.sock.accept()
        with server:
            assert server.recv(4) == b"ping"


def ipv6_available() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
    except OSError:
        return False
    return True


def test_ipv4_port_zero_gets_a_real_port(opened: list[Listener]) -> None:
    listener = listen("127.0.0.1:0", opened)
    host, port = listener.sock.getsockname()
    assert host == "127.0.0.1" and port > 0
    assert listener.url() == f"http://127.0.0.1:{port}"
    assert listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR)
    assert not listener.sock.get_inheritable()
    round_trip(listener, socket.AF_INET, ("127.0.0.1", port))


def test_reuse_port_sets_the_option(opened: list[Listener]) -> None:
    first = listen("127.0.0.1:0", opened, reuse_port=True)
    port = first.sock.getsockname()[1]
    assert first.sock.getsockopt(socket.SOL_SOCKET, socket.SO_REUSEPORT)
    second = listen(f"127.0.0.1:{port}", opened, reuse_port=True)
    assert second.sock.getsockname()[1] == port


def test_port_in_use_names_the_address(opened: list[Listener]) -> None:
    port = listen("127.0.0.1:0", opened).sock.getsockname()[1]
    with pytest.raises(BindError, match=f"127.0.0.1:{port}"):
        listen(f"127.0.0.1:{port}", opened)


def test_hostname_resolves(opened: list[Listener]) -> None:
    listener = listen("localhost:0", opened)
    assert listener.sock.family in (socket.AF_INET, socket.AF_INET6)
    assert listener.sock.getsockname()[1] > 0


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this machine")
def test_ipv6_loopback_is_v6only(opened: list[Listener]) -> None:
    listener = listen("[::1]:0", opened)
    assert listener.sock.family == socket.AF_INET6
    assert listener.sock.getsockopt(socket.IPPROTO_IPV6, socket.IPV6_V6ONLY) == 1
    port = listener.sock.getsockname()[1]
    assert listener.url() == f"http://[::1]:{port}"
    round_trip(listener, socket.AF_INET6, ("::1", port))


@pytest.mark.skipif(not ipv6_available(), reason="no IPv6 loopback on this machine")
def test_v6_wildcard_and_v4_wildcard_coexist(opened: list[Listener]) -> None:
    port = listen("[::]:0", opened).sock.getsockname()[1]
    v4 = listen(f"0.0.0.0:{port}", opened)
    assert v4.sock.getsockname()[1] == port


def test_unix_socket_with_mode(tmp_path: Path, opened: list[Listener]) -> None:
    path = tmp_path / "app.sock"
    listener = listen(f"unix:{path}?mode=640", opened)
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode)
    assert stat.S_IMODE(st.st_mode) == 0o640
    assert listener.url() == f"unix:{path}"
    round_trip(listener, socket.AF_UNIX, str(path))


def test_unix_socket_mode_follows_umask(tmp_path: Path, opened: list[Listener]) -> None:
    path = tmp_path / "app.sock"
    old = os.umask(0o027)
    try:
        listen(f"unix:{path}", opened)
    finally:
        os.umask(old)
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o750


def test_unix_socket_removed_on_close(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    listener = create_listener(parse_bind(f"unix:{path}"), backlog=4)
    close_listeners([listener], unlink=True)
    assert not path.exists()


def test_unix_socket_kept_without_unlink(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    listener = create_listener(parse_bind(f"unix:{path}"), backlog=4)
    close_listeners([listener], unlink=False)
    assert path.exists()


def test_unlink_spares_a_file_that_replaced_ours(tmp_path: Path) -> None:
    path = tmp_path / "app.sock"
    listener = create_listener(parse_bind(f"unix:{path}"), backlog=4)
    os.unlink(path)
    path.write_text("someone else's")
    close_listeners([listener], unlink=True)
    assert path.read_text() == "someone else's"


def test_stale_unix_socket_is_replaced(tmp_path: Path, opened: list[Listener]) -> None:
    path = tmp_path / "app.sock"
    dead = socket.socket(socket.AF_UNIX)
    dead.bind(str(path))
    dead.close()  # the file stays, nobody listens: what a crashed server leaves
    listener = listen(f"unix:{path}", opened)
    round_trip(listener, socket.AF_UNIX, str(path))


def test_live_unix_socket_is_refused(tmp_path: Path, opened: list[Listener]) -> None:
    path = tmp_path / "app.sock"
    listen(f"unix:{path}", opened)
    with pytest.raises(BindError, match="another server is listening"):
        listen(f"unix:{path}", opened)
    assert path.exists()


def test_regular_file_is_refused(tmp_path: Path, opened: list[Listener]) -> None:
    path = tmp_path / "data.txt"
    path.write_text("precious")
    with pytest.raises(BindError, match="not a socket"):
        listen(f"unix:{path}", opened)
    assert path.read_text() == "precious"


def test_abstract_unix_socket(opened: list[Listener]) -> None:
    name = f"corral-test-{os.getpid()}"
    listener = listen(f"unix:@{name}", opened)
    assert listener.url() == f"unix:@{name}"
    assert listener.unix_path() is None
    round_trip(listener, socket.AF_UNIX, "\0" + name)


def test_fd_adopts_a_bound_socket_and_listens(opened: list[Listener]) -> None:
    raw = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    raw.bind(("127.0.0.1", 0))
    fd = raw.detach()
    listener = listen(f"fd://{fd}", opened)
    assert listener.fileno() == fd
    assert listener.sock.getsockopt(socket.SOL_SOCKET, socket.SO_ACCEPTCONN) == 1
    round_trip(listener, socket.AF_INET, listener.sock.getsockname())


def test_fd_adopts_a_unix_listener(tmp_path: Path, opened: list[Listener]) -> None:
    raw = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    raw.bind(str(tmp_path / "s"))
    raw.listen(3)
    listener = listen(f"fd://{raw.detach()}", opened)
    assert listener.sock.family == socket.AF_UNIX
    assert listener.url() == f"unix:{tmp_path / 's'}"
    listener.close(unlink=True)
    opened.remove(listener)
    assert (tmp_path / "s").exists()  # not ours: never unlinked


def test_fd_that_is_not_a_socket(tmp_path: Path, opened: list[Listener]) -> None:
    with open(tmp_path / "f", "w") as f, pytest.raises(BindError, match="not an open socket"):
        listen(f"fd://{f.fileno()}", opened)


def test_fd_datagram_socket_is_refused(opened: list[Listener]) -> None:
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as udp:
        with pytest.raises(BindError, match="not a stream socket"):
            listen(f"fd://{udp.fileno()}", opened)
        udp.getsockname()  # still open: a refused fd is not closed under its owner


def test_open_listeners_binds_each_once(opened: list[Listener], tmp_path: Path) -> None:
    env: dict[str, str] = {}
    binds = ["127.0.0.1:0", f"unix:{tmp_path / 'a.sock'}", "127.0.0.1:0"]
    made = open_listeners(binds, env, os.getpid(), backlog=8)
    opened.extend(made)
    assert [m.sock.family for m in made] == [socket.AF_INET, socket.AF_UNIX]


def test_open_listeners_is_all_or_nothing(tmp_path: Path) -> None:
    holder = socket.socket()
    holder.bind(("127.0.0.1", 0))
    holder.listen(1)
    taken = holder.getsockname()[1]
    path = tmp_path / "first.sock"
    try:
        with pytest.raises(BindError):
            open_listeners([f"unix:{path}", f"127.0.0.1:{taken}"], {}, os.getpid(), backlog=8)
    finally:
        holder.close()
    assert not path.exists()  # the first listener was closed and its file removed


def test_inherited_fds_from_an_upgrade(opened: list[Listener], tmp_path: Path) -> None:
    tcp = socket.socket()
    tcp.bind(("127.0.0.1", 0))
    tcp.listen(4)
    unix_path = tmp_path / "u.sock"
    unix = socket.socket(socket.AF_UNIX)
    unix.bind(str(unix_path))
    unix.listen(4)
    env = {"CORRAL_FDS": f"{tcp.detach()},{unix.detach()}"}
    made = open_listeners(["127.0.0.1:1", f"unix:{unix_path}"], env, os.getpid(), backlog=8)
    opened.extend(made)
    assert "CORRAL_FDS" not in env
    assert [m.sock.family for m in made] == [socket.AF_INET, socket.AF_UNIX]
    assert made[0].owned_file is None
    assert made[1].owned_file is not None  # bound by corral: ours to remove at the end


SYSTEMD_CHILD = textwrap.dedent(
    """
    import json, os, sys
    from corral.sockets import open_listeners
    os.dup2(int(sys.argv[1]), 3)
    os.environ.update(LISTEN_FDS="1", LISTEN_PID=str(os.getpid()), LISTEN_FDNAMES="web")
    listeners = open_listeners(["127.0.0.1:1"], os.environ, os.getpid(), backlog=8)
    conn, _ = listeners[0].sock.accept()
    conn.sendall(b"accepted")
    conn.close()
    print(json.dumps({
        "fds": [l.fileno() for l in listeners],
        "url": listeners[0].url(),
        "left": [k for k in os.environ if k.startswith("LISTEN_")],
    }))
    """
)


def test_systemd_socket_activation() -> None:
    """Like systemd: the socket is fd 3 in a process whose pid LISTEN_PID names."""
    import json

    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(4)
    port = server.getsockname()[1]
    proc = subprocess.Popen(
        [sys.executable, "-c", SYSTEMD_CHILD, str(server.fileno())],
        pass_fds=[server.fileno()],
        stdout=subprocess.PIPE,
        text=True,
    )
    server.close()
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=10) as client:
            client.settimeout(10)
            assert client.recv(16) == b"accepted"
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    result = json.loads(out)
    assert result == {"fds": [3], "url": f"http://127.0.0.1:{port}", "left": []}
