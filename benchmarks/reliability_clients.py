"""The reliability harness's clients: each sends one unit of requests and classifies what came back.

Kinds (`CLIENT_KINDS`):

- `keepalive`: an httpx pool of POOL_SIZE kept-alive connections, GET and POST in turns;
- `pipelined`: raw kept-alive sockets, two requests written back to back, both answers read;
- `newconn`: a new TCP connection per request (`Connection: close`);
- `burst`: BURST new connections at once, each with one request, then every answer read;
- `nginx`: the `keepalive` pool, talking to an nginx that proxies to the server.

A well-behaved client is modelled, not a naive one: before reusing a kept-alive connection it
checks that the server has not closed it (as httpx and urllib3 do), and a pipelined request left
unanswered after a response that said `Connection: close` is sent again on a new connection
(RFC 9112 §9.3.2). Anything else that ends without a response is a failure.
"""

from __future__ import annotations

import errno
import queue
import select
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import httpx

POOL_SIZE = 8
BURST = 12
PIPELINE_CONNECTIONS = 4
TIMEOUT_S = 10.0
POST_BODY = b"x" * 512
OK = "ok"
# Failure kinds, in the table's order.
FAILURES = ("reset", "refused", "eof", "timeout", "5xx", "other")
# The client's own socket closed under it (EBADF): httpx's pool, shared by threads, closed a
# connection another thread was reading (seen once in about six max_requests rows, on a
# response with Connection: close). No peer can cause EBADF; it is counted apart, not as the
# server's failure, and shown in the row's kinds.
CLIENT_FAULT = "client"


@dataclass(frozen=True)
class Outcome:
    """One request's end: `kind` is OK, "designed" (an expected 503/504) or one of FAILURES."""

    kind: str
    status: int = 0
    retried: bool = False
    detail: str = ""


Unit = Callable[[], list[Outcome]]


def classify_status(status: int, designed: frozenset[int]) -> Outcome:
    """A response's outcome: 5xx fails unless the row designed it; 4xx is "other" (a bug)."""
    if status in designed:
        return Outcome("designed", status)
    if status >= 500:
        return Outcome("5xx", status)
    if status >= 400:
        return Outcome("other", status)
    return Outcome(OK, status)


def classify_error(exc: BaseException) -> Outcome:
    """A transport error's outcome, found along its chain of causes."""
    seen: BaseException | None = exc
    while seen is not None:
        if isinstance(seen, ConnectionRefusedError):
            return Outcome("refused", detail=repr(exc))
        if isinstance(seen, (ConnectionResetError, BrokenPipeError)):
            return Outcome("reset", detail=repr(exc))
        if isinstance(seen, (TimeoutError, httpx.TimeoutException)):
            return Outcome("timeout", detail=repr(exc))
        if isinstance(seen, EOFError) or "without sending a response" in str(seen):
            return Outcome("eof", detail=repr(exc))
        if isinstance(seen, OSError) and seen.errno == errno.EBADF:
            return Outcome(CLIENT_FAULT, detail=repr(exc))
        seen = seen.__cause__ or seen.__context__
    return Outcome("other", detail=repr(exc))


# -- raw HTTP/1.1 ----------------------------------------------------------------------------


def raw_request(method: str, path: str, *, close: bool = False, body: bytes = b"") -> bytes:
    """The bytes of one request; GETs carry no body."""
    head = f"{method} {path} HTTP/1.1\r\nHost: reliability.test\r\n"
    if close:
        head += "Connection: close\r\n"
    if method == "POST":
        head += f"Content-Length: {len(body)}\r\n"
    return head.encode("latin-1") + b"\r\n" + body


class RawConnection:
    """One client socket with a read buffer, reading whole responses (Content-Length or EOF)."""

    def __init__(self, addr: tuple[str, int], timeout: float = TIMEOUT_S) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = b""

    def close(self) -> None:
        self.sock.close()

    def closed_by_peer(self) -> bool:
        """Whether the server has closed (or reset) this idle connection: check before reuse."""
        readable, _, _ = select.select([self.sock], [], [], 0)
        return bool(readable) or bool(self.buf)

    def _fill(self) -> bool:
        data = self.sock.recv(65536)
        self.buf += data
        return bool(data)

    def read_response(self) -> tuple[int, bool]:
        """(status, server closes after it); EOFError when the connection ends before a head."""
        while b"\r\n\r\n" not in self.buf:
            if not self._fill():
                raise EOFError(f"closed before a response head ({self.buf[:80]!r})")
        head, _, self.buf = self.buf.partition(b"\r\n\r\n")
        lines = head.decode("latin-1").split("\r\n")
        status = int(lines[0].split(" ", 2)[1])
        headers = {
            k.strip().lower(): v.strip().lower()
            for k, _, v in (h.partition(":") for h in lines[1:])
        }
        closes = "close" in headers.get("connection", "")
        if "content-length" in headers:
            length = int(headers["content-length"])
            while len(self.buf) < length:
                if not self._fill():
                    raise EOFError("closed in the middle of a body")
            self.buf = self.buf[length:]
        elif status >= 200 and status not in (204, 304):
            while self._fill():
                pass  # a body delimited by the close (no app response here is)
            self.buf, closes = b"", True
        return status, closes


def newconn_unit(
    addr: tuple[str, int], designed: frozenset[int], path: str = "/", *, retry: bool = False
) -> list[Outcome]:
    """One GET on a new connection; with `retry`, a GET that got no answer is sent once more."""
    outcome = _newconn_once(addr, designed, path)
    if retry and outcome.kind in ("reset", "eof"):
        again = _newconn_once(addr, designed, path)
        return [Outcome(again.kind, again.status, True, again.detail)]
    return [outcome]


def _newconn_once(addr: tuple[str, int], designed: frozenset[int], path: str = "/") -> Outcome:
    try:
        conn = RawConnection(addr)
    except OSError as exc:
        return classify_error(exc)
    try:
        conn.sock.sendall(raw_request("GET", path, close=True))
        status, _ = conn.read_response()
        return classify_status(status, designed)
    except (OSError, EOFError, ValueError, IndexError) as exc:
        return classify_error(exc)
    finally:
        conn.close()


def burst_unit(addr: tuple[str, int], designed: frozenset[int], path: str = "/") -> list[Outcome]:
    """BURST connections opened and sent on at once, then read: BURST requests at one instant."""
    conns: list[RawConnection | Outcome] = []
    for _ in range(BURST):
        try:
            conn = RawConnection(addr)
            conn.sock.sendall(raw_request("GET", path, close=True))
            conns.append(conn)
        except OSError as exc:
            conns.append(classify_error(exc))
    return [read_one(conn, designed) for conn in conns]


def read_one(conn: RawConnection | Outcome, designed: frozenset[int]) -> Outcome:
    """The outcome of the response awaited on `conn` (or of its failed connect), then close it."""
    if isinstance(conn, Outcome):
        return conn
    try:
        status, _ = conn.read_response()
        return classify_status(status, designed)
    except (OSError, EOFError, ValueError, IndexError) as exc:
        return classify_error(exc)
    finally:
        conn.close()


class Pipeliner:
    """PIPELINE_CONNECTIONS kept-alive raw connections, shared by the load's threads."""

    def __init__(self, addr: tuple[str, int], designed: frozenset[int], path: str = "/") -> None:
        self.addr = addr
        self.designed = designed
        self.path = path
        self.idle: queue.SimpleQueue[RawConnection] = queue.SimpleQueue()

    def _take(self) -> RawConnection:
        while True:
            try:
                conn = self.idle.get_nowait()
            except queue.Empty:
                return RawConnection(self.addr)
            if not conn.closed_by_peer():
                return conn
            conn.close()

    def unit(self) -> list[Outcome]:
        """Two requests written at once (a GET, then a POST with a body), both answers read."""
        try:
            conn = self._take()
        except OSError as exc:
            failed = classify_error(exc)
            return [failed, failed]
        outcomes: list[Outcome] = []
        try:
            pair = raw_request("GET", self.path) + raw_request("POST", self.path, body=POST_BODY)
            conn.sock.sendall(pair)
            for _ in range(2):
                status, closes = conn.read_response()
                outcomes.append(classify_status(status, self.designed))
                if closes:
                    break
        except (OSError, EOFError, ValueError, IndexError) as exc:
            conn.close()
            return outcomes + [classify_error(exc)] * (2 - len(outcomes))
        if len(outcomes) == 2 and not closes:
            self.idle.put(conn)
            return outcomes
        conn.close()
        if len(outcomes) == 1:
            # Announced close: the POST was never answered, and a client sends it again.
            again = _newconn_once(self.addr, self.designed, self.path)
            outcomes.append(Outcome(again.kind, again.status, True, again.detail))
        return outcomes

    def close(self) -> None:
        while True:
            try:
                self.idle.get_nowait().close()
            except queue.Empty:
                return


class KeepAlivePool:
    """An httpx client with POOL_SIZE kept-alive connections; GET and POST in turns.

    `get_only` sends only GETs, which a proxy may retry (nginx never retries a POST).
    """

    def __init__(
        self,
        addr: tuple[str, int],
        designed: frozenset[int],
        path: str = "/",
        *,
        get_only: bool = False,
    ) -> None:
        limits = httpx.Limits(max_connections=POOL_SIZE, max_keepalive_connections=POOL_SIZE)
        # The pool timeout is the whole budget too: waiting for a free connection is not a
        # failure of the server, but waiting for ever would be.
        self.client = httpx.Client(
            base_url=f"http://{addr[0]}:{addr[1]}", limits=limits, timeout=TIMEOUT_S
        )
        self.designed = designed
        self.path = path
        self.get_only = get_only
        self.turn = 0
        self._turn_lock = threading.Lock()

    def unit(self) -> list[Outcome]:
        with self._turn_lock:
            self.turn += 1
            post = self.turn % 2 == 0 and not self.get_only
        try:
            if post:
                response = self.client.post(self.path, content=POST_BODY)
            else:
                response = self.client.get(self.path)
        except httpx.HTTPError as exc:
            return [classify_error(exc)]
        return [classify_status(response.status_code, self.designed)]

    def close(self) -> None:
        self.client.close()


def wait_listening(addr: tuple[str, int], timeout: float) -> None:
    """Block until a TCP connect to `addr` succeeds; TimeoutError after `timeout`."""
    deadline = time.monotonic() + timeout
    while True:
        try:
            socket.create_connection(addr, timeout=1).close()
            return
        except OSError:
            if time.monotonic() > deadline:
                raise TimeoutError(f"nothing accepts at {addr} after {timeout}s") from None
            time.sleep(0.05)
