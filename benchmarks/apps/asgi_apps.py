"""Raw ASGI 3 apps for the ASGI workloads, served unchanged by every ASGI server under test."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]

HELLO_BODY = b"Hello, World!"
_HELLO_START: Message = {
    "type": "http.response.start",
    "status": 200,
    "headers": [(b"content-type", b"text/plain"), (b"content-length", b"13")],
}
_HELLO_BODY: Message = {"type": "http.response.body", "body": HELLO_BODY}


async def _lifespan(receive: Receive, send: Send) -> None:
    """Acknowledge startup and shutdown, so every server runs the same (empty) lifespan."""
    # Exactly two messages arrive: startup, then shutdown when the server stops.
    for _ in range(2):
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _echo(receive: Receive, send: Send) -> None:
    """Accept the WebSocket and send every text or binary message back unchanged."""
    message = await receive()
    if message["type"] != "websocket.connect":
        return
    await send({"type": "websocket.accept"})
    # Ends when the client disconnects; each pass waits for one message from it.
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def hello(scope: Scope, receive: Receive, send: Send) -> None:
    """`asgi-hello` (and every HTTP request to this module's apps): a 13-byte body. The request
    has no body, so it is not read; servers send `http.disconnect` only if asked."""
    kind = scope["type"]
    if kind == "http":
        await send(_HELLO_START)
        await send(_HELLO_BODY)
    elif kind == "lifespan":
        await _lifespan(receive, send)


async def ws_echo(scope: Scope, receive: Receive, send: Send) -> None:
    """`ws-echo`: a WebSocket echo; plain HTTP gets the hello body (the harness's readiness
    probe)."""
    if scope["type"] == "websocket":
        await _echo(receive, send)
    else:
        await hello(scope, receive, send)
