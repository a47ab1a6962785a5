"""permessage-deflate (RFC 7692): negotiating it from the client's offers, and its codec."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

try:
    import zlib
except ImportError:  # CPython can be built without zlib: then the extension is never offered
    zlib = None  # type: ignore[assignment]

NAME = "permessage-deflate"
# The window and memory level uvicorn's default engine (websockets) uses: 2 ** 12 bytes of
# history each way and memLevel 5 keep a connection's compressor near 32 KiB instead of the
# 256 KiB of zlib's defaults, at a slightly worse ratio.
SERVER_WINDOW_BITS = 12
CLIENT_WINDOW_BITS = 12
MEM_LEVEL = 5
# RFC 7692 §7.2.1: a message's compressed payload is its DEFLATE data less this tail, which a
# receiver puts back before inflating.
TAIL = b"\x00\x00\xff\xff"
_PARAMS = frozenset(
    (
        "server_no_context_takeover",
        "client_no_context_takeover",
        "server_max_window_bits",
        "client_max_window_bits",
    )
)


class MessageTooBig(Exception):
    """Inflating a message would take it past the size limit (closed with 1009)."""


class BadDeflate(Exception):
    """A compressed message's payload is not DEFLATE data."""


@dataclass(frozen=True)
class DeflateParams:
    """What was agreed: the response's parameters, and how each direction compresses."""

    server_no_context_takeover: bool = False
    client_no_context_takeover: bool = False
    server_window_bits: int = 15  # our compressor's window (RFC 7692 §7.1.2.1)
    client_window_bits: int = 15  # the client's, so our decompressor's (§7.1.2.2)
    response: str = NAME  # the Sec-WebSocket-Extensions value that accepts it


def available() -> bool:
    """Whether this Python has zlib, without which permessage-deflate is never agreed."""
    return zlib is not None


def _offers(values: list[str]) -> list[tuple[str, list[tuple[str, str | None]]]]:
    """The extension offers of Sec-WebSocket-Extensions values (RFC 6455 §9.1), in order."""
    offers: list[tuple[str, list[tuple[str, str | None]]]] = []
    for value in values:
        for item in value.split(","):
            name, *raw = (part.strip() for part in item.split(";"))
            if not name:
                continue
            params: list[tuple[str, str | None]] = []
            for param in raw:
                key, eq, val = param.partition("=")
                val = val.strip()
                if len(val) >= 2 and val[0] == val[-1] == '"':
                    val = val[1:-1]  # §9.1: a quoted-string value is read as its token
                params.append((key.strip().lower(), val if eq else None))
            offers.append((name.lower(), params))
    return offers


def _window_bits(value: str | None) -> int | None:
    """A window-bits value: a decimal 8-15 without leading zeros (RFC 7692 §7.1.2)."""
    if value is None or not value.isdigit() or value[0] == "0" or not 8 <= int(value) <= 15:
        return None
    return int(value)


def _accept(params: list[tuple[str, str | None]]) -> DeflateParams | None:
    """Our answer to one permessage-deflate offer, or None to decline it (RFC 7692 §5, §7).

    An offer with an unknown or repeated parameter, or a parameter with a wrong value, is
    declined; so is server_max_window_bits=8, which zlib cannot compress with.
    """
    given = dict(params)
    if len(given) != len(params) or not set(given) <= _PARAMS:
        return None
    for flag in ("server_no_context_takeover", "client_no_context_takeover"):
        if flag in given and given[flag] is not None:  # §7.1.1: these take no value
            return None
    server_bits = SERVER_WINDOW_BITS
    if "server_max_window_bits" in given:
        offered = _window_bits(given["server_max_window_bits"])
        if offered is None or offered == 8:
            return None
        server_bits = min(offered, SERVER_WINDOW_BITS)  # §7.1.2.1: the same or smaller
    client_bits: int | None = None
    if "client_max_window_bits" in given:  # §7.1.2.2: only in answer to the client's offer
        value = given["client_max_window_bits"]
        offered = CLIENT_WINDOW_BITS if value is None else _window_bits(value)
        if offered is None:
            return None
        client_bits = min(offered, CLIENT_WINDOW_BITS)
    parts = [NAME]
    server_no = "server_no_context_takeover" in given
    client_no = "client_no_context_takeover" in given
    if server_no:
        parts.append("server_no_context_takeover")
    if client_no:
        parts.append("client_no_context_takeover")
    parts.append(f"server_max_window_bits={server_bits}")
    if client_bits is not None:
        parts.append(f"client_max_window_bits={client_bits}")
    return DeflateParams(server_no, client_no, server_bits, client_bits or 15, "; ".join(parts))


def negotiate(values: list[str]) -> DeflateParams | None:
    """The first permessage-deflate offer we can accept, in the client's order of preference."""
    if zlib is None:
        return None
    for name, params in _offers(values):
        if name == NAME:
            agreed = _accept(params)
            if agreed is not None:
                return agreed
    return None


class Deflate:
    """One connection's compressor and decompressor (RFC 7692 §7.2)."""

    __slots__ = ("_compressor", "_decompressor", "params")

    def __init__(self, params: DeflateParams) -> None:
        self.params = params
        self._compressor: Any = None
        self._decompressor: Any = None

    def compress(self, data: bytes) -> bytes:
        """One message's payload (§7.2.1): DEFLATE, sync-flushed, less the 4-byte tail."""
        compressor = self._compressor
        if compressor is None:
            compressor = zlib.compressobj(
                zlib.Z_DEFAULT_COMPRESSION,
                zlib.DEFLATED,
                -self.params.server_window_bits,
                MEM_LEVEL,
            )
            # §7.1.1.1: with server_no_context_takeover each message starts afresh.
            if not self.params.server_no_context_takeover:
                self._compressor = compressor
        out: bytes = compressor.compress(data) + compressor.flush(zlib.Z_SYNC_FLUSH)
        return out[:-4] if out.endswith(TAIL) else out

    def decompress(self, data: bytes, last: bool, limit: int) -> bytes:
        """Inflate one frame's payload of a compressed message; at most ``limit`` bytes.

        ``last``: the message's final frame, after which the tail is put back (§7.2.2).
        Raises MessageTooBig rather than inflating past the limit (a small frame can inflate
        to gigabytes), and BadDeflate for data that is not DEFLATE.
        """
        decompressor = self._decompressor
        if decompressor is None:
            decompressor = self._decompressor = zlib.decompressobj(
                wbits=-self.params.client_window_bits
            )
        if last:
            data += TAIL
        try:
            out: bytes = decompressor.decompress(data, limit + 1)
        except zlib.error as exc:
            raise BadDeflate(str(exc)) from exc
        if len(out) > limit:
            raise MessageTooBig
        # §7.2.3.4: a block with BFINAL ends the stream, and so the context; and with
        # client_no_context_takeover the client starts each message afresh (§7.1.1.2).
        if last and (self.params.client_no_context_takeover or decompressor.eof):
            self._decompressor = None
        return out
