#!/usr/bin/env python3
"""Where the time goes on corral's WSGI hot path: µs per stage for one keep-alive request.

It drives the real code (HTTP core, WSGI gateway, request lifecycle, connection driver) over a
real socket pair in one process, so no load generator or scheduler noise is involved:

    python benchmarks/hotpath.py [--number 20000] [--profile]

Stages, each timed alone over the same request (wrk's: a request line and a Host header):
  parse       receive_data + next_event until the Request event (a repeated head: the parser's
              memo answers, as it does for every request of a load generator)
  parse-new   the same for a head the memo has not seen (it is emptied first): the parser's
              full cost, reported beside the table and not part of ``whole``
  environ     the PEP 3333 environ from the Request
  app+resp    the app called through the gateway, its response framed (no socket)
  syscalls    the server's recv and send of those bytes on a socket pair
  whole       client send, Session.read_ready (everything above plus lifecycle,
              access-log check, hooks, end of cycle), client recv
``--profile`` adds a cProfile listing of the whole loop.
"""

from __future__ import annotations

import argparse
import cProfile
import io
import pstats
import socket
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from benchmarks.apps.wsgi_apps import hello
from corral.arbiter.heartbeat import Heartbeat
from corral.config import load
from corral.drivers.blocking import DriverContext, Session
from corral.gateway.loader import LoadedApp
from corral.gateway.wsgi import ResponseState
from corral.gateway.wsgi_input import WSGIInput
from corral.http import readers
from corral.http.connection import ServerConnection
from corral.http.events import Request
from corral.logging import Logger
from corral.workers.context import driver_context
from corral.workers.threaded import ThreadedWorker

REQUEST = b"GET / HTTP/1.1\r\nHost: 127.0.0.1:8080\r\n\r\n"


class NullTransport:
    """Swallows what the gateway writes, to time the gateway without a socket."""

    def recv(self) -> bytes:
        return b""

    def sendall(self, data: bytes) -> None:
        pass

    def send_after(self, head: bytes, body: bytes) -> None:
        pass

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        return 0


def per_call(fn: Callable[[], object], number: int, repeat: int = 5) -> float:
    """Median µs per call of ``fn`` over ``repeat`` runs of ``number`` calls."""
    runs = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        for _ in range(number):
            fn()
        runs.append((time.perf_counter() - t0) / number * 1e6)
    return statistics.median(runs)


def serving_session() -> tuple[Session, socket.socket, socket.socket, DriverContext]:
    """A threaded worker's Session serving `hello` on one end of a socket pair.

    Returns the session, its server socket, the client socket and the driver context.
    """
    cfg = load(["-k", "threaded", "--error-logfile", "/dev/null", "x:y"], {})
    log = Logger(cfg)
    worker = ThreadedWorker(1, 0, [], cfg, log, Heartbeat(None))
    ctx = driver_context(worker, LoadedApp(hello, "wsgi"), multithread=True)
    server_sock, client = socket.socketpair()
    server_sock.setblocking(False)
    session = Session(server_sock, ("127.0.0.1", 5000), ("127.0.0.1", 8080), ctx)
    return session, server_sock, client, ctx


def stage_calls(request: bytes = REQUEST) -> dict[str, Callable[[], None]]:
    """One call of each measured step over ``request`` (wrk's by default), in table order.

    ``connection`` (a new ServerConnection) is there to be subtracted from ``parse``, and
    ``parse`` from ``app+resp``, which start from a fresh connection too.
    """
    session, server_sock, client, ctx = serving_session()
    gateway = ctx.gateway
    null = NullTransport()

    def connection() -> None:
        ServerConnection(ctx.policy.limits)

    def parse() -> None:
        conn = ServerConnection(ctx.policy.limits)
        conn.receive_data(request)
        conn.next_event()

    def parse_new() -> None:
        readers._PARSED.clear()
        parse()

    conn = ServerConnection(ctx.policy.limits)
    conn.receive_data(request)
    req = conn.next_event()
    assert isinstance(req, Request)
    body = WSGIInput(conn, null)

    def environ() -> None:
        gateway.build_environ(session.env_base, True, req, body)

    env = gateway.build_environ(session.env_base, True, req, body)

    def app_and_response() -> None:
        c = ServerConnection(ctx.policy.limits)
        c.receive_data(request)
        r = c.next_event()
        assert isinstance(r, Request)
        gateway.run(env, r, c, null, ResponseState())

    response = b"x" * 150

    def syscalls() -> None:
        client.send(request)
        server_sock.recv(65536)
        server_sock.send(response)
        client.recv(65536)

    def whole() -> None:
        client.send(request)
        if not session.read_ready():
            raise SystemExit("the session closed the connection")
        client.recv(65536)

    return {
        "connection": connection,
        "parse": parse,
        "parse-new": parse_new,
        "environ": environ,
        "app+resp": app_and_response,
        "syscalls": syscalls,
        "whole": whole,
    }


def by_stage(cost: Callable[[str], float]) -> list[tuple[str, float]]:
    """The table's rows from ``cost(step)`` (any unit per request), the overlaps taken out."""
    parse = cost("parse")
    stages = [
        ("parse", parse - cost("connection")),
        ("environ", cost("environ")),
        ("app+resp", cost("app+resp") - parse),
        ("syscalls", cost("syscalls")),
        ("whole", cost("whole")),
    ]
    rest = stages[-1][1] - sum(v for _, v in stages[:-1])
    return [
        *stages,
        ("lifecycle, driver, end of cycle (whole - the rest)", rest),
        ("parse, a head not seen before (not in whole)", cost("parse-new") - cost("connection")),
    ]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--number", type=int, default=20000)
    parser.add_argument("--profile", action="store_true")
    args = parser.parse_args()
    calls = stage_calls()
    n = args.number
    print(f"python {sys.version.split()[0]}, {n} requests per run, median of 5 runs")
    print("| stage | µs per request |\n|---|---|")
    for name, value in by_stage(lambda step: per_call(calls[step], n)):
        print(f"| {name} | {value:.2f} |")
    if args.profile:
        prof = cProfile.Profile()
        prof.enable()
        whole = calls["whole"]
        for _ in range(n):
            whole()
        prof.disable()
        out = io.StringIO()
        pstats.Stats(prof, stream=out).sort_stats("tottime").print_stats(18)
        print(out.getvalue())
    return 0


if __name__ == "__main__":
    sys.exit(main())
