"""WebSocket on the asyncio worker with the `websockets` client library against a real server."""

from __future__ import annotations

import asyncio
import json
import signal
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect

from tests.e2e.conftest import CorralProcess, wait_until

Factory = Callable[..., CorralProcess]
BIND = ["-b", "127.0.0.1:0"]


def ws_url(server: CorralProcess, path: str) -> str:
    host, port = server.addr
    return f"ws://{host}:{port}{path}"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


def test_echo_subprotocol_headers_fragments_and_ping(corral_factory: Factory) -> None:
    server = corral_factory("-k", "asyncio", "-w", "1", *BIND, "asgi_app:app")

    async def session() -> None:
        async with connect(ws_url(server, "/ws/echo"), subprotocols=["v1", "v2"]) as ws:
            assert ws.subprotocol == "v2"  # the app picks the last one offered
            assert ws.response.headers["x-ws"] == "yes"
            await ws.send("héllo")
            assert await ws.recv() == "héllo"
            await ws.send(b"\x00\x01\x02")
            assert await ws.recv() == b"\x00\x01\x02"
            await ws.send(["frag-", "ment-", "ed"])  # one message in three frames
            assert await ws.recv() == "frag-ment-ed"
            await (await ws.ping(b"tick"))  # the pong came back
            big = "z" * 1_000_000
            await ws.send(big)
            assert await ws.recv() == big

    run(session())


def test_scope_of_a_websocket(corral_factory: Factory) -> None:
    server = corral_factory("-k", "asyncio", "-w", "1", *BIND, "asgi_app:app")

    async def session() -> dict[str, Any]:
        async with connect(ws_url(server, "/ws/scope?room=1"), subprotocols=["chat"]) as ws:
            doc: dict[str, Any] = json.loads(await ws.recv())
            return doc

    doc = run(session())
    assert doc == {
        "scheme": "ws",
        "path": "/ws/scope",
        "query_string": "room=1",
        "subprotocols": ["chat"],
        "state_keys": ["shared", "started_by"],
    }


def test_app_close_with_code_and_reason(corral_factory: Factory) -> None:
    server = corral_factory("-k", "asyncio", "-w", "1", *BIND, "asgi_app:app")

    async def session() -> tuple[int, str]:
        async with connect(ws_url(server, "/ws/close")) as ws:
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code, closed.value.rcvd.reason

    assert run(session()) == (4001, "bye now")


@pytest.mark.parametrize(
    ("path", "status", "body"),
    [("/ws/reject", 403, None), ("/ws/deny", 401, b"denied"), ("/ws/boom", 500, None)],
)
def test_refused_handshakes(
    corral_factory: Factory, path: str, status: int, body: bytes | None
) -> None:
    server = corral_factory("-k", "asyncio", "-w", "1", *BIND, "asgi_app:app")

    async def session() -> None:
        with pytest.raises(websockets.InvalidStatus) as refused:
            async with connect(ws_url(server, path)):
                pass
        assert refused.value.response.status_code == status
        if body is not None:
            assert refused.value.response.body == body

    run(session())
    if path == "/ws/boom":
        # Waited for: the worker's traceback may reach the log pipe after the client has its 500.
        server.wait_for("RuntimeError: boom before accept", timeout=10)


def test_message_over_the_limit_closes_1009(corral_factory: Factory, tmp_path: Path) -> None:
    log = tmp_path / "ws.txt"
    server = corral_factory(
        "-k",
        "asyncio",
        "-w",
        "1",
        "--websocket-max-message-size",
        "1024",
        *BIND,
        "asgi_app:app",
        env={"ASGI_APP_WS_LOG": str(log)},
    )

    async def session() -> int:
        async with connect(ws_url(server, "/ws/echo")) as ws:
            await ws.send("a" * 1024)
            assert await ws.recv() == "a" * 1024
            await ws.send("a" * 1025)
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code

    assert run(session()) == 1009
    wait_until(lambda: log.read_text() if log.exists() else "", bool, 10)
    assert log.read_text() == "disconnect 1009\n"


def test_term_closes_open_websockets_with_1001(corral_factory: Factory) -> None:
    server = corral_factory("-k", "asyncio", "-w", "1", *BIND, "asgi_app:app")

    async def session() -> int:
        async with connect(ws_url(server, "/ws/echo")) as ws:
            await ws.send("up")
            assert await ws.recv() == "up"
            server.signal(signal.SIGTERM)
            with pytest.raises(websockets.ConnectionClosed) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code

    assert run(session()) == 1001
    assert server.wait_exit() == 0
