"""The transport's writes that keep the GIL (drivers/keepgil.py), over real socket pairs."""

from __future__ import annotations

import socket
import subprocess
import sys
import threading
from collections.abc import Iterator

import pytest

from corral.drivers.keepgil import QUICK_MAX, SendMode, libc_send
from corral.drivers.transport import SocketTransport
from corral.gateway.ladder import ClientDisconnected


@pytest.fixture
def pair() -> Iterator[tuple[socket.socket, socket.socket]]:
    a, b = socket.socketpair()
    yield a, b
    a.close()
    b.close()


def crowded_transport(sock: socket.socket) -> SocketTransport:
    mode = SendMode()
    mode.crowded(True)
    assert mode.send is not None
    return SocketTransport(sock, 1.0, 2.0, mode)


def read_exactly(sock: socket.socket, count: int) -> bytes:
    got = bytearray()
    sock.settimeout(5.0)
    while len(got) < count:
        chunk = sock.recv(count - len(got))
        assert chunk, "the peer closed early"
        got += chunk
    return bytes(got)


def test_libc_send_is_found_on_linux() -> None:
    assert libc_send() is not None


def test_the_mode_follows_the_crowd() -> None:
    mode = SendMode()
    assert mode.send is None
    mode.crowded(True)
    assert mode.send is libc_send()
    mode.crowded(False)
    assert mode.send is None


# Run in a fresh interpreter, where ctypes is not imported yet: out of descriptors, the import
# fails; the mode must stay off (and the monitor alive), then turn on once descriptors are free.
_OUT_OF_DESCRIPTORS = """
import os, resource, sys
assert "ctypes" not in sys.modules
from corral.drivers.keepgil import SendMode
resource.setrlimit(resource.RLIMIT_NOFILE, (64, 64))
held = []
try:
    while True:
        held.append(os.open(os.devnull, os.O_RDONLY))
except OSError:
    pass
mode = SendMode()
mode.crowded(True)
print("out", mode.send is None)
for fd in held:
    os.close(fd)
mode.crowded(True)
print("freed", mode.send is not None)
"""


def test_a_worker_out_of_descriptors_keeps_writing_as_usual() -> None:
    done = subprocess.run(
        [sys.executable, "-c", _OUT_OF_DESCRIPTORS],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["out", "True", "freed", "True"]


@pytest.mark.parametrize("size", [1, 150, QUICK_MAX, QUICK_MAX + 1, 200_000])
def test_every_byte_arrives_in_order(pair: tuple[socket.socket, socket.socket], size: int) -> None:
    a, b = pair
    data = bytes(i % 251 for i in range(size))
    reader_got: list[bytes] = []
    reader = threading.Thread(target=lambda: reader_got.append(read_exactly(b, size)))
    reader.start()
    crowded_transport(a).sendall(data)
    reader.join(10)
    assert reader_got == [data]


def test_a_full_buffer_is_waited_out(pair: tuple[socket.socket, socket.socket]) -> None:
    """The quick write takes what fits; the rest waits for room, as a plain write does."""
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    filler = b"f" * 100_000
    a.setblocking(False)
    sent = 0
    try:
        while True:
            sent += a.send(filler)
    except BlockingIOError:
        pass
    data = b"q" * QUICK_MAX
    got: list[bytes] = []
    reader = threading.Timer(0.2, lambda: got.append(read_exactly(b, sent + len(data))))
    reader.start()
    crowded_transport(a).sendall(data)
    reader.join(10)
    assert len(got) == 1 and got[0][sent:] == data


def test_a_closed_peer_is_a_disconnect(pair: tuple[socket.socket, socket.socket]) -> None:
    a, b = pair
    b.close()
    with pytest.raises(ClientDisconnected):
        crowded_transport(a).sendall(b"HTTP/1.1 200 OK\r\n\r\n")


def test_a_closed_socket_never_writes_to_the_fd_number_reused(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, _ = pair
    transport = crowded_transport(a)
    number = a.fileno()
    a.close()
    c, d = socket.socketpair()  # the lowest free descriptors: a's number comes back
    try:
        assert number in (c.fileno(), d.fileno())
        with pytest.raises(ClientDisconnected):
            transport.sendall(b"HTTP/1.1 200 OK\r\n\r\n")
        for other in (c, d):
            other.setblocking(False)
            with pytest.raises(BlockingIOError):
                other.recv(100)
    finally:
        c.close()
        d.close()


@pytest.mark.parametrize("full", [False, True])
def test_a_head_and_its_body_arrive_whole_and_in_order(
    pair: tuple[socket.socket, socket.socket], full: bool
) -> None:
    """send_after: one write as far as the buffer takes them, the rest of the head (when the
    buffer was full from the start) and of the body waited out."""
    a, b = pair
    a.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 4096)
    sent = 0
    if full:
        a.setblocking(False)
        try:
            while True:
                sent += a.send(b"f" * 100_000)
        except BlockingIOError:
            pass
    head = b"H" * 3000
    body = bytes(i % 251 for i in range(300_000))
    got: list[bytes] = []
    reader = threading.Timer(0.1, lambda: got.append(read_exactly(b, sent + 303_000)))
    reader.start()
    SocketTransport(a, 1.0, 5.0).send_after(head, body)
    reader.join(10)
    assert len(got) == 1 and got[0][sent:] == head + body


def test_send_after_to_a_closed_peer_is_a_disconnect(
    pair: tuple[socket.socket, socket.socket],
) -> None:
    a, b = pair
    b.close()
    with pytest.raises(ClientDisconnected):
        SocketTransport(a, 1.0, 2.0).send_after(b"head", b"body" * 100_000)
