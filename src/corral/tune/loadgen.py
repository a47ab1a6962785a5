"""The load generator: one process of `python -m corral.tune.loadgen`, closed-loop keep-alive.

It reads a JSON job (one line) on stdin and opens `connections` connections, each with one
request in flight (the next is sent when the answer is complete). Once they are open (or
CONNECT_LIMIT_S has passed) it prints `{"ready": N}`, and reads a second line holding
`start_at` and `end_at` (time.monotonic(), which every process on the machine shares): it
counts the answers that complete between them, then prints one JSON object. Everything is
bounded: connecting, each request (`request_timeout`), the run (`end_at`) and the close after.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import json
import socket
import sys
import time
from dataclasses import dataclass, field
from typing import Any, cast

from corral.tune.stats import bucket_of

HEAD_LIMIT = 65536
CONNECT_LIMIT_S = 15.0
CLOSE_WAIT_S = 1.0
RETRY_PAUSE_S = 0.05


@dataclass
class Tally:
    """What one generator process saw inside the measured window."""

    counting: bool = False
    responses: int = 0
    statuses: dict[str, int] = field(default_factory=dict)
    histogram: dict[int, int] = field(default_factory=dict)
    connect_errors: int = 0
    read_errors: int = 0
    timeouts: int = 0
    cpu_start: float = 0.0
    cpu_end: float = 0.0
    window_start: float = 0.0
    window_end: float = 0.0
    connected: int = 0  # connections open when the window opened

    def answered(self, status: int, seconds: float) -> None:
        """One complete response."""
        if not self.counting:
            return
        self.responses += 1
        key = f"{status // 100}xx"
        self.statuses[key] = self.statuses.get(key, 0) + 1
        bucket = bucket_of(seconds)
        self.histogram[bucket] = self.histogram.get(bucket, 0) + 1


class Job:
    """The shared state of one process's connections."""

    def __init__(self, spec: dict[str, Any]) -> None:
        self.host = str(spec["host"])
        self.port = int(spec["port"])
        self.requests = [(base64.b64decode(raw), bool(head)) for raw, head in spec["requests"]]
        self.connections = int(spec["connections"])
        self.offset = int(spec.get("offset", 0))
        self.start_at = 0.0
        self.end_at = time.monotonic() + CONNECT_LIMIT_S  # until the window is known
        self.request_timeout = float(spec.get("request_timeout", 10.0))
        self.tally = Tally()
        self.stopping = False
        self.slots: list[Slot] = []


class Slot:
    """One client: a connection (re-made when the server closes it) and its next request."""

    def __init__(self, job: Job, index: int) -> None:
        self.job = job
        self.count = job.offset + index  # clients start at different places in the request mix
        self.protocol: Client | None = None
        self.task: asyncio.Task[None] | None = None

    async def connect(self) -> None:
        """Open a connection, retrying (bounded by the end of the run) when it fails."""
        loop = asyncio.get_running_loop()
        job = self.job
        while not job.stopping and time.monotonic() < job.end_at:
            try:
                await asyncio.wait_for(
                    loop.create_connection(lambda: Client(self), job.host, job.port),
                    timeout=max(0.01, min(5.0, job.end_at - time.monotonic())),
                )
                return
            except (OSError, asyncio.TimeoutError):
                if job.tally.counting:
                    job.tally.connect_errors += 1
                await asyncio.sleep(RETRY_PAUSE_S)

    def reconnect(self) -> None:
        """Start a new connection in the background, unless the run is over."""
        if not self.job.stopping:
            self.task = asyncio.get_running_loop().create_task(self.connect())

    def next_request(self) -> tuple[bytes, bool]:
        requests = self.job.requests
        self.count += 1
        return requests[self.count % len(requests)]


class Client(asyncio.Protocol):
    """One connection: sends a request, parses the response (length, chunked or close)."""

    def __init__(self, slot: Slot) -> None:
        self.slot = slot
        self.transport: asyncio.Transport | None = None
        self.buf = bytearray()
        self.sent_at = 0.0
        self.waiting = False
        self.is_head = False
        self._reset_response()

    def _reset_response(self) -> None:
        self.status = 0
        self.length = -1  # -1: no head yet; -2: body runs to the close; -3: chunked
        self.chunk_left = 0
        self.close_after = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = cast(asyncio.Transport, transport)  # uvloop's is not a subclass
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.slot.protocol = self
        self.send()

    def send(self) -> None:
        if self.slot.job.stopping or self.transport is None:
            return
        data, self.is_head = self.slot.next_request()
        self._reset_response()
        self.sent_at = time.perf_counter()
        self.waiting = True
        self.transport.write(data)

    def data_received(self, data: bytes) -> None:
        self.buf += data
        if self.waiting and self._parse():
            self._complete()

    def _parse(self) -> bool:
        """Whether the response in the buffer is complete; consumes what it has read."""
        buf = self.buf
        while self.length == -1:
            end = buf.find(b"\r\n\r\n")
            if end < 0:
                if len(buf) > HEAD_LIMIT:
                    self._fail()
                return False
            self._read_head(bytes(buf[:end]).lower())
            del buf[: end + 4]
        if self.length >= 0:
            if len(buf) < self.length:
                return False
            del buf[: self.length]
            return True
        if self.length == -3:
            return self._parse_chunks()
        return False  # runs to the close

    def _read_head(self, head: bytes) -> None:
        status = int(head[9:12]) if len(head) >= 12 and head[9:12].isdigit() else 0
        if 100 <= status < 200:
            return  # an interim response: the real head follows
        self.status = status
        self.close_after = b"\r\nconnection: close" in head or head.startswith(b"http/1.0")
        if self.is_head or status in (204, 304):
            self.length = 0
        elif b"\r\ntransfer-encoding:" in head and b"chunked" in head:
            self.length = -3
        else:
            start = head.find(b"\r\ncontent-length:")
            if start < 0:
                self.length = -2
            else:
                stop = head.find(b"\r\n", start + 2)
                text = head[start + 17 : stop if stop >= 0 else len(head)]
                self.length = int(text.strip() or b"0")

    def _parse_chunks(self) -> bool:
        buf = self.buf
        while True:
            if self.chunk_left:
                taken = min(self.chunk_left, len(buf))
                del buf[:taken]
                self.chunk_left -= taken
                if self.chunk_left:
                    return False
            line_end = buf.find(b"\r\n")
            if line_end < 0:
                return False
            size = int(bytes(buf[:line_end]).split(b";")[0].strip() or b"0", 16)
            if size:
                del buf[: line_end + 2]
                self.chunk_left = size + 2
                continue
            trailer_end = buf.find(b"\r\n\r\n", line_end)
            if buf[line_end : line_end + 4] != b"\r\n\r\n" and trailer_end < 0:
                return False
            stop = line_end + 4 if trailer_end < 0 else trailer_end + 4
            del buf[:stop]
            return True

    def _complete(self) -> None:
        self.waiting = False
        self.slot.job.tally.answered(self.status, time.perf_counter() - self.sent_at)
        if self.close_after:
            self._drop()
        else:
            self.send()

    def _fail(self) -> None:
        if self.slot.job.tally.counting and not self.slot.job.stopping:
            self.slot.job.tally.read_errors += 1
        self._drop()

    def _drop(self) -> None:
        self.waiting = False
        if self.transport is not None:
            self.transport.abort()
            self.transport = None
        self.slot.reconnect()

    def connection_lost(self, exc: Exception | None) -> None:
        if self.transport is None:
            return  # dropped by us; the slot is already reconnecting
        self.transport = None
        if self.waiting and self.length == -2:
            self.waiting = False
            self.slot.job.tally.answered(self.status, time.perf_counter() - self.sent_at)
        elif self.waiting and self.slot.job.tally.counting and not self.slot.job.stopping:
            self.slot.job.tally.read_errors += 1
        self.waiting = False
        self.slot.reconnect()

    def overdue(self, now: float, limit: float) -> bool:
        return self.waiting and now - self.sent_at > limit

    def time_out(self) -> None:
        if self.slot.job.tally.counting:
            self.slot.job.tally.timeouts += 1
        self._drop()


async def _sweep(job: Job) -> None:
    """Time out requests unanswered for `request_timeout`, twice a second until the end."""
    while not job.stopping:
        await asyncio.sleep(0.5)
        now = time.perf_counter()
        for slot in job.slots:
            client = slot.protocol
            if client is not None and client.overdue(now, job.request_timeout):
                client.time_out()


def _open_window(job: Job) -> None:
    tally = job.tally
    tally.counting = True
    tally.connected = sum(
        1 for s in job.slots if s.protocol is not None and s.protocol.transport is not None
    )
    tally.window_start = time.monotonic()
    tally.cpu_start = time.process_time()


def _close_window(job: Job) -> None:
    tally = job.tally
    tally.counting = False
    tally.window_end = time.monotonic()
    tally.cpu_end = time.process_time()
    job.stopping = True


async def _connect_all(job: Job) -> int:
    """Open every client's connection (bounded by CONNECT_LIMIT_S); how many are open."""
    loop = asyncio.get_running_loop()
    job.slots = [Slot(job, index) for index in range(job.connections)]
    tasks = [loop.create_task(slot.connect()) for slot in job.slots]
    for slot, task in zip(job.slots, tasks, strict=True):
        slot.task = task
    await asyncio.wait(tasks, timeout=CONNECT_LIMIT_S)
    return sum(1 for s in job.slots if s.protocol is not None and s.protocol.transport is not None)


async def run(job: Job) -> Tally:
    """Connect, say so, learn the window, load until its end, close; returns the tally."""
    loop = asyncio.get_running_loop()
    connected = await _connect_all(job)
    print(json.dumps({"ready": connected}), flush=True)
    line = await loop.run_in_executor(None, sys.stdin.readline)
    window = json.loads(line) if line.strip() else {}
    now = time.monotonic()
    job.start_at = float(window.get("start_at", now))
    job.end_at = float(window.get("end_at", now))
    loop.call_later(max(0.0, job.start_at - time.monotonic()), _open_window, job)
    loop.call_later(max(0.0, job.end_at - time.monotonic()), _close_window, job)
    sweeper = loop.create_task(_sweep(job))
    await asyncio.sleep(max(0.0, job.end_at - time.monotonic()) + 0.01)
    if not job.tally.window_end:
        _close_window(job)
    for slot in job.slots:
        if slot.protocol is not None and slot.protocol.transport is not None:
            slot.protocol.transport.abort()
        if slot.task is not None and not slot.task.done():
            slot.task.cancel()
    sweeper.cancel()
    await asyncio.sleep(0)
    return job.tally


def result(job: Job, loop_name: str) -> dict[str, Any]:
    """The tally as the JSON the parent reads."""
    tally = job.tally
    return {
        "responses": tally.responses,
        "statuses": tally.statuses,
        "histogram": tally.histogram,
        "connect_errors": tally.connect_errors,
        "read_errors": tally.read_errors,
        "timeouts": tally.timeouts,
        "cpu_s": tally.cpu_end - tally.cpu_start,
        "window_s": tally.window_end - tally.window_start,
        "connected": tally.connected,
        "loop": loop_name,
    }


def _runner(use_uvloop: bool) -> tuple[Any, str]:
    if use_uvloop:
        try:
            import uvloop

            return uvloop.new_event_loop, "uvloop"
        except ImportError:
            pass
    return asyncio.new_event_loop, "asyncio"


def main() -> int:
    """Read the job from stdin, run it, print the result as the last line of JSON."""
    spec = json.loads(sys.stdin.readline())
    job = Job(spec)
    factory, name = _runner(bool(spec.get("uvloop", True)))
    loop = factory()
    # The parent sends the window within CONNECT_LIMIT_S of its own wait; runs last minutes.
    bound = CONNECT_LIMIT_S * 2 + float(spec.get("longest_s", 600))
    try:
        loop.run_until_complete(asyncio.wait_for(run(job), bound))
    finally:
        with contextlib.suppress(Exception):
            loop.run_until_complete(asyncio.sleep(0))
        loop.close()
    print(json.dumps(result(job, name)))
    return 0


if __name__ == "__main__":
    sys.exit(main())
