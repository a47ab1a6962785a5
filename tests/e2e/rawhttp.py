"""A small HTTP/1.1 client over a raw socket, for tests that need byte-exact control."""

from __future__ import annotations

import socket
import time
from dataclasses import dataclass, field


@dataclass
class Response:
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes
    raw_head: bytes = b""
    interim: list[int] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = [v for k, v in self.headers if k.lower() == name.lower()]
        return ", ".join(values) if values else None


class RawClient:
    """One TCP connection; write any bytes, read responses back."""

    def __init__(
        self, addr: tuple[str, int], timeout: float = 10.0, source: str | None = None
    ) -> None:
        """``source``: the local address to connect from (any of 127.0.0.0/8 on loopback)."""
        bind = None if source is None else (source, 0)
        self.sock = socket.create_connection(addr, timeout=timeout, source_address=bind)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""
        self.timeout = timeout

    def __enter__(self) -> RawClient:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def close(self) -> None:
        self.sock.close()

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        if not data:
            return False
        self.buf += data
        return True

    def _until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            if not self._fill():
                raise ConnectionError(f"closed before {marker!r}; have {self.buf[:200]!r}")
        out, _, self.buf = self.buf.partition(marker)
        return out

    def _exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not self._fill():
                raise ConnectionError("closed in the middle of a body")
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_interim_or_final(self) -> Response:
        """Read one response head (interim or final) and, for a final one, its body."""
        head = self._until(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        version, status, *reason = lines[0].split(" ", 2)
        assert version.startswith("HTTP/1."), lines[0]
        headers = [
            (name.strip(), value.strip())
            for name, _, value in (line.partition(":") for line in lines[1:])
        ]
        resp = Response(int(status), reason[0] if reason else "", headers, b"", head)
        return resp

    def read_response(self, method: str = "GET") -> Response:
        """Read a final response (skipping 1xx, which are recorded in ``interim``)."""
        interim = []
        while True:
            resp = self.read_interim_or_final()
            if 100 <= resp.status < 200 and resp.status != 101:
                interim.append(resp.status)
                continue
            break
        resp.interim = interim
        if method == "HEAD" or resp.status in (204, 304) or resp.status < 200:
            return resp
        te = (resp.header("transfer-encoding") or "").lower()
        length = resp.header("content-length")
        if "chunked" in te:
            parts = []
            while True:
                size = int(self._until(b"\r\n").split(b";")[0], 16)
                if size == 0:
                    while self._until(b"\r\n"):
                        pass
                    break
                parts.append(self._exact(size))
                self._until(b"\r\n")
            resp.body = b"".join(parts)
        elif length is not None:
            resp.body = self._exact(int(length))
        else:
            while self._fill():
                pass
            resp.body, self.buf = self.buf, b""
        return resp

    def at_eof(self, timeout: float = 5.0) -> bool:
        """True when the server closes the connection (after any pending bytes) within timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self.sock.settimeout(max(0.01, deadline - time.monotonic()))
            try:
                data = self.sock.recv(65536)
            except TimeoutError:
                return False
            except ConnectionResetError:
                return True
            if not data:
                return True
            self.buf += data
        return False


def request(
    method: str, path: str, headers: dict[str, str] | None = None, body: bytes = b""
) -> bytes:
    """The bytes of an HTTP/1.1 request with Host and, for a body, Content-Length."""
    lines = [f"{method} {path} HTTP/1.1", "Host: test.local"]
    for name, value in (headers or {}).items():
        lines.append(f"{name}: {value}")
    if body and not any(
        k.lower() in ("content-length", "transfer-encoding") for k in headers or {}
    ):
        lines.append(f"Content-Length: {len(body)}")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body
