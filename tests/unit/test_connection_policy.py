"""The connection policy every worker follows: when a response closes, idle deadlines, health
checks and accept back-off (drivers/policy.py)."""

from __future__ import annotations

import errno
import math
from typing import Any

import pytest

from corral.drivers.policy import STOP_KEEPALIVE_LINGER, AcceptGate, ConnectionPolicy
from corral.http.connection import Limits, ServerConnection
from corral.http.errors import ProtocolError
from corral.http.events import Request
from corral.http2.settings import PREFACE, H2Settings, HTTP2Policy


class FakeWorker:
    """A worker's two answers, set by the test."""

    def __init__(self, last: bool = False, draining: bool = False) -> None:
        self.last = last
        self.drains = draining

    def last_request(self) -> bool:
        return self.last

    def draining(self) -> bool:
        return self.drains


class Log:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None:
        self.lines.append(msg % args)


def policy(worker: FakeWorker | None = None, **kw: Any) -> ConnectionPolicy:
    args: dict[str, Any] = {
        "limits": Limits(),
        "proxy_limits": None,
        "proxy_peers": None,
        "body_timeout": 30.0,
        "send_timeout": 30.0,
        "header_timeout": 10.0,
        "keepalive": 75.0,
        "worker": worker or FakeWorker(),
    }
    args.update(kw)
    return ConnectionPolicy(**args)


def parsed(data: bytes) -> tuple[ServerConnection, Request]:
    conn = ServerConnection(Limits())
    conn.receive_data(data)
    event = conn.next_event()
    assert isinstance(event, Request)
    return conn, event


GET = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"


def test_a_serving_worker_keeps_connections() -> None:
    conn, req = parsed(GET)
    assert not policy().must_close(req, conn)


def test_keepalive_zero_closes_every_response() -> None:
    conn, req = parsed(GET + GET)
    assert policy(keepalive=0).must_close(req, conn)


@pytest.mark.parametrize("how", ["closing", "last request"])
def test_a_stopping_worker_closes_after_the_last_request_it_has(how: str) -> None:
    p = policy(FakeWorker(last=how == "last request"), closing=how == "closing")
    conn, req = parsed(GET)
    assert p.must_close(req, conn)
    # With a second request already pipelined, that one is answered first.
    conn, req = parsed(GET + GET)
    assert not p.must_close(req, conn)
    # Bytes after a request with a body may be its body: no exception then.
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc"
    conn, req = parsed(post)
    assert p.must_close(req, conn)


def test_idle_connections_live_their_keepalive_until_a_stop_caps_it() -> None:
    p = policy(keepalive=75.0)
    assert p.stop_idle_by == math.inf
    assert p.idle_until(100.0) == 175.0
    assert p.idle_deadline(100.0, 175.0) == 175.0
    p.begin_stop(200.0)
    assert p.closing
    assert p.stop_idle_by == 200.0 + STOP_KEEPALIVE_LINGER
    # Idle since before the stop: closed at the stop's cap, not after its keepalive.
    assert p.idle_deadline(150.0, 225.0) == 200.0 + STOP_KEEPALIVE_LINGER
    # A response that began before the stop and ended 5 s into it promised keep-alive: its
    # connection gets its own STOP_KEEPALIVE_LINGER, not an instant close.
    assert p.idle_until(205.0) == 205.0 + STOP_KEEPALIVE_LINGER
    assert p.idle_deadline(205.0, 280.0) == 205.0 + STOP_KEEPALIVE_LINGER


def test_a_stop_never_keeps_an_idle_connection_past_its_own_keepalive() -> None:
    p = policy(keepalive=1.0)
    p.begin_stop(10.0)
    assert p.stop_idle_by == 11.0


@pytest.mark.parametrize(("draining", "status"), [(False, b" 200 "), (True, b" 503 ")])
def test_the_health_check_is_answered_by_the_policy(draining: bool, status: bytes) -> None:
    p = policy(FakeWorker(draining=draining), health_path="/healthz")
    conn, req = parsed(b"GET /healthz?x=1 HTTP/1.1\r\nHost: x\r\n\r\n")
    out = p.health(req, conn)
    assert out is not None and status in out.split(b"\r\n", 1)[0]
    assert b"Cache-Control: no-store" in out


def test_other_paths_and_an_unset_health_path_go_to_the_app() -> None:
    conn, req = parsed(b"GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
    assert policy().health(req, conn) is None
    conn, req = parsed(b"GET /health HTTP/1.1\r\nHost: x\r\n\r\n")
    assert policy(health_path="/healthz").health(req, conn) is None


def test_out_of_descriptors_rests_the_listener_and_logs_once_per_rest() -> None:
    log = Log()
    gate = AcceptGate(log, pause=1.0)
    emfile = OSError(errno.EMFILE, "Too many open files")
    assert [gate.failed(emfile, 10.0 + i / 100) for i in range(50)] == [1.0] * 50
    assert len(log.lines) == 1 and "pausing accepts for 1 s" in log.lines[0]
    gate.failed(emfile, 11.5)
    assert len(log.lines) == 2 and "(49 more since the last report)" in log.lines[1]


def test_a_connection_aborted_before_accept_is_no_reason_to_rest() -> None:
    log = Log()
    assert AcceptGate(log).failed(OSError(errno.ECONNABORTED, "aborted"), 0.0) == 0.0
    assert log.lines == []


@pytest.mark.parametrize(
    ("head", "sent", "gathers"),
    [
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\n\r\n", b"abc", True),
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\n", b"abc", False),  # all here
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 300000\r\n\r\n", b"a", False),  # big
        # The client waits for 100 Continue, which the app's first read sends.
        (b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10\r\nExpect: 100-continue\r\n\r\n", b"",
         False),
        (b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n", b"5\r\nab", False),
        (GET, b"", False),
    ],
)  # fmt: skip
def test_a_small_body_still_arriving_is_gathered_before_the_app(
    head: bytes, sent: bytes, gathers: bool
) -> None:
    conn, req = parsed(head + sent)
    assert policy().gathers(req, conn) is gathers


def refused(data: bytes) -> tuple[ServerConnection, int]:
    """A connection whose parser refused ``data``'s head, and the status it refused with."""
    conn = ServerConnection(Limits())
    conn.receive_data(data)
    with pytest.raises(ProtocolError) as caught:
        conn.next_event()
    return conn, caught.value.status


PRIOR = HTTP2Policy(H2Settings(), prior_knowledge=True)


@pytest.mark.parametrize(
    ("data", "h2", "turn"),
    [
        (PREFACE, PRIOR, "h2"),  # RFC 9113 §3.3: h2c with prior knowledge
        (PREFACE + b"\x00\x00\x00\x04", PRIOR, "h2"),  # frames right behind it
        (PREFACE[:18], PRIOR, "more"),  # the preface in parts
        (PREFACE, HTTP2Policy(H2Settings(), upgrade=True), "reject"),  # prior knowledge off
        (PREFACE, None, "reject"),  # HTTP/2 off
        (b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n", PRIOR, "reject"),  # not the preface
        (b"GET / HTTP/3.0\r\nHost: x\r\n\r\n", PRIOR, "reject"),  # another 505
    ],
)
def test_a_refused_head_is_told_from_the_http2_preface(
    data: bytes, h2: HTTP2Policy | None, turn: str
) -> None:
    conn, status = refused(data)
    assert status == 505
    assert policy(http2=h2).preface(status, conn) == turn


def test_only_a_505_can_be_the_preface() -> None:
    conn, status = refused(b"GET / HTTP/1.1\r\nHost: x\r\nBad Header: y\r\n\r\n")
    assert status == 400
    assert policy(http2=PRIOR).preface(status, conn) == "reject"
