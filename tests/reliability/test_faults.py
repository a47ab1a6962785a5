"""Faults a worker must survive without leaking: clients that vanish, apps that break HTTP.

One server per worker kind (sync, threaded, asyncio with the ASGI app), one worker, shared by
the tests of the module. Each test runs one fault many times from a few client threads: a
warm-up batch, a snapshot of the worker (open fds, RSS), the full batch, a second snapshot.
Then the worker must still answer a normal request, hold exactly the descriptors it held when
idle (once the closing connections are gone), have grown by at most RSS_SLACK_KIB, still be the
same process (no "Booting worker"), and have closed every response iterable (WSGI) or finished
every app call (ASGI). Where a client is still there, it must get the right answer, never hang.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import socket
import struct
import time
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.e2e.conftest import APPS, BOOTING, CorralProcess, kill_leftovers, wait_until
from tests.e2e.rawhttp import RawClient, request
from tests.reliability import fault_apps

HERE = Path(__file__).parent
APP_OF = {"sync": "fault_apps:wsgi", "threaded": "fault_apps:wsgi", "asyncio": "fault_apps:asgi"}
CLIENT_TIMEOUT = 5.0  # any read or write a client makes: a hang fails the test, not the run
CLIENTS = 4  # client threads per batch: enough to keep the one worker busy on 2 cores
WARMUP = 150
BATCH_SECONDS = 30.0
SETTLE_SECONDS = 5.0  # the asyncio driver lingers up to 2 s on a closing connection
# No slack for descriptors: `settle` waits for every client connection to be closed, and then
# the worker must hold exactly the descriptors it held when idle. RSS may move a little with
# the allocator's arenas and the threaded pool's size; a leak of 1 KiB per request shows.
RSS_SLACK_KIB = 5 * 1024
Addr = tuple[str, int]


def server_env() -> dict[str, str]:
    """PYTHONPATH for a corral that imports fault_apps (and the e2e apps)."""
    paths = [str(HERE), str(APPS), *filter(None, [os.environ.get("PYTHONPATH")])]
    return {"PYTHONPATH": os.pathsep.join(paths)}


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status", encoding="ascii") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError(f"no VmRSS for {pid}")


def stop_corral(proc: CorralProcess) -> None:
    """TERM (KILL after a while), and KILL any worker the log names that outlived it."""
    with contextlib.suppress(Exception):
        proc.stop(timeout=10)
    kill_leftovers([int(m.group(1)) for m in proc.matches(BOOTING)])


def get(addr: Addr, path: str) -> tuple[int, bytes]:
    """One request on a fresh connection: (status, body)."""
    with RawClient(addr, timeout=CLIENT_TIMEOUT) as client:
        client.send(request("GET", path))
        resp = client.read_response()
        return resp.status, resp.body


def tcp_states() -> dict[str, str]:
    """Socket inode → TCP state (hex, "0A" = LISTEN) for every TCP socket of this host."""
    states = {}
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        with contextlib.suppress(FileNotFoundError), open(table, encoding="ascii") as f:
            for line in f.readlines()[1:]:
                fields = line.split()
                states[fields[9]] = fields[3]
    return states


def fd_kinds(pid: int) -> Counter[str]:
    """A process's descriptors by kind: "tcp" (a connection), "listener", "pipe", a path..."""
    kinds: Counter[str] = Counter()
    states = tcp_states()
    for fd in os.listdir(f"/proc/{pid}/fd"):
        try:
            link = os.readlink(f"/proc/{pid}/fd/{fd}")
        except FileNotFoundError:
            continue  # closed meanwhile
        kind, _, inode = link.partition(":[")
        if kind == "socket":
            state = states.get(inode.rstrip("]"))
            kind = "socket" if state is None else "listener" if state == "0A" else "tcp"
        elif kind not in ("pipe", "anon_inode"):
            kind = re.sub(r"corral-heartbeat-\w+", "corral-heartbeat", link)  # same in any worker
        kinds[kind] += 1
    return kinds


@dataclass
class Server:
    """A running corral with one worker, and that worker's descriptors when idle."""

    proc: CorralProcess
    asgi: bool
    idle_fds: Counter[str] = field(default_factory=Counter)

    @property
    def addr(self) -> Addr:
        return self.proc.addr

    def stats(self) -> dict[str, int]:
        status, body = get(self.addr, "/stats")
        assert status == 200, body
        stats: dict[str, int] = json.loads(body)
        return stats

    def booted(self) -> int:
        return len(self.proc.matches(BOOTING))


@dataclass
class Snapshot:
    """A worker with no connection left and no app call open: its pid, fds and RSS."""

    pid: int
    fds: Counter[str]
    rss_kib: int


def settle(server: Server) -> Snapshot:
    """Wait (bounded) until every app call has ended and every client connection is closed."""
    stats = wait_until(server.stats, lambda s: s["open"] == 0, SETTLE_SECONDS)
    pid = stats["pid"]
    fds = wait_until(lambda: fd_kinds(pid), lambda k: k["tcp"] == 0, SETTLE_SECONDS)
    return Snapshot(pid, fds, rss_kib(pid))


@pytest.fixture(scope="module", params=["sync", "threaded", "asyncio"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    kind = request.param
    args = ["-b", "127.0.0.1:0", "-w", "1", "-k", kind, APP_OF[kind]]
    proc = CorralProcess(args, cwd=tmp_path_factory.mktemp(kind), env=server_env())
    try:
        served = Server(proc, asgi=kind == "asyncio")
        # The first requests open whatever a worker opens lazily.
        assert get(served.addr, "/ok") == (200, b"ok")
        idle = settle(served)
        served.idle_fds = idle.fds
        assert proc.worker_pids() == {idle.pid}
        yield served
    finally:
        stop_corral(proc)


# -- clients -----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Target:
    addr: Addr
    asgi: bool


def connect(addr: Addr, rcvbuf: int = 0) -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)  # before connect: the window
    sock.settimeout(CLIENT_TIMEOUT)
    sock.connect(addr)
    return sock


def hang_up(sock: socket.socket, reset: bool) -> None:
    """Close; with `reset`, abortively (SO_LINGER 0: the server sees RST, not FIN)."""
    if reset:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    sock.close()


def read_to_eof(sock: socket.socket) -> bytes:
    """Everything the server sends until it closes; a hang raises TimeoutError."""
    chunks = []
    for _ in range(10_000):
        try:
            data = sock.recv(65536)
        except ConnectionResetError:
            break
        if not data:
            break
        chunks.append(data)
    else:
        raise AssertionError("the server kept sending")
    return b"".join(chunks)


def split_response(data: bytes) -> tuple[int, dict[str, str], bytes]:
    """(status, lower-cased headers, body as received) of one raw response."""
    head, sep, body = data.partition(b"\r\n\r\n")
    assert sep, f"no complete head in {data[:200]!r}"
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.strip().lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    return int(lines[0].split(" ")[1]), headers, body


# -- faults: each makes one faulty request and checks what a client still there sees ---------

PARTIAL_HEAD = b"GET /ok HTTP/1.1\r\nHost: test.local\r\nX-Partial: abc"
PARTIAL_BODY = b"POST /body HTTP/1.1\r\nHost: test.local\r\nContent-Length: 100000\r\n\r\n" + (
    b"b" * 1000
)


def gone_mid_head(t: Target, reset: bool) -> None:
    sock = connect(t.addr)
    sock.sendall(PARTIAL_HEAD)
    hang_up(sock, reset)


def gone_mid_body(t: Target, reset: bool) -> None:
    sock = connect(t.addr)
    sock.sendall(PARTIAL_BODY)
    hang_up(sock, reset)


def big_response() -> int:
    """More bytes than the server's socket buffer can take: it is blocked in the middle."""
    with open("/proc/sys/net/ipv4/tcp_wmem", encoding="ascii") as f:
        return 2 * int(f.read().split()[2]) + 1024 * 1024


BIG = big_response()


def gone_mid_response(t: Target, reset: bool) -> None:
    """A client with a 4 KiB window reads 1 KiB of a BIG response, then goes."""
    sock = connect(t.addr, rcvbuf=4096)
    sock.sendall(request("GET", f"/big?{BIG}"))
    assert sock.recv(1024).startswith(b"HTTP/1.1 200 ")
    hang_up(sock, reset)


def gone_while_app_runs(t: Target, reset: bool) -> None:
    """WSGI: the app sleeps 5 ms; ASGI: the app waits for http.disconnect (at most 10 s)."""
    sock = connect(t.addr)
    sock.sendall(request("GET", "/wait-disconnect" if t.asgi else "/slow?0.005"))
    hang_up(sock, reset)


def raises_mid_body(t: Target) -> None:
    """The app fails after its first 64 KiB of 128: the client gets a short body, then EOF."""
    sock = connect(t.addr)
    with sock:
        sock.sendall(request("GET", "/raise-iter"))
        status, headers, body = split_response(read_to_eof(sock))
    assert status == 200
    assert len(body) < int(headers["content-length"])


def raises_before_any_byte(t: Target) -> None:
    """WSGI: the iterator raises at its first item; ASGI: raises after http.response.start."""
    with RawClient(t.addr, timeout=CLIENT_TIMEOUT) as client:
        client.send(request("GET", "/raise-after-start" if t.asgi else "/raise-first"))
        assert client.read_response().status == 500


def never_starts(t: Target) -> None:
    """WSGI: an iterable returned without start_response; ASGI: no http.response.start."""
    with RawClient(t.addr, timeout=CLIENT_TIMEOUT) as client:
        client.send(request("GET", "/no-start"))
        assert client.read_response().status == 500


def more_than_length(t: Target) -> None:
    """The declared 10 bytes arrive; the surplus never shows up, not even as the next response."""
    with RawClient(t.addr, timeout=CLIENT_TIMEOUT) as client:
        client.send(request("GET", "/more"))
        assert client.read_response().body == fault_apps.MORE[: fault_apps.DECLARED]
        try:
            client.send(request("GET", "/ok"))
            follow = client.read_response()
        except ConnectionError:  # closed after the response: fine, if nothing else came
            assert client.buf == b""
        else:
            assert (follow.status, follow.body) == (200, b"ok")


def fewer_than_length(t: Target) -> None:
    """A keep-alive client is not left waiting for bytes that never come: 500, or a short body
    and the connection closed (reading until EOF raises TimeoutError otherwise)."""
    sock = connect(t.addr)
    with sock:
        sock.sendall(request("GET", "/fewer"))
        status, _, body = split_response(read_to_eof(sock))
    assert status == 500 or (status, body) == (200, fault_apps.FEWER)


def half_closed(t: Target) -> None:
    """A client that shuts down its sending side after the request gets the whole response."""
    sock = connect(t.addr)
    with sock:
        sock.sendall(request("POST", "/body", body=b"h" * 10_000))
        sock.shutdown(socket.SHUT_WR)
        status, _, body = split_response(read_to_eof(sock))
    assert (status, body) == (200, b"10000")


def half_closed_big(t: Target) -> None:
    """The same with a 256 KiB response, more than fits in the socket buffers at once."""
    sock = connect(t.addr)
    with sock:
        sock.sendall(request("GET", "/big?262144"))
        sock.shutdown(socket.SHUT_WR)
        status, _, body = split_response(read_to_eof(sock))
    assert (status, len(body)) == (200, 262144)


@dataclass(frozen=True)
class Case:
    name: str
    fault: Callable[[Target], None]
    count: int


CASES = [
    Case("head-close", lambda t: gone_mid_head(t, reset=False), 1500),
    Case("head-reset", lambda t: gone_mid_head(t, reset=True), 1500),
    Case("body-close", lambda t: gone_mid_body(t, reset=False), 1500),
    Case("body-reset", lambda t: gone_mid_body(t, reset=True), 1500),
    Case("response-close", lambda t: gone_mid_response(t, reset=False), 600),
    Case("response-reset", lambda t: gone_mid_response(t, reset=True), 600),
    Case("app-running-close", lambda t: gone_while_app_runs(t, reset=False), 400),
    Case("app-running-reset", lambda t: gone_while_app_runs(t, reset=True), 400),
    Case("raise-mid-body", raises_mid_body, 1000),
    Case("raise-before-any-byte", raises_before_any_byte, 1000),
    Case("never-starts", never_starts, 1000),
    Case("more-than-length", more_than_length, 1000),
    Case("fewer-than-length", fewer_than_length, 1000),
    Case("half-closed", half_closed, 1000),
    Case("half-closed-big", half_closed_big, 300),
]


def run_batch(fault: Callable[[Target], None], target: Target, count: int) -> None:
    """`count` faults from CLIENTS threads; fails on the first client-side assertion, or when
    the batch takes longer than BATCH_SECONDS."""
    deadline = time.monotonic() + BATCH_SECONDS

    def client(share: int) -> int:
        for done in range(share):
            if time.monotonic() > deadline:
                return done
            fault(target)
        return share

    shares = [count // CLIENTS + (i < count % CLIENTS) for i in range(CLIENTS)]
    with ThreadPoolExecutor(CLIENTS) as pool:
        done = sum(pool.map(client, shares))
    assert done == count, f"only {done} of {count} faults in {BATCH_SECONDS} s"


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_worker_survives(server: Server, case: Case) -> None:
    target = Target(server.addr, server.asgi)
    booted = server.booted()
    pid = server.stats()["pid"]
    run_batch(case.fault, target, WARMUP)
    before = settle(server)
    run_batch(case.fault, target, case.count)
    after = settle(server)
    assert get(server.addr, "/ok") == (200, b"ok")
    assert (before.pid, after.pid) == (pid, pid), "the worker was replaced"
    assert server.booted() == booted
    assert after.fds == server.idle_fds, f"{after.fds} after {case.count}, idle {server.idle_fds}"
    grown = after.rss_kib - before.rss_kib
    assert grown <= RSS_SLACK_KIB, f"RSS grew by {grown} KiB after warm-up ({before.rss_kib} KiB)"
