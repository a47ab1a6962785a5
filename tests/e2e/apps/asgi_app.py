"""A raw ASGI 3 app for the asyncio worker's tests: one route per behaviour under test."""

from __future__ import annotations

import asyncio
import json
import os
import sys
import time
from typing import Any

Scope = dict[str, Any]


async def app(scope: Scope, receive: Any, send: Any) -> None:
    """Dispatch on the scope type, then on the path."""
    if scope["type"] == "lifespan":
        await _lifespan(scope, receive, send)
    elif scope["type"] == "websocket":
        await _websocket(scope, receive, send)
    else:
        handler = ROUTES.get(scope["path"], _not_found)
        await handler(scope, receive, send)


async def _lifespan(scope: Scope, receive: Any, send: Any) -> None:
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            if os.environ.get("ASGI_APP_FAIL_STARTUP"):
                await send({"type": "lifespan.startup.failed", "message": "database unreachable"})
                return
            scope["state"]["started_by"] = os.getpid()
            scope["state"]["shared"] = {"hits": 0}
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            marker = os.environ.get("ASGI_APP_SHUTDOWN_MARKER")
            if marker:
                with open(marker, "a") as f:
                    f.write(f"shutdown {os.getpid()}\n")
            await send({"type": "lifespan.shutdown.complete"})
            return


async def _respond(send: Any, status: int, body: bytes, ctype: bytes = b"text/plain") -> None:
    headers = [(b"content-type", ctype), (b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": body})


async def _read_body(receive: Any) -> bytes:
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ConnectionError("client went away")
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _hello(scope: Scope, receive: Any, send: Any) -> None:
    await _respond(send, 200, b"Hello, world!")


async def _scope(scope: Scope, receive: Any, send: Any) -> None:
    """The scope as JSON (bytes as latin-1 strings)."""
    body = await _read_body(receive)
    state = scope.get("state", {})
    state["request_mark"] = True  # must not leak into the next request's state
    doc = {
        "type": scope["type"],
        "asgi": scope["asgi"],
        "http_version": scope["http_version"],
        "method": scope["method"],
        "scheme": scope["scheme"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "root_path": scope["root_path"],
        "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in scope["headers"]],
        "client": list(scope["client"]) if scope["client"] else None,
        "server": list(scope["server"]) if scope["server"] else None,
        "state_keys": sorted(k for k in state if k != "request_mark"),
        "started_by": state.get("started_by"),
        "pid": os.getpid(),
        "extensions": sorted(scope.get("extensions", {})),
        "body": body.decode("latin-1"),
    }
    scope["headers"].append((b"x-request-mark", b"1"))  # nor into the next one's headers
    await _respond(send, 200, json.dumps(doc).encode(), b"application/json")


async def _echo_stream(scope: Scope, receive: Any, send: Any) -> None:
    """Echo the body back piece by piece as it arrives (chunked), with the piece count."""
    await send({"type": "http.response.start", "status": 200, "headers": []})
    pieces = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        pieces += 1
        await send({"type": "http.response.body", "body": message["body"], "more_body": True})
        if not message.get("more_body", False):
            break
    await send({"type": "http.response.body", "body": b"|pieces=%d" % pieces})


async def _stream(scope: Scope, receive: Any, send: Any) -> None:
    """``?n=N&size=S``: N chunks of S bytes; records how far it got in ASGI_APP_STREAM_LOG."""
    query = dict(p.split("=") for p in scope["query_string"].decode().split("&") if "=" in p)
    count, size = int(query.get("n", "5")), int(query.get("size", "10"))
    await send({"type": "http.response.start", "status": 200, "headers": []})
    sent = 0
    try:
        for i in range(count):
            await send(
                {
                    "type": "http.response.body",
                    "body": bytes([65 + i % 26]) * size,
                    "more_body": True,
                }
            )
            sent += 1
        await send({"type": "http.response.body", "body": b""})
    finally:
        log = os.environ.get("ASGI_APP_STREAM_LOG")
        if log:
            with open(log, "a") as f:
                f.write(f"{sent}\n")


async def _trailers(scope: Scope, receive: Any, send: Any) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"trailer", b"x-checksum")],
            "trailers": True,
        }
    )
    await send({"type": "http.response.body", "body": b"part1-", "more_body": True})
    await send({"type": "http.response.body", "body": b"part2", "more_body": False})
    await send({"type": "http.response.trailers", "headers": [(b"x-checksum", b"abc123")]})


async def _boom(scope: Scope, receive: Any, send: Any) -> None:
    raise RuntimeError("boom before the response")


async def _boom_late(scope: Scope, receive: Any, send: Any) -> None:
    await send({"type": "http.response.start", "status": 200, "headers": []})
    await send({"type": "http.response.body", "body": b"partial", "more_body": True})
    raise RuntimeError("boom during the response")


async def _bad_header(scope: Scope, receive: Any, send: Any) -> None:
    headers = [(b"x-evil", b"a\r\nSet-Cookie: pwned=1")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"never"})


async def _disconnect(scope: Scope, receive: Any, send: Any) -> None:
    """Read the body, then wait for http.disconnect and record it in ASGI_APP_DISCONNECT_LOG."""
    await _read_body(receive)
    message = await receive()
    log = os.environ.get("ASGI_APP_DISCONNECT_LOG")
    if log:
        with open(log, "a") as f:
            f.write(message["type"] + "\n")


async def _slow(scope: Scope, receive: Any, send: Any) -> None:
    """Answer after ``?s=SECONDS``."""
    query = scope["query_string"].decode()
    seconds = float(query.split("=", 1)[1]) if "=" in query else 1.0
    marker = os.environ.get("ASGI_APP_SLOW_MARKER")
    if marker:
        with open(marker, "a") as f:
            f.write("started\n")
    await asyncio.sleep(seconds)
    await _respond(send, 200, b"slow done")


async def _block(scope: Scope, receive: Any, send: Any) -> None:
    """Hold the event loop for ``?s=SECONDS`` with a blocking call (an app bug to diagnose)."""
    query = scope["query_string"].decode()
    seconds = float(query.split("=", 1)[1]) if "=" in query else 1.0
    time.sleep(seconds)
    await _respond(send, 200, b"block done")


def _seconds(scope: Scope) -> float:
    query = scope["query_string"].decode()
    return float(query.split("=", 1)[1]) if "=" in query else 1.0


async def _after(scope: Scope, receive: Any, send: Any) -> None:
    """Answer, then work ``?s=SECONDS`` more in the request's task (a background task)."""
    await _respond(send, 200, b"sent")
    await asyncio.sleep(_seconds(scope))
    sys.stderr.write(f"asgi_app: background done {os.getpid()}\n")


async def _group_block(scope: Scope, receive: Any, send: Any) -> None:
    """Hold the loop for ``?s=SECONDS`` inside a task group's body (Python 3.11+)."""
    async with asyncio.TaskGroup() as group:
        group.create_task(asyncio.sleep(0))
        time.sleep(_seconds(scope))
    await _respond(send, 200, b"group done")


async def _pid(scope: Scope, receive: Any, send: Any) -> None:
    await _respond(send, 200, str(os.getpid()).encode())


async def _loop(scope: Scope, receive: Any, send: Any) -> None:
    await _respond(send, 200, type(asyncio.get_running_loop()).__module__.encode())


async def _not_found(scope: Scope, receive: Any, send: Any) -> None:
    await _respond(send, 404, b"not found")


async def _websocket(scope: Scope, receive: Any, send: Any) -> None:
    message = await receive()
    assert message["type"] == "websocket.connect"
    path = scope["path"]
    if path == "/ws/reject":
        await send({"type": "websocket.close", "code": 1008})
        return
    if path == "/ws/deny":
        await send(
            {"type": "websocket.http.response.start", "status": 401, "headers": [(b"x-why", b"no")]}
        )
        await send({"type": "websocket.http.response.body", "body": b"denied"})
        return
    if path == "/ws/boom":
        raise RuntimeError("boom before accept")
    accept: dict[str, Any] = {"type": "websocket.accept", "headers": [(b"x-ws", b"yes")]}
    if scope["subprotocols"]:
        accept["subprotocol"] = scope["subprotocols"][-1]
    await send(accept)
    if path == "/ws/scope":
        await send(
            {
                "type": "websocket.send",
                "text": json.dumps(
                    {
                        "scheme": scope["scheme"],
                        "path": scope["path"],
                        "query_string": scope["query_string"].decode(),
                        "subprotocols": scope["subprotocols"],
                        "state_keys": sorted(scope.get("state", {})),
                    }
                ),
            }
        )
    if path == "/ws/close":
        await send({"type": "websocket.close", "code": 4001, "reason": "bye now"})
        return
    log = os.environ.get("ASGI_APP_WS_LOG")
    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            if log:
                with open(log, "a") as f:
                    f.write(f"disconnect {message['code']}\n")
            return
        if message.get("text") == "close-me":
            await send({"type": "websocket.close", "code": 1000, "reason": "as asked"})
            continue
        if message.get("text") is not None:
            await send({"type": "websocket.send", "text": message["text"]})
        else:
            await send({"type": "websocket.send", "bytes": message["bytes"]})


ROUTES = {
    "/": _hello,
    "/scope": _scope,
    "/echo-stream": _echo_stream,
    "/stream": _stream,
    "/trailers": _trailers,
    "/boom": _boom,
    "/boom-late": _boom_late,
    "/bad-header": _bad_header,
    "/disconnect": _disconnect,
    "/slow": _slow,
    "/block": _block,
    "/after": _after,
    "/group-block": _group_block,
    "/pid": _pid,
    "/loop": _loop,
}
