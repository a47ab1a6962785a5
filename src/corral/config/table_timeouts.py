"""The settings table, client timeouts: how long a client may take to send or to read."""

from __future__ import annotations

from dataclasses import dataclass

from corral.config import parsers as p
from corral.config.spec import setting


@dataclass
class TimeoutTable:
    """Deadlines on slow or hostile clients, the same in every worker."""

    header_timeout: float = setting(
        10.0,
        section="Security",
        parse=p.seconds(allow_zero=False),
        cli=("--header-timeout",),
        metavar="SECONDS",
        corral_only=True,
        help="""
        Seconds a client may take to send a complete request head (and, on TLS, to finish
        its handshake).

        A client that trickles its head in more slowly gets 408 and is disconnected, so it
        cannot hold a sync worker (or a connection slot) indefinitely.
        """,
    )
    body_timeout: float = setting(
        30.0,
        section="Security",
        parse=p.seconds(allow_zero=False),
        cli=("--body-timeout",),
        metavar="SECONDS",
        corral_only=True,
        help="""
        Seconds a client may go without sending any of a request body it has begun.

        Counted between reads, not over the whole body: a slow but steady upload is never
        cut off. A client that stalls longer gets 408 when no response has started (the
        app's read of `wsgi.input` raises `OSError`; an ASGI app receives
        `http.disconnect`), and the connection closes. nginx's `client_body_timeout` is
        the same rule.
        """,
    )
    send_timeout: float = setting(
        30.0,
        section="Security",
        parse=p.seconds(allow_zero=False),
        cli=("--send-timeout",),
        metavar="SECONDS",
        corral_only=True,
        help="""
        Seconds a client may go without reading any of a response that is waiting for room
        in its socket.

        Counted between writes, not over the whole response, as nginx's `send_timeout`. A
        client that stops reading is disconnected, and the app sees the write fail
        (`OSError`) instead of waiting forever.
        """,
    )
