"""Limits on what an HTTP/2 client may make us do without asking for a response: the known
denial-of-service patterns (rapid reset, CONTINUATION and control-frame floods)."""

from __future__ import annotations

_PREFACE_SIZE = 24
_DATA, _HEADERS, _PRIORITY, _SETTINGS, _PING, _CONTINUATION = 0x0, 0x1, 0x2, 0x4, 0x6, 0x9
_END_STREAM, _ACK, _END_HEADERS = 0x1, 0x1, 0x4
_KNOWN = 0x9  # frame types above this are extensions h2 ignores (RFC 9113 §5.5)


class Allowance:
    """A token bucket: ``burst`` at once, refilled at ``rate`` per second."""

    __slots__ = ("burst", "last", "rate", "tokens")

    def __init__(self, rate: float, burst: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.last = 0.0

    def take(self, now: float) -> bool:
        """Spend one token; False when none is left."""
        if self.last:
            self.tokens = min(self.burst, self.tokens + (now - self.last) * self.rate)
        self.last = now
        if self.tokens < 1:
            return False
        self.tokens -= 1
        return True


class Guard:
    """Per connection: the header block's size across CONTINUATION frames (scanned from the
    frame headers before h2 buffers them), and allowances for frames that serve nothing."""

    class Exceeded(Exception):
        """A limit was passed; the text says which."""

    def __init__(self, max_streams: int, max_header_list_size: int) -> None:
        self.block_limit = max_header_list_size
        # A client cancelling a page's requests resets up to its concurrency at once; a rapid
        # reset attack (CVE-2023-44487) does it thousands of times a second.
        self.resets = Allowance(rate=max(10, max_streams), burst=max(20, 2 * max_streams))
        self.pings = Allowance(rate=10, burst=50)
        self.settings = Allowance(rate=10, burst=50)
        self.idle_frames = Allowance(rate=500, burst=1000)  # PRIORITY, empty DATA, unknown
        self._skip = _PREFACE_SIZE  # payload bytes still to pass over
        self._head = b""  # a frame header read in part
        self._block = -1  # size of the header block in progress; -1: none

    def scan(self, data: bytes, now: float) -> None:
        """Follow the frame boundaries in ``data``; raise Exceeded for a header block larger
        than max_header_list_size (its compressed size can only be smaller; CONTINUATION
        frames without END_HEADERS would otherwise pile up), and for a flood of empty DATA
        frames (CVE-2019-9518), counted here because h2 reports none on a reset stream: it
        answers each with RST_STREAM."""
        pos, size = 0, len(data)
        while pos < size:
            if self._skip:
                step = min(self._skip, size - pos)
                self._skip -= step
                pos += step
                continue
            need = 9 - len(self._head)
            self._head += data[pos : pos + need]
            pos += need
            if len(self._head) < 9:
                return
            head, self._head = self._head, b""
            length = int.from_bytes(head[:3], "big")
            kind, flags = head[3], head[4]
            self._skip = length
            if kind == _DATA and not length and not flags & _END_STREAM:
                if not self.idle_frames.take(now):
                    raise Guard.Exceeded("flood of empty DATA frames")
            elif kind == _PING and not flags & _ACK:
                # Counted before h2 reads them: it answers each PING and SETTINGS with an ACK,
                # a read's worth of them before any event reached us.
                if not self.pings.take(now):
                    raise Guard.Exceeded("PING flood")
            elif kind == _SETTINGS and not flags & _ACK:
                if not self.settings.take(now):
                    raise Guard.Exceeded("SETTINGS flood")
            elif kind == _PRIORITY or kind > _KNOWN:
                if not self.idle_frames.take(now):
                    raise Guard.Exceeded("flood of PRIORITY or unknown frames")
            elif kind == _HEADERS or (kind == _CONTINUATION and self._block >= 0):
                self._block = max(self._block, 0) + length
                if self._block > self.block_limit:
                    raise Guard.Exceeded("header block over http2_max_header_list_size")
                if flags & _END_HEADERS:
                    self._block = -1
