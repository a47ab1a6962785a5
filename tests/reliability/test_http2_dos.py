"""The known HTTP/2 denial-of-service patterns against a real corral on loopback (h2c by prior
knowledge), the threaded and the asyncio worker: each attack meets its defence, and the same
worker then serves a normal client over HTTP/2 and HTTP/1.1 without a restart.

The attacker is a plain socket: h2 (client side) makes the ordinary frames, hyperframe and
hpack the ones h2 will not; what the server sends back is parsed by hyperframe, never fed
to h2. Every loop is bounded in count and time.
"""

from __future__ import annotations

import select
import socket
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

pytest.importorskip("h2")

from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.errors import ErrorCodes
from h2.events import ResponseReceived, StreamEnded
from h2.settings import SettingCodes
from hpack import Encoder, NeverIndexedHeaderTuple
from hyperframe.frame import (
    ContinuationFrame,
    DataFrame,
    Frame,
    GoAwayFrame,
    HeadersFrame,
    PingFrame,
    PriorityFrame,
    RstStreamFrame,
    SettingsFrame,
)

from tests.e2e.conftest import BOOTING, CorralProcess, http_get, kill_leftovers, proc_stat

HERE = Path(__file__).parent
MAX_HEADER_LIST = 16384  # --http2-max-header-list-size
MAX_STREAMS = 10  # --http2-max-concurrent-streams
SEND_TIMEOUT = 2  # --send-timeout
CLOSE_WAIT = 10.0  # how long the server may take to answer an attack
MiB = 1 << 20
FLOOD_CAP = 64 * MiB  # a flood stops here: more than the kernels' buffers take unread
FLOOD_SECONDS = 20.0  # or after this long
CALM = ErrorCodes.ENHANCE_YOUR_CALM


@dataclass
class Server:
    proc: CorralProcess
    worker: str
    pid: int  # the one worker
    counter: Path  # a byte per call of /count

    @property
    def addr(self) -> tuple[str, int]:
        return self.proc.addr

    def calls(self) -> int:
        return self.counter.stat().st_size if self.counter.exists() else 0

    def warnings(self, why: str) -> int:
        """How many connections the log says were closed for ``why`` so far."""
        return len(self.proc.matches(f"HTTP/2 client closed: .*{why}"))

    def expect_warning(self, why: str, before: int) -> None:
        """One more such line than ``before`` (it may follow the GOAWAY by a moment)."""
        self.proc.wait_for(f"HTTP/2 client closed: .*{why}", count=before + 1, timeout=CLOSE_WAIT)

    def rss(self) -> int:
        """The worker's resident memory in bytes."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise AssertionError("no VmRSS")


@pytest.fixture(scope="module", params=["threaded", "asyncio"])
def server(
    request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Server]:
    """One worker of each kind, shared by the module's tests: each checks it is still the one."""
    worker: str = request.param
    tmp = tmp_path_factory.mktemp(f"h2dos-{worker}")
    app = "h2_dos_apps:asgi" if worker == "asyncio" else "h2_dos_apps:app"
    argv = [
        "-w", "1", "-k", worker, "--threads", "8", "-b", "127.0.0.1:0",
        "--http-protocols", "h2,h1", "--http2-cleartext", "prior-knowledge",
        "--http2-max-header-list-size", str(MAX_HEADER_LIST),
        "--http2-max-concurrent-streams", str(MAX_STREAMS),
        "--send-timeout", str(SEND_TIMEOUT), "--pythonpath", str(HERE), app,
    ]  # fmt: skip
    proc = CorralProcess(argv, cwd=tmp, env={"H2DOS_COUNTER": str(tmp / "calls")})
    try:
        pid = int(proc.wait_for(BOOTING)[0].group(1))
        assert h2_get(proc.addr) == 200  # h2 is imported now, not in a test's RSS
        yield Server(proc, worker, pid, tmp / "calls")
    finally:
        if proc.proc.poll() is None:
            proc.stop(timeout=10)
        kill_leftovers(proc.booted_pids())


def request_headers(path: str, method: str = "GET") -> list[tuple[str, str]]:
    return [(":method", method), (":scheme", "http"), (":authority", "x"), (":path", path)]


class Attacker:
    """A raw HTTP/2 client connection. ``frames`` collects what the server sent."""

    def __init__(self, addr: tuple[str, int], rcvbuf: int = 0) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        if rcvbuf:
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        self.sock.settimeout(CLOSE_WAIT)
        self.sock.connect(addr)
        self.h2 = H2Connection(H2Configuration(client_side=True))
        self.h2.initiate_connection()
        self.eof = False
        self.frames: list[Frame] = []
        self._buf = b""
        self.flush()

    def close(self) -> None:
        self.sock.close()

    def flush(self) -> bool:
        """Send what h2 queued; False once the server has closed."""
        return self.send(self.h2.data_to_send())

    def send(self, data: bytes) -> bool:
        try:
            self.sock.sendall(data)
        except (BrokenPipeError, ConnectionResetError):
            return False
        return True

    def goaway(self) -> GoAwayFrame | None:
        return next((f for f in self.frames if isinstance(f, GoAwayFrame)), None)

    def poll(self, timeout: float = 0.0, until: Callable[[Frame], bool] | None = None) -> bool:
        """Read what arrives within ``timeout``, or until a frame matching ``until`` came;
        True once a GOAWAY or the end came."""
        deadline = time.monotonic() + timeout
        while not (self.eof or self.goaway() or (until and any(map(until, self.frames)))):
            ready, _, _ = select.select([self.sock], [], [], max(0.0, deadline - time.monotonic()))
            if not ready:
                break
            try:
                data = self.sock.recv(1 << 16)
            except (ConnectionResetError, TimeoutError):
                data = b""
            if not data:
                self.eof = True
            self._parse(data)
        return self.eof or self.goaway() is not None

    def _parse(self, data: bytes) -> None:
        buf = self._buf + data
        while len(buf) >= 9:
            frame, length = Frame.parse_frame_header(memoryview(buf[:9]))
            if len(buf) < 9 + length:
                break
            frame.parse_body(memoryview(buf[9 : 9 + length]))
            self.frames.append(frame)
            buf = buf[9 + length :]
        self._buf = buf

    def expect_goaway(self, code: ErrorCodes) -> GoAwayFrame:
        self.poll(CLOSE_WAIT)
        frame = self.goaway()
        assert frame is not None, f"no GOAWAY (eof={self.eof}): {self.frames[-5:]}"
        assert frame.error_code == code, f"GOAWAY {ErrorCodes(frame.error_code)!r}, not {code!r}"
        return frame

    def flood(self, frames: bytes, count: int, cap: int) -> int:
        """``frames`` (``count`` frames) written again and again, ``cap`` frames at most (more
        than the kernels' buffers hold), until the server drops the connection: how many
        frames the kernel took. Fails if the server is still reading at the end."""
        done, deadline = 0, time.monotonic() + FLOOD_SECONDS
        while done < cap and time.monotonic() < deadline:
            if not self.send(frames):
                return done
            done += count
            self.poll()  # what the server answers, so that its writes do not stall
        raise AssertionError(f"the server read {done} frames of a flood and still reads")


def h2_get(addr: tuple[str, int], path: str = "/") -> int:
    """One GET over a fresh h2c connection, read to its end: the status."""
    with socket.create_connection(addr, timeout=CLOSE_WAIT) as sock:
        conn = H2Connection(H2Configuration(client_side=True))
        conn.initiate_connection()
        conn.send_headers(1, request_headers(path), end_stream=True)
        sock.sendall(conn.data_to_send())
        status = 0
        deadline = time.monotonic() + CLOSE_WAIT
        while time.monotonic() < deadline:
            data = sock.recv(1 << 16)
            assert data, "h2c connection closed before the response ended"
            for event in conn.receive_data(data):
                if isinstance(event, ResponseReceived):
                    status = int(dict(event.headers)[b":status"])
                elif isinstance(event, StreamEnded):
                    return status
            sock.sendall(conn.data_to_send())
        raise AssertionError("no whole h2 response in time")


def assert_still_serving(server: Server) -> None:
    """A fresh h2 and HTTP/1.1 client each get 200 from the same worker, never restarted."""
    assert h2_get(server.addr) == 200
    assert http_get(server.addr, "/")[0] == 200
    assert server.proc.booted_pids() == [server.pid], server.proc.log_text()
    state = proc_stat(server.pid)
    assert state is not None and state[0] != "Z", f"worker {server.pid} is gone"
    assert "Traceback" not in server.proc.log_text(), server.proc.log_text()


def report(server: Server, what: str, **numbers: object) -> None:
    print(f"[{server.worker}] {what}: " + ", ".join(f"{k}={v}" for k, v in numbers.items()))


# -- 1. rapid reset (CVE-2023-44487) ------------------------------------------------------------


def test_rapid_reset_is_calmed_and_costs_few_app_calls(server: Server) -> None:
    before, warned = server.calls(), server.warnings("rapid reset")
    c = Attacker(server.addr)
    c.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)  # a write per stream
    opened, deadline = 0, time.monotonic() + FLOOD_SECONDS
    while opened < 5000 and time.monotonic() < deadline:  # opened and reset at once, no wait
        sid = c.h2.get_next_available_stream_id()
        c.h2.send_headers(sid, request_headers("/count"), end_stream=True)
        c.h2.reset_stream(sid, ErrorCodes.CANCEL)
        if not c.flush():
            break
        opened += 1
    c.expect_goaway(CALM)
    c.close()
    assert_still_serving(server)  # after it, the app calls in flight are over
    calls = server.calls() - before
    report(server, "rapid reset", streams_opened=opened, app_calls=calls)
    # The reset allowance: twice max_concurrent_streams at once, that many again a second.
    assert calls <= 4 * MAX_STREAMS and calls * 10 <= opened, f"{calls} calls, {opened} streams"
    server.expect_warning("rapid reset", warned)


# -- 2. CONTINUATION flood ----------------------------------------------------------------------


def test_continuation_flood_is_cut_at_the_header_list_limit(server: Server) -> None:
    rss = server.rss()
    c = Attacker(server.addr)
    enc = Encoder()
    field = enc.encode([NeverIndexedHeaderTuple("x-flood", "a" * 1000)], huffman=False)
    frame = [ContinuationFrame(sid, data=field).serialize() for sid in (1, 3)]
    # Within the limit, across CONTINUATION frames: served.
    fits = (MAX_HEADER_LIST - 1024) // (len(field) + 32)
    last = ContinuationFrame(1, data=field, flags=["END_HEADERS"]).serialize()
    head = enc.encode(request_headers("/"))
    c.send(
        HeadersFrame(1, data=head, flags=["END_STREAM"]).serialize() + frame[0] * (fits - 1) + last
    )
    c.poll(CLOSE_WAIT, until=lambda f: isinstance(f, HeadersFrame))
    response = next((f for f in c.frames if isinstance(f, HeadersFrame)), None)
    assert response is not None and c.goaway() is None, c.frames
    # One frame past the limit, END_HEADERS never sent: the GOAWAY comes with no more.
    head = enc.encode(request_headers("/"))
    over = -(-(MAX_HEADER_LIST + 1 - len(head)) // len(field))
    c.send(HeadersFrame(3, data=head, flags=["END_STREAM"]).serialize() + frame[1] * over)
    c.expect_goaway(CALM)
    block = len(head) + over * len(field)
    # The flood goes on until the server drops the connection.
    cap = FLOOD_CAP // len(frame[1])
    taken = c.flood(frame[1] * 16, 16, cap)
    c.close()
    grown = server.rss() - rss
    report(server, "CONTINUATION flood", block_served=fits * len(field), block_at_goaway=block,
           bytes_taken_after=taken * len(frame[1]),
           rss_kib=(rss // 1024, grown // 1024))  # fmt: skip
    assert block <= MAX_HEADER_LIST + len(field)
    assert grown < 4 * MiB
    assert_still_serving(server)


# -- 3. HPACK bomb ------------------------------------------------------------------------------


def test_hpack_bomb_is_refused_before_it_inflates(server: Server) -> None:
    rss = server.rss()
    c = Attacker(server.addr)
    # One 4 KiB field into the dynamic table (the server's table is the default 4,096), then
    # referenced by index 62 a byte each: 9 KiB on the wire, 20 MB once decoded.
    enc = Encoder()
    block = enc.encode(request_headers("/")) + enc.encode([("x-bomb", "b" * 4000)], huffman=False)
    refs = 5000
    block += b"\xbe" * refs  # 0x80 | 62: the newest dynamic entry
    assert len(block) < MAX_HEADER_LIST  # small enough for the frame-header scan
    c.send(HeadersFrame(1, data=block, flags=["END_HEADERS", "END_STREAM"]).serialize())
    c.expect_goaway(CALM)
    c.close()
    grown = server.rss() - rss
    report(server, "HPACK bomb", wire_bytes=len(block), decoded_bytes=refs * (6 + 4000 + 32),
           rss_kib=(rss // 1024, grown // 1024))  # fmt: skip
    assert grown < 4 * MiB
    assert_still_serving(server)


# -- 4. PING and SETTINGS floods --------------------------------------------------------------


FLOODS = {
    "PING": PingFrame(0, opaque_data=b"12345678").serialize(),
    "SETTINGS": SettingsFrame(0, settings={SettingCodes.INITIAL_WINDOW_SIZE: 65535}).serialize(),
}


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_control_frame_flood_is_calmed(server: Server, kind: str) -> None:
    warned = server.warnings(f"{kind} flood")
    c = Attacker(server.addr)
    cap = FLOOD_CAP // len(FLOODS[kind])
    taken = c.flood(FLOODS[kind] * 1000, 1000, cap)
    c.expect_goaway(CALM)
    acks = sum(isinstance(f, (PingFrame, SettingsFrame)) and "ACK" in f.flags for f in c.frames)
    c.close()
    report(server, f"{kind} flood", frames_taken=taken, acks_read=acks)
    # The guard counts them from the frame headers, before h2 answers each with an ACK: the
    # allowance (50 at once), the server's own SETTINGS ACK, and no more.
    assert acks <= 52, acks
    server.expect_warning(f"{kind} flood", warned)
    assert_still_serving(server)


def _server_side_open(server_port: int, client_port: int) -> bool:
    """Whether the server's end of the connection is still ESTABLISHED (/proc/net/tcp)."""
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, remote, state = line.split()[1:4]
        if (
            int(local.split(":")[1], 16) == server_port
            and int(remote.split(":")[1], 16) == client_port
        ):
            return int(state, 16) == 1
    return False


@pytest.mark.parametrize("kind", sorted(FLOODS))
def test_control_frame_flood_from_a_client_that_never_reads_is_dropped(
    server: Server, kind: str
) -> None:
    rss = server.rss()
    c = Attacker(server.addr, rcvbuf=4096)  # reads nothing from here on
    port = c.sock.getsockname()[1]
    sent, cap, deadline = 0, FLOOD_CAP // len(FLOODS[kind]), time.monotonic() + FLOOD_SECONDS
    while sent < cap and time.monotonic() < deadline:
        if not c.send(FLOODS[kind] * 1000):
            break  # the server dropped the connection
        sent += 1000
    assert sent < cap and time.monotonic() < deadline, "the server still reads the flood"
    closed_at = time.monotonic() + CLOSE_WAIT
    while _server_side_open(server.addr[1], port) and time.monotonic() < closed_at:
        time.sleep(0.05)
    still_open = _server_side_open(server.addr[1], port)
    c.close()
    grown = server.rss() - rss
    report(
        server, f"{kind} flood, never read", frames_taken=sent, rss_kib=(rss // 1024, grown // 1024)
    )
    assert not still_open, "the server still holds the connection of a client that never reads"
    assert grown < 4 * MiB
    assert_still_serving(server)


# -- 5. zero-window stall ------------------------------------------------------------------------


def test_zero_window_stall_is_reset_after_send_timeout(server: Server) -> None:
    c = Attacker(server.addr)
    c.h2.update_settings({SettingCodes.INITIAL_WINDOW_SIZE: 0})  # the window never opens
    c.h2.send_headers(1, request_headers("/big"), end_stream=True)
    c.flush()
    started = time.monotonic()
    c.poll(CLOSE_WAIT, until=lambda f: isinstance(f, HeadersFrame))
    assert any(isinstance(f, HeadersFrame) for f in c.frames), "no response head"
    assert_still_serving(server)  # meanwhile, the stalled stream holds nobody else up
    served_after = time.monotonic() - started
    c.poll(SEND_TIMEOUT + CLOSE_WAIT, until=lambda f: isinstance(f, RstStreamFrame))
    waited = time.monotonic() - started
    rst = next((f for f in c.frames if isinstance(f, RstStreamFrame)), None)
    data = sum(len(f.data) for f in c.frames if isinstance(f, DataFrame))
    c.close()
    report(server, "zero window", others_served_at_s=round(served_after, 2),
           reset_after_s=round(waited, 2), data_bytes=data)  # fmt: skip
    assert data == 0
    assert rst is not None and rst.stream_id == 1, f"no RST_STREAM in {waited:.1f}s: {c.frames}"
    assert rst.error_code == ErrorCodes.CANCEL
    assert SEND_TIMEOUT - 0.5 <= waited <= SEND_TIMEOUT + CLOSE_WAIT


# -- 6. more streams at once than allowed --------------------------------------------------------


def test_streams_past_the_concurrency_limit_are_refused(server: Server) -> None:
    before, rss = server.calls(), server.rss()
    c = Attacker(server.addr)
    enc = Encoder()
    burst = b"".join(
        HeadersFrame(
            sid, data=enc.encode(request_headers("/count")), flags=["END_HEADERS", "END_STREAM"]
        ).serialize()
        for sid in range(1, 2 * 1000, 2)
    )
    c.send(burst)  # 1,000 requests at once, no response read
    c.poll(CLOSE_WAIT)
    refused = [f for f in c.frames if isinstance(f, RstStreamFrame)]
    goaway = c.goaway()
    c.close()
    assert_still_serving(server)
    calls = server.calls() - before
    grown = server.rss() - rss
    report(server, "concurrency", streams_sent=1000, app_calls=calls, refused_streams=len(refused),
           goaway=goaway and ErrorCodes(goaway.error_code).name,
           rss_kib=(rss // 1024, grown // 1024))  # fmt: skip
    assert goaway is not None or len(refused) >= 1000 - MAX_STREAMS
    if goaway is not None:
        assert goaway.error_code in (ErrorCodes.PROTOCOL_ERROR, ErrorCodes.REFUSED_STREAM, CALM)
    assert calls <= MAX_STREAMS
    assert grown < 4 * MiB


# -- 7. empty DATA and PRIORITY floods -----------------------------------------------------------


@pytest.mark.parametrize("stream", ["open", "reset"])
def test_empty_data_flood_is_calmed(server: Server, stream: str) -> None:
    warned = server.warnings("empty DATA")
    c = Attacker(server.addr)
    # An empty DATA frame is not the end of a body: the app reads the 3 bytes after it (sent
    # once the PING's ACK says the server has seen the empty frame).
    c.h2.send_headers(1, request_headers("/read", "POST"))
    c.send(c.h2.data_to_send() + DataFrame(1, data=b"").serialize())
    c.h2.ping(b"barrier!")
    c.flush()
    c.poll(CLOSE_WAIT, until=lambda f: isinstance(f, PingFrame) and "ACK" in f.flags)
    c.send(DataFrame(1, data=b"abc", flags=["END_STREAM"]).serialize())
    c.poll(CLOSE_WAIT, until=lambda f: isinstance(f, DataFrame) and "END_STREAM" in f.flags)
    assert b"".join(f.data for f in c.frames if isinstance(f, DataFrame)) == b"3"
    # The flood, on a stream whose body never comes, or on one the client has reset (where
    # h2 reports no event: it answers each frame with RST_STREAM).
    c.h2.send_headers(3, request_headers("/read", "POST"))
    if stream == "reset":
        c.h2.reset_stream(3)
    c.flush()
    empty = DataFrame(3, data=b"").serialize()
    cap = FLOOD_CAP // len(empty)
    taken = c.flood(empty * 1000, 1000, cap)
    c.expect_goaway(CALM)
    c.close()
    report(server, f"empty DATA flood, {stream} stream", frames_taken=taken)
    server.expect_warning("empty DATA", warned)
    assert_still_serving(server)


def test_priority_flood_is_calmed(server: Server) -> None:
    warned = server.warnings("PRIORITY")
    c = Attacker(server.addr)
    frames = b"".join(
        PriorityFrame(sid, depends_on=0, stream_weight=15).serialize()
        for sid in range(1, 2 * 1000, 2)
    )
    cap = FLOOD_CAP // (len(frames) // 1000)
    taken = c.flood(frames, 1000, cap)
    c.expect_goaway(CALM)
    c.close()
    report(server, "PRIORITY flood", frames_taken=taken)
    server.expect_warning("PRIORITY", warned)
    assert_still_serving(server)
