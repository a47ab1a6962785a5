"""WebSocket echo load generator: N connections, one message in flight each, for a fixed time.

    python benchmarks/wsload.py --url ws://127.0.0.1:8000/ws --connections 32 --duration 10

Each connection sends a small text message, waits for its echo, and sends the next one. The
connections are spread over `--processes` processes (each with its own event loop, uvloop when it
is installed), so the client does not share one GIL; they start together after every process has
finished its handshakes. One JSON object goes to stdout: messages echoed within the measured
window, messages per second, latency p50/p99 (ms), and error counts. The client is ours (RFC 6455
framing over asyncio.Protocol, no library), so that it costs as little CPU as possible per message.

With `--deflate` every connection offers permessage-deflate (RFC 7692) as browsers do
(`permessage-deflate; client_max_window_bits`), compresses each message it sends and inflates
each echo; a server that does not agree counts as a failed handshake, so a compressed run never
quietly measures uncompressed traffic.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import contextlib
import functools
import hashlib
import json
import math
import multiprocessing
import os
import queue
import sys
import time
import zlib
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any, cast
from urllib.parse import urlsplit

# RFC 6455 section 1.3: the GUID hashed with the client's key into Sec-WebSocket-Accept.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
_OP_CONT, _OP_TEXT, _OP_BINARY, _OP_CLOSE, _OP_PING, _OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA
MAX_HANDSHAKE_BYTES = 65536
MAX_FRAME_BYTES = 1 << 20  # an echo of a small message is never near this; more is an error
CONNECT_TIMEOUT_S = 10.0
START_TIMEOUT_S = 30.0  # every process must have connected within this
CLOSE_TIMEOUT_S = 1.0
DEFLATE_OFFER = "permessage-deflate; client_max_window_bits"
_TAIL = (
    b"\x00\x00\xff\xff"  # RFC 7692 7.2.1: taken off each compressed message, put back to inflate
)
# Latency histogram: bucket i holds latencies near 2 ** (i / 32) microseconds (about 2 % wide),
# so memory stays bounded however long the run.
_BUCKETS_PER_OCTAVE = 32


class FrameError(ValueError):
    """The server sent bytes that are not a valid WebSocket frame for a client to receive."""


def accept_value(key: bytes) -> bytes:
    """The Sec-WebSocket-Accept a server must answer to this Sec-WebSocket-Key (RFC 6455 4.2.2)."""
    return base64.b64encode(hashlib.sha1(key + _GUID).digest())


def client_frame(opcode: int, payload: bytes, mask: bytes) -> bytes:
    """One final frame, masked as RFC 6455 5.3 requires of every client frame."""
    size = len(payload)
    if size < 126:
        head = bytes((0x80 | opcode, 0x80 | size))
    elif size < 65536:
        head = bytes((0x80 | opcode, 0x80 | 126)) + size.to_bytes(2, "big")
    else:
        head = bytes((0x80 | opcode, 0x80 | 127)) + size.to_bytes(8, "big")
    if not size:
        return head + mask
    key = (mask * (size // 4 + 1))[:size]
    masked = int.from_bytes(payload, "big") ^ int.from_bytes(key, "big")
    return head + mask + masked.to_bytes(size, "big")


def parse_frames(buffer: bytearray, rsv1: bool = False) -> list[tuple[bool, int, bytes]]:
    """Take every complete frame off the front of buffer, as (fin, opcode, payload); a partial
    frame stays in it. Server frames must be unmasked, with no reserved bits (RFC 6455 5.1, 5.2)
    but RSV1 when permessage-deflate was agreed (`rsv1`); the opcode then carries 0x40 for it."""
    frames: list[tuple[bool, int, bytes]] = []
    allowed = 0x40 if rsv1 else 0
    # Each pass removes one whole frame from buffer, or stops.
    while len(buffer) >= 2:
        first, second = buffer[0], buffer[1]
        if first & 0x70 & ~allowed or second & 0x80:
            raise FrameError("reserved bits or a mask on a server frame")
        size, start = second & 0x7F, 2
        if size == 126:
            size, start = int.from_bytes(buffer[2:4], "big"), 4
        elif size == 127:
            size, start = int.from_bytes(buffer[2:10], "big"), 10
        if size > MAX_FRAME_BYTES:
            raise FrameError(f"frame of {size} bytes")
        if len(buffer) < start + size:
            break
        frames.append((bool(first & 0x80), first & 0x4F, bytes(buffer[start : start + size])))
        del buffer[: start + size]
    return frames


def handshake_request(host: str, port: int, path: str, key: bytes, deflate: bool = False) -> bytes:
    """The opening handshake's GET (RFC 6455 4.1), offering permessage-deflate if asked."""
    offer = f"Sec-WebSocket-Extensions: {DEFLATE_OFFER}\r\n" if deflate else ""
    return (
        f"GET {path} HTTP/1.1\r\nHost: {host}:{port}\r\nUpgrade: websocket\r\n"
        f"Connection: Upgrade\r\nSec-WebSocket-Key: {key.decode()}\r\n"
        f"Sec-WebSocket-Version: 13\r\n{offer}\r\n"
    ).encode()


def response_headers(head: bytes) -> tuple[str, dict[str, str]]:
    """The status line and the headers (lower-case names) of a response head."""
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.split(":", 1) for line in lines[1:] if ":" in line)
    return lines[0], {k.strip().lower(): v.strip() for k, v in headers.items()}


def check_handshake(head: bytes, key: bytes) -> str | None:
    """None when the response head accepts the upgrade, else why not."""
    status_line, headers = response_headers(head)
    status = status_line.split(" ", 2)
    if len(status) < 2 or status[1] != "101":
        return f"status {status_line!r}"
    if headers.get("sec-websocket-accept") != accept_value(key).decode():
        return "wrong Sec-WebSocket-Accept"
    return None


class Deflate:
    """The client's side of permessage-deflate as the server's answer set it (RFC 7692 7)."""

    def __init__(self, answer: str) -> None:
        params = dict(p.strip().lower().partition("=")[::2] for p in answer.split(";")[1:])
        self.fresh_each = "client_no_context_takeover" in params
        self.bits = int(params.get("client_max_window_bits", "").strip('"') or 15)
        self.compressor = zlib.compressobj(6, zlib.DEFLATED, -self.bits)
        self.decompressor = zlib.decompressobj(wbits=-15)  # any server window fits in 15 bits

    def compress(self, data: bytes) -> bytes:
        if self.fresh_each:
            self.compressor = zlib.compressobj(6, zlib.DEFLATED, -self.bits)
        return bytes(self.compressor.compress(data) + self.compressor.flush(zlib.Z_SYNC_FLUSH))[:-4]

    def inflate(self, data: bytes) -> bytes:
        return bytes(self.decompressor.decompress(data + _TAIL))


def agreed_deflate(head: bytes) -> Deflate | None:
    """The permessage-deflate the response agreed to, if any."""
    answer = response_headers(head)[1].get("sec-websocket-extensions", "")
    if answer.split(";")[0].strip().lower() != "permessage-deflate":
        return None
    return Deflate(answer)


def bucket(latency_s: float) -> int:
    """The histogram bucket of a latency."""
    return max(0, round(math.log2(max(latency_s * 1e6, 1.0)) * _BUCKETS_PER_OCTAVE))


def percentile_ms(histogram: dict[int, int], fraction: float) -> float:
    """The latency (ms) below which `fraction` of the samples fall, at the histogram's
    resolution; 0.0 when there are no samples."""
    total = sum(histogram.values())
    if total == 0:
        return 0.0
    rank = math.ceil(fraction * total)
    seen = 0
    for index in sorted(histogram):
        seen += histogram[index]
        if seen >= rank:
            break
    return float(2 ** (index / _BUCKETS_PER_OCTAVE) / 1000)


@dataclass
class Tally:
    """One process's counts; added up over the processes."""

    messages: int = 0
    connect_errors: int = 0  # TCP connect failed or the handshake got no answer in time
    handshake_failures: int = 0  # the server answered the upgrade with something else than 101
    read_errors: int = 0  # connection lost, bad frame, close from the server, or a wrong echo
    timeouts: int = 0  # a message still unanswered 2 s (--timeout) after it was sent, at the end
    histogram: dict[int, int] = field(default_factory=dict)


class EchoClient(asyncio.Protocol):
    """One WebSocket connection: the handshake, then send / await echo / send again until the
    deadline."""

    def __init__(
        self, host: str, port: int, path: str, message: bytes, tally: Tally, deflate: bool
    ) -> None:
        self.key = base64.b64encode(os.urandom(16))
        self.request = handshake_request(host, port, path, self.key, deflate)
        self.offered = deflate
        self.deflate: Deflate | None = None
        self.message = message
        self.tally = tally
        self.buffer = bytearray()
        self.fragments: list[bytes] = []
        self.compressed = False
        self.transport: asyncio.Transport | None = None
        self.opened: asyncio.Future[str | None] = asyncio.get_running_loop().create_future()
        self.closed: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        self.start = 0.0
        self.deadline = 0.0
        self.sent_at = 0.0  # 0.0 when no message is in flight
        self.stopping = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports implement asyncio.Transport without subclassing it.
        self.transport = cast(asyncio.Transport, transport)
        self.transport.write(self.request)

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.opened.done():
            self.opened.set_result("connection closed during the handshake")
        elif not self.stopping:
            self.tally.read_errors += 1
            self.stopping = True
        if not self.closed.done():
            self.closed.set_result(None)

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        if not self.opened.done():
            end = self.buffer.find(b"\r\n\r\n")
            if end < 0:
                if len(self.buffer) > MAX_HANDSHAKE_BYTES:
                    self._fail_handshake("response head too long")
                return
            head = bytes(self.buffer[:end])
            problem = check_handshake(head, self.key)
            if problem is None and self.offered:
                self.deflate = agreed_deflate(head)
                if self.deflate is None:
                    problem = "permessage-deflate offered but not agreed"
            del self.buffer[: end + 4]
            self.opened.set_result(problem)
            if problem is not None:
                self._abort()
                return
        try:
            frames = parse_frames(self.buffer, self.deflate is not None)
        except FrameError:
            self._error()
            return
        for fin, opcode, payload in frames:
            self._frame(fin, opcode, payload)

    def run(self, start: float, deadline: float) -> None:
        """Start the echo loop at `start`; no message is sent after `deadline`."""
        self.start, self.deadline = start, deadline
        self._send()

    def stop(self) -> None:
        """Send a close frame (1000) and stop counting."""
        self.stopping = True
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(_OP_CLOSE, (1000).to_bytes(2, "big"), os.urandom(4)))

    def _send(self) -> None:
        assert self.transport is not None
        self.sent_at = time.monotonic()
        if self.deflate is None:
            self.transport.write(client_frame(_OP_TEXT, self.message, os.urandom(4)))
        else:  # RFC 7692 6: RSV1 (0x40) marks a compressed message
            payload = self.deflate.compress(self.message)
            self.transport.write(client_frame(0x40 | _OP_TEXT, payload, os.urandom(4)))

    def _frame(self, fin: bool, opcode: int, payload: bytes) -> None:
        if opcode == _OP_PING:
            self._control(_OP_PONG, payload)
        elif opcode == _OP_CLOSE:
            if not self.stopping:
                self.tally.read_errors += 1
                self.stopping = True
                self._control(_OP_CLOSE, payload[:2])
            self._abort()
        elif opcode & 0x0F in (_OP_TEXT, _OP_BINARY, _OP_CONT):
            if not self.fragments:
                self.compressed = bool(opcode & 0x40)
            self.fragments.append(payload)
            if fin:
                message = b"".join(self.fragments)
                self.fragments.clear()
                if self.compressed:
                    if self.deflate is None:
                        self._error()
                        return
                    message = self.deflate.inflate(message)
                self._message(message)

    def _message(self, payload: bytes) -> None:
        if self.stopping or not self.sent_at:
            return
        now = time.monotonic()
        if payload != self.message:
            self._error()
            return
        if now <= self.deadline:
            self.tally.messages += 1
            index = bucket(now - self.sent_at)
            self.tally.histogram[index] = self.tally.histogram.get(index, 0) + 1
            self._send()
        else:
            self.sent_at = 0.0

    def _control(self, opcode: int, payload: bytes) -> None:
        if self.transport is not None and not self.transport.is_closing():
            self.transport.write(client_frame(opcode, payload, os.urandom(4)))

    def _error(self) -> None:
        if not self.stopping:
            self.tally.read_errors += 1
            self.stopping = True
        self._abort()

    def _fail_handshake(self, why: str) -> None:
        if not self.opened.done():
            self.opened.set_result(why)
        self._abort()

    def _abort(self) -> None:
        if self.transport is not None:
            self.transport.abort()


async def _connect(
    host: str, port: int, path: str, message: bytes, tally: Tally, deflate: bool
) -> EchoClient | None:
    """One connection through its handshake, or None (counted in tally) when it fails."""
    loop = asyncio.get_running_loop()
    factory = functools.partial(EchoClient, host, port, path, message, tally, deflate)
    try:
        _, client = await asyncio.wait_for(
            loop.create_connection(factory, host, port), CONNECT_TIMEOUT_S
        )
        problem = await asyncio.wait_for(asyncio.shield(client.opened), CONNECT_TIMEOUT_S)
    except (OSError, asyncio.TimeoutError):
        tally.connect_errors += 1
        return None
    if problem is not None:
        tally.handshake_failures += 1
        return None
    return client


async def _close_all(clients: list[EchoClient]) -> None:
    for client in clients:
        client.stop()
    pending = [c.closed for c in clients if not c.closed.done()]
    if pending:
        await asyncio.wait(pending, timeout=CLOSE_TIMEOUT_S)
    for client in clients:
        client._abort()


@dataclass(frozen=True)
class Plan:
    """What one process does."""

    url: str
    connections: int
    duration_s: float
    message: bytes
    timeout_s: float
    deflate: bool = False


async def run_process(plan: Plan, barrier: Any) -> Tally:
    """Connect, wait at the barrier for every other process, run for the duration, close."""
    parts = urlsplit(plan.url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    path = parts.path or "/"
    tally = Tally()
    opened = await asyncio.gather(
        *(
            _connect(host, port, path, plan.message, tally, plan.deflate)
            for _ in range(plan.connections)
        )
    )
    clients = [c for c in opened if c is not None]
    await asyncio.get_running_loop().run_in_executor(None, barrier.wait, START_TIMEOUT_S)
    start = time.monotonic()
    deadline = start + plan.duration_s
    for client in clients:
        client.run(start, deadline)
    await asyncio.sleep(plan.duration_s)
    for client in clients:
        if client.sent_at and not client.stopping and client.sent_at < deadline - plan.timeout_s:
            tally.timeouts += 1
    await _close_all(clients)
    return tally


def _new_loop() -> asyncio.AbstractEventLoop:
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


def _process_main(plan: Plan, barrier: Any, results: Any) -> None:
    loop = _new_loop()
    try:
        results.put(asdict(loop.run_until_complete(run_process(plan, barrier))))
    except Exception as exc:  # the parent reports it; a child's traceback would be lost
        results.put({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        loop.close()


def split(total: int, parts: int) -> list[int]:
    """total connections spread over parts processes as evenly as possible (none empty)."""
    parts = max(1, min(parts, total))
    return [total // parts + (1 if i < total % parts else 0) for i in range(parts)]


def merge(tallies: Sequence[dict[str, Any]], duration_s: float) -> dict[str, Any]:
    """The processes' tallies as one report."""
    histogram: dict[int, int] = {}
    totals = dict.fromkeys(("messages", "connect_errors", "handshake_failures"), 0)
    totals.update(read_errors=0, timeouts=0)
    for tally in tallies:
        for name in totals:
            totals[name] += int(tally[name])
        for index, count in tally["histogram"].items():
            histogram[int(index)] = histogram.get(int(index), 0) + int(count)
    return {
        **totals,
        "duration_s": duration_s,
        "messages_per_s": totals["messages"] / duration_s,
        "p50_ms": percentile_ms(histogram, 0.50),
        "p99_ms": percentile_ms(histogram, 0.99),
    }


def run(plan: Plan, processes: int) -> dict[str, Any]:
    """Run the load over `processes` forked processes and merge their tallies."""
    ctx = multiprocessing.get_context("fork")
    shares = split(plan.connections, processes)
    barrier = ctx.Barrier(len(shares))
    results = ctx.Queue()
    procs = [
        ctx.Process(target=_process_main, args=(_share(plan, n), barrier, results), daemon=True)
        for n in shares
    ]
    for proc in procs:
        proc.start()
    limit = time.monotonic() + START_TIMEOUT_S + plan.duration_s + CLOSE_TIMEOUT_S + 30
    tallies: list[dict[str, Any]] = []
    try:
        for _ in procs:
            tallies.append(results.get(timeout=max(0.1, limit - time.monotonic())))
    except queue.Empty:
        tallies.append({"error": "a load process did not report in time"})
    finally:
        for proc in procs:
            proc.join(timeout=5)
            if proc.is_alive():
                proc.kill()
                proc.join(timeout=5)
    errors = [t["error"] for t in tallies if "error" in t]
    if errors:
        raise RuntimeError("; ".join(errors))
    return merge(tallies, plan.duration_s)


def _share(plan: Plan, connections: int) -> Plan:
    return Plan(plan.url, connections, plan.duration_s, plan.message, plan.timeout_s, plan.deflate)


def main(argv: Sequence[str]) -> int:
    """Parse the options, run, print the JSON report; 1 if the run itself broke."""
    parser = argparse.ArgumentParser(prog="python benchmarks/wsload.py", description=__doc__)
    parser.add_argument("--url", required=True, help="ws://127.0.0.1:PORT/PATH")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds")
    parser.add_argument("--processes", type=int, default=2)
    parser.add_argument("--message-bytes", type=int, default=16, help="text message size")
    parser.add_argument("--timeout", type=float, default=2.0, help="seconds without an echo")
    parser.add_argument(
        "--deflate", action="store_true", help="offer permessage-deflate and compress (RFC 7692)"
    )
    args = parser.parse_args(argv)
    if urlsplit(args.url).scheme != "ws":
        parser.error("--url must be ws://")
    if args.connections < 1 or args.duration <= 0 or args.processes < 1:
        parser.error("--connections, --duration and --processes must be positive")
    message = (b"0123456789abcdef" * (args.message_bytes // 16 + 1))[: args.message_bytes]
    plan = Plan(args.url, args.connections, args.duration, message, args.timeout, args.deflate)
    try:
        report = run(plan, args.processes)
    except RuntimeError as exc:
        print(f"wsload: {exc}", file=sys.stderr)
        return 1
    with contextlib.suppress(BrokenPipeError):
        print(json.dumps(report))
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
