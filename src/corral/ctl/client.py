"""A blocking client of the control socket, as gunicornc's: one connection, one reply at a time."""

from __future__ import annotations

import errno
import shlex
import socket
from types import TracebackType

from corral.ctl import protocol

TIMEOUT = 30.0  # gunicornc's; `dump` answers within its own 5 s


class ControlError(Exception):
    """The command failed (the server's error reply) or the server could not be reached."""


def connect_error(path: str, exc: OSError) -> str:
    """One line saying why `path` cannot be reached, and what to look at."""
    if exc.errno == errno.ENOENT:
        return (
            f"no control socket at {path}: is the server running, with this control_socket "
            "(or use -s PATH)?"
        )
    if exc.errno in (errno.EACCES, errno.EPERM):
        return (
            f"permission denied: {path} (run as the server's user or root, or widen "
            "control_socket_mode)"
        )
    if exc.errno == errno.ECONNREFUSED:
        return f"nothing listens at {path}: the server that made it has exited"
    if exc.errno == errno.ENOTSOCK:
        return f"{path} is not a socket"
    return f"cannot connect to {path}: {exc.strerror or exc}"


class ControlClient:
    """`with ControlClient(path) as client: client.send_command("show workers")`."""

    def __init__(self, socket_path: str, timeout: float = TIMEOUT) -> None:
        self.socket_path = socket_path
        self.timeout = timeout
        self._sock: socket.socket | None = None
        self._decoder = protocol.Decoder(protocol.MAX_REPLY)
        self._request_id = 0

    def connect(self) -> None:
        if self._sock is not None:
            return
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(self.timeout)
        try:
            sock.connect(self.socket_path)
        except OSError as exc:
            sock.close()
            raise ControlError(connect_error(self.socket_path, exc)) from None
        self._sock = sock
        self._decoder = protocol.Decoder(protocol.MAX_REPLY)

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def send_command(self, command: str, args: list[object] | None = None) -> protocol.Message:
        """The reply's data; ControlError with the server's text when it answers an error."""
        self.connect()
        assert self._sock is not None
        self._request_id += 1
        try:
            self._sock.sendall(protocol.encode(protocol.request(self._request_id, command, args)))
            reply = read_message(self._sock, self._decoder)
        except (OSError, protocol.FrameError) as exc:
            self.close()
            raise ControlError(f"Communication error: {exc}") from None
        if reply.get("status") == "error":
            raise ControlError(str(reply.get("error", "Unknown error")))
        data = reply.get("data")
        return data if isinstance(data, dict) else {}

    def __enter__(self) -> ControlClient:
        self.connect()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()


def read_message(sock: socket.socket, decoder: protocol.Decoder | None = None) -> protocol.Message:
    """One whole message from a blocking socket; ConnectionError if it closes first. Bytes read
    past it stay in `decoder`, for the next call."""
    decoder = decoder or protocol.Decoder(protocol.MAX_REPLY)
    while True:
        message = decoder.next()
        if message is not None:
            return message
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("the server closed the connection")
        decoder.feed(data)


def parse_command(line: str) -> tuple[str, list[str]]:
    """gunicornc's split: the command words, then the arguments from the first number (or
    word starting with `-`) on: `worker add 2` -> ("worker add", ["2"])."""
    words: list[str] = []
    args: list[str] = []
    for part in shlex.split(line):
        if not args and not part.isdigit() and not part.startswith("-"):
            words.append(part)
        else:
            args.append(part)
    return " ".join(words), args
