"""Every response framing and keep-alive / close / upgrade rule, in one place."""

from __future__ import annotations

__all__ = [
    "CHUNKED",
    "CLOSE_DELIMITED",
    "LENGTH",
    "NO_BODY",
    "SWITCHED",
    "connection_field",
    "request_persistence",
    "response_framing",
    "response_keep_alive",
]

# How a response body is framed.
NO_BODY = 0  # HEAD, 1xx, 204, 304: no body whatever the app sends (RFC 9110 §6.4.1)
LENGTH = 1  # Content-Length (RFC 9112 §6.2)
CHUNKED = 2  # chunked transfer coding, HTTP/1.1 only (RFC 9112 §7.1)
CLOSE_DELIMITED = 3  # the body ends when the connection closes (RFC 9112 §6.3, rule 8)
SWITCHED = 4  # 101 to an Upgrade: the bytes are no longer HTTP


def request_persistence(
    version: str, method: str, connection: str | None, upgrade: str | None
) -> tuple[bool, str | None]:
    """Whether a request allows persistence, and the protocol it asks to upgrade to.

    RFC 9112 §9.3: HTTP/1.1 persists unless ``close`` is listed; HTTP/1.0 only with
    ``keep-alive``. RFC 9110 §7.8: Upgrade counts only when Connection lists ``upgrade``,
    and never in HTTP/1.0; the first protocol offered is returned, lower-cased.
    A CONNECT is answered as an ordinary response (no gateway can carry the tunnel of RFC 9110
    §9.3.6), and the client may take the connection for a tunnel: no persistence.
    """
    keep_alive = version == "1.1"
    if connection is None:
        return keep_alive and method != "CONNECT", None
    connection = connection.lower()
    tokens = {t.strip(" \t") for t in connection.split(",")} if "," in connection else {connection}
    if "close" in tokens:
        keep_alive = False
    elif not keep_alive:
        keep_alive = "keep-alive" in tokens
    if upgrade is not None and "upgrade" in tokens and version == "1.1":
        upgrade = upgrade.partition(",")[0].strip(" \t").lower() or None
    else:
        upgrade = None
    return keep_alive and method != "CONNECT", upgrade


def response_framing(
    status: int, method: str, http_version: str, content_length: int | None, upgrade: bool
) -> int:
    """Choose the framing of a response from its status, the request and the app's length."""
    # A 2xx to CONNECT would turn the connection into a tunnel (RFC 9110 §9.3.6), but neither
    # WSGI nor ASGI can carry one: the app's answer is sent as an ordinary response and the
    # connection closes after it (see ServerConnection._head).
    if status == 101 and upgrade:
        return SWITCHED
    if method == "HEAD" or status < 200 or status == 204 or status == 304:
        return NO_BODY
    if content_length is not None:
        return LENGTH
    if http_version == "1.1":
        return CHUNKED
    return CLOSE_DELIMITED


def response_keep_alive(
    request_keep_alive: bool, app_close: bool, framing: int, status: int, unread_expect: bool
) -> bool:
    """May the connection serve another request after this response?

    Not when the client or the app asked to close; not when the body ends with the
    connection; not after a protocol switch; not after a final 1xx, which the client
    cannot take as the end of an exchange; and not when the client waits for a
    ``100 Continue`` that was never sent, as it may yet send the body or not
    (RFC 9110 §10.1.1), so where the next request starts is unknown.
    """
    return (
        request_keep_alive
        and not app_close
        and not unread_expect
        and status >= 200
        and framing != CLOSE_DELIMITED
        and framing != SWITCHED
    )


def connection_field(framing: int, keep_alive: bool, http_version: str) -> str:
    """The Connection line we send: upgrade, close, keep-alive (HTTP/1.0) or none."""
    if framing == SWITCHED:
        # RFC 9110 §7.8: a 101 lists "upgrade" in Connection (SWITCHED is only ever a 101).
        return "Connection: upgrade\r\n"
    if not keep_alive:
        return "Connection: close\r\n"
    if http_version == "1.0":
        return "Connection: keep-alive\r\n"  # RFC 9112 §9.3: 1.0 persistence is opt-in
    return ""
