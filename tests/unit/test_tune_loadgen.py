"""The load generator's response reader (length, chunked, to-the-close, interim, HEAD) and its
latency histogram, without sockets."""

from __future__ import annotations

import base64
import time
from typing import Any

import pytest

from corral.tune import stats
from corral.tune.loadgen import Client, Job, Slot


class FakeTransport:
    def __init__(self) -> None:
        self.written: list[bytes] = []
        self.aborted = False

    def write(self, data: bytes) -> None:
        self.written.append(data)

    def abort(self) -> None:
        self.aborted = True

    def get_extra_info(self, name: str) -> Any:
        return None


def client(head: bool = False) -> tuple[Client, FakeTransport, list[str]]:
    request = base64.b64encode(b"GET / HTTP/1.1\r\nHost: h\r\n\r\n").decode()
    now = time.monotonic()
    job = Job(
        {
            "host": "127.0.0.1",
            "port": 1,
            "requests": [[request, head]],
            "connections": 1,
            "start_at": now - 1,
            "end_at": now + 60,
        }
    )
    job.tally.counting = True
    slot = Slot(job, 0)
    events: list[str] = []
    slot.reconnect = lambda: events.append("reconnect")  # type: ignore[method-assign]
    conn = Client(slot)
    transport = FakeTransport()
    conn.connection_made(transport)  # type: ignore[arg-type]
    return conn, transport, events


def test_content_length_in_pieces_then_the_next_request():
    conn, transport, _ = client()
    response = b"HTTP/1.1 200 OK\r\nContent-Length: 5\r\n\r\nhello"
    for i in range(len(response)):
        conn.data_received(response[i : i + 1])
    tally = conn.slot.job.tally
    assert tally.responses == 1 and tally.statuses == {"2xx": 1}
    assert len(transport.written) == 2  # the next request went out
    conn.data_received(b"HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\n\r\n")
    assert tally.statuses == {"2xx": 1, "4xx": 1}


def test_chunked_with_extensions_and_trailers():
    conn, transport, _ = client()
    conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n5;x=y\r\nhel")
    conn.data_received(b"lo\r\n0\r\nX-Trailer: 1\r\n")
    assert conn.slot.job.tally.responses == 0
    conn.data_received(b"\r\n")
    assert conn.slot.job.tally.responses == 1 and len(transport.written) == 2
    conn.data_received(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n0\r\n\r\n")
    assert conn.slot.job.tally.responses == 2


def test_connection_close_reconnects():
    conn, transport, events = client()
    conn.data_received(b"HTTP/1.1 200 OK\r\nConnection: close\r\nContent-Length: 2\r\n\r\nok")
    assert conn.slot.job.tally.responses == 1
    assert transport.aborted and events == ["reconnect"]
    conn.connection_lost(None)  # the close we made: nothing more happens
    assert events == ["reconnect"] and conn.slot.job.tally.read_errors == 0


def test_body_to_the_close_and_a_lost_response():
    conn, _, events = client()
    conn.data_received(b"HTTP/1.0 200 OK\r\n\r\nsome body")
    assert conn.slot.job.tally.responses == 0
    conn.connection_lost(None)
    assert conn.slot.job.tally.responses == 1 and events == ["reconnect"]
    conn, _, _ = client()
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 10\r\n\r\nabc")
    conn.connection_lost(ConnectionResetError())
    assert conn.slot.job.tally.read_errors == 1 and conn.slot.job.tally.responses == 0


def test_interim_response_and_head():
    conn, _, _ = client()
    conn.data_received(
        b"HTTP/1.1 100 Continue\r\n\r\nHTTP/1.1 201 Created\r\nContent-Length: 0\r\n\r\n"
    )
    assert conn.slot.job.tally.statuses == {"2xx": 1}
    conn, transport, _ = client(head=True)
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 1000\r\n\r\n")
    assert conn.slot.job.tally.responses == 1 and len(transport.written) == 2


def test_outside_the_window_nothing_counts_and_overdue_requests_time_out():
    conn, _, events = client()
    conn.slot.job.tally.counting = False
    conn.data_received(b"HTTP/1.1 200 OK\r\nContent-Length: 0\r\n\r\n")
    assert conn.slot.job.tally.responses == 0
    conn.slot.job.tally.counting = True
    assert conn.overdue(time.perf_counter() + 11, 10.0)
    conn.time_out()
    assert conn.slot.job.tally.timeouts == 1 and events == ["reconnect"]


def test_histogram_percentiles_within_two_percent():
    latencies = [i / 1000 for i in range(1, 1001)]  # 1 ms .. 1 s
    histogram: dict[int, int] = {}
    for seconds in latencies:
        bucket = stats.bucket_of(seconds)
        histogram[bucket] = histogram.get(bucket, 0) + 1
    halves = [dict(list(histogram.items())[::2]), dict(list(histogram.items())[1::2])]
    merged = stats.merge([{str(k): v for k, v in h.items()} for h in halves])  # as JSON has it
    assert merged == histogram
    assert stats.percentile(merged, 0.5) == pytest.approx(0.5, rel=0.02)
    assert stats.percentile(merged, 0.99) == pytest.approx(0.99, rel=0.02)
    assert stats.mean(merged) == pytest.approx(0.5005, rel=0.02)
    assert stats.percentile({}, 0.99) == 0.0 and stats.bucket_of(0.0) == 0
