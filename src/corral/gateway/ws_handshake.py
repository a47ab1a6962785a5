"""The WebSocket opening handshake (RFC 6455 §4.2): request checks and the 101 response."""

from __future__ import annotations

import base64
import binascii
import hashlib

from corral.http.events import Request

# RFC 6455 §1.3: the GUID concatenated with the client's key before hashing.
_GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
SUPPORTED_VERSION = "13"


class HandshakeError(Exception):
    """The upgrade request is not a valid WebSocket handshake; ``status`` says how to answer."""

    def __init__(self, status: int, reason: str, headers: list[tuple[str, str]] | None = None):
        super().__init__(reason)
        self.status = status
        self.reason = reason
        self.headers = headers or []


def _tokens(value: str) -> list[str]:
    return [t.strip().lower() for t in value.split(",") if t.strip()]


def is_websocket_upgrade(req: Request) -> bool:
    """True when the request asks to switch to WebSocket (``Connection: upgrade`` present)."""
    upgrade = req.upgrade
    return upgrade is not None and (upgrade == "websocket" or "websocket" in _tokens(upgrade))


def check_handshake(req: Request) -> tuple[str, list[str], list[str]]:
    """Validate a client's opening handshake: the key, the offered subprotocols, and the
    ``Sec-WebSocket-Extensions`` values (offers, negotiated at the accept).

    Raises HandshakeError: 426 with ``Sec-WebSocket-Version: 13`` for another version
    (§4.4), 400 for anything else that is malformed (§4.2.1).
    """
    if req.method != "GET" or req.http_version != "1.1":
        raise HandshakeError(400, "a WebSocket handshake is an HTTP/1.1 GET (RFC 6455 §4.1)")
    keys: list[str] = []
    versions: list[str] = []
    protocols: list[str] = []
    extensions: list[str] = []
    for name, value in req.headers:
        lname = name.lower()
        if lname == "sec-websocket-key":
            keys.append(value)
        elif lname == "sec-websocket-version":
            versions.append(value)
        elif lname == "sec-websocket-protocol":
            protocols.extend(t.strip() for t in value.split(",") if t.strip())
        elif lname == "sec-websocket-extensions":
            extensions.append(value)
    if len(versions) != 1 or versions[0].strip() != SUPPORTED_VERSION:
        raise HandshakeError(
            426,
            f"unsupported Sec-WebSocket-Version {versions!r}",
            [("Sec-WebSocket-Version", SUPPORTED_VERSION)],
        )
    if len(keys) != 1:
        raise HandshakeError(400, "exactly one Sec-WebSocket-Key is required")
    key = keys[0].strip()
    # §4.2.1 item 5: the key is base64 of 16 random bytes, so exactly 24 characters.
    try:
        raw = base64.b64decode(key.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError):
        raw = b""
    if len(raw) != 16 or len(key) != 24:
        raise HandshakeError(400, "Sec-WebSocket-Key is not base64 of 16 bytes")
    return key, protocols, extensions


def accept_value(key: str) -> str:
    """``Sec-WebSocket-Accept`` for a client key (RFC 6455 §4.2.2 item 5.4)."""
    digest = hashlib.sha1(
        key.encode("ascii") + _GUID
    ).digest()  # SHA-1 is what RFC 6455 mandates here
    return base64.b64encode(digest).decode("ascii")


def accept_headers(
    key: str, subprotocol: str | None, extra: list[tuple[str, str]], extension: str | None = None
) -> list[tuple[str, str]]:
    """The headers of the 101 response (the core adds ``Connection: upgrade``).

    ``extension``: the agreed Sec-WebSocket-Extensions value. The app's own is dropped: the
    frames are ours, so no extension we do not implement may be announced (RFC 6455 §9.1).
    """
    headers = [("Upgrade", "websocket"), ("Sec-WebSocket-Accept", accept_value(key))]
    if subprotocol:
        headers.append(("Sec-WebSocket-Protocol", subprotocol))
    if extension:
        headers.append(("Sec-WebSocket-Extensions", extension))
    reserved = {"upgrade", "connection", "sec-websocket-accept", "sec-websocket-extensions"}
    if subprotocol:
        reserved.add("sec-websocket-protocol")
    headers.extend((n, v) for n, v in extra if n.lower() not in reserved)
    return headers
