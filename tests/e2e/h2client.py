"""A small HTTP/2 client over a plain socket (h2c, prior knowledge), built on the h2 library,
for tests that need to see frames: the server's SETTINGS, RST_STREAM, GOAWAY, and a stream
whose flow-control window the client never opens.

GOAWAY frames are taken out of the byte stream before h2 sees them and kept in ``goaways``:
h2 closes its side on a GOAWAY and would then refuse the frames of the streams the server
still finishes (a graceful GOAWAY's whole point).
"""

from __future__ import annotations

import socket
import time
from collections.abc import Callable
from dataclasses import dataclass, field

import h2.events as ev
from h2.config import H2Configuration
from h2.connection import H2Connection
from h2.settings import SettingCodes, Settings

_GOAWAY = 0x7


@dataclass
class Reply:
    """What came back on one stream."""

    status: int = 0
    headers: dict[bytes, bytes] = field(default_factory=dict)
    body: bytearray = field(default_factory=bytearray)
    ended: bool = False
    reset: int | None = None  # the RST_STREAM error code, if the server reset the stream
    at: float = 0.0  # monotonic time it ended or was reset

    @property
    def over(self) -> bool:
        return self.ended or self.reset is not None


class H2Client:
    """One h2c connection. ``window``: our SETTINGS_INITIAL_WINDOW_SIZE; the data of streams in
    ``hold`` is never acknowledged (their window stays shut), every other stream's is."""

    def __init__(
        self, addr: tuple[str, int], *, window: int | None = None, timeout: float = 10.0
    ) -> None:
        self.sock = socket.create_connection(addr, timeout=timeout)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.timeout = timeout
        self.h2 = H2Connection(H2Configuration(client_side=True, header_encoding=None))
        initial = {SettingCodes.ENABLE_PUSH: 0}
        if window is not None:
            initial[SettingCodes.INITIAL_WINDOW_SIZE] = window
        self.h2.local_settings = Settings(client=True, initial_values=initial)
        self.h2.initiate_connection()
        self.replies: dict[int, Reply] = {}
        self.hold: set[int] = set()
        self.goaways: list[tuple[int, int]] = []  # (last_stream_id, error code), in order
        self.server_settings: dict[int, int] = {}
        self.closed = False  # the server closed the connection
        self._buf = b""
        self.flush()

    def __enter__(self) -> H2Client:
        return self

    def __exit__(self, *exc: object) -> None:
        self.sock.close()

    def flush(self) -> None:
        out = self.h2.data_to_send()
        if out:
            self.sock.sendall(out)

    def request(
        self, path: str, method: str = "GET", body: bytes = b"", *, hold: bool = False
    ) -> int:
        """Open a stream (a body must fit in the server's window); its id."""
        sid = self.h2.get_next_available_stream_id()
        headers = [(b":method", method.encode()), (b":scheme", b"http"),
                   (b":authority", b"localhost"), (b":path", path.encode())]  # fmt: skip
        if hold:
            self.hold.add(sid)
        self.replies[sid] = Reply()
        self.h2.send_headers(sid, headers, end_stream=not body)
        if body:
            self.h2.send_data(sid, body, end_stream=True)
        self.flush()
        return sid

    def pump(self, until: Callable[[], bool], timeout: float | None = None) -> None:
        """Read and handle frames until ``until()``; AssertionError on timeout or a close that
        comes first."""
        deadline = time.monotonic() + (timeout or self.timeout)
        while not until():
            left = deadline - time.monotonic()
            if left <= 0 or self.closed:
                why = "connection closed" if self.closed else "timed out"
                raise AssertionError(f"{why}: {self.describe()}")
            self.sock.settimeout(left)
            try:
                data = self.sock.recv(1 << 16)
            except TimeoutError:
                continue
            except ConnectionResetError:
                data = b""
            if not data:
                self.closed = True
                continue
            self._feed(data)

    def wait(self, *sids: int, timeout: float | None = None) -> list[Reply]:
        """The replies of ``sids`` once each has ended or been reset."""
        self.pump(lambda: all(self.replies[s].over for s in sids), timeout)
        return [self.replies[s] for s in sids]

    def until_closed(self, timeout: float | None = None) -> None:
        self.pump(lambda: self.closed, timeout)
        self.closed = True

    def describe(self) -> str:
        return f"replies={self.replies!r} goaways={self.goaways} settings={self.server_settings}"

    def _feed(self, data: bytes) -> None:
        self._buf += data
        frames = bytearray()
        while len(self._buf) >= 9:
            end = 9 + int.from_bytes(self._buf[:3], "big")
            if len(self._buf) < end:
                break
            frame, self._buf = self._buf[:end], self._buf[end:]
            if frame[3] == _GOAWAY:
                last = int.from_bytes(frame[9:13], "big") & 0x7FFFFFFF
                self.goaways.append((last, int.from_bytes(frame[13:17], "big")))
            else:
                frames += frame
        for event in self.h2.receive_data(bytes(frames)):
            self._event(event)
        self.flush()

    def _event(self, event: ev.Event) -> None:
        now = time.monotonic()
        if isinstance(event, ev.ResponseReceived):
            reply = self.replies[event.stream_id or 0]
            reply.headers = dict(event.headers or ())
            reply.status = int(reply.headers[b":status"])
        elif isinstance(event, ev.DataReceived):
            sid = event.stream_id or 0
            self.replies[sid].body += event.data or b""
            if sid not in self.hold:
                self.h2.acknowledge_received_data(event.flow_controlled_length or 0, sid)
        elif isinstance(event, ev.StreamEnded):
            reply = self.replies[event.stream_id or 0]
            reply.ended, reply.at = True, now
        elif isinstance(event, ev.StreamReset):
            reply = self.replies[event.stream_id or 0]
            reply.reset, reply.at = int(event.error_code or 0), now
        elif isinstance(event, ev.RemoteSettingsChanged):
            for code, change in (event.changed_settings or {}).items():
                self.server_settings[int(code)] = change.new_value
