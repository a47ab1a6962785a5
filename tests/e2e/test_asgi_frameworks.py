"""Real ASGI frameworks on the asyncio worker: Starlette (HTTP + WebSocket) and Django."""

from __future__ import annotations

import asyncio
from collections.abc import Callable

import httpx
from websockets.asyncio.client import connect

from tests.e2e.conftest import CorralProcess

Factory = Callable[..., CorralProcess]
BIND = ["-b", "127.0.0.1:0"]


def base_url(server: CorralProcess) -> str:
    host, port = server.addr
    return f"http://{host}:{port}"


def test_starlette_routes_streaming_and_lifespan_state(corral_factory: Factory) -> None:
    server = corral_factory("-k", "asyncio", "-w", "2", *BIND, "starlette_app:app")
    with httpx.Client(base_url=base_url(server), timeout=10) as client:
        assert client.get("/").json() == {"greeting": "hello from lifespan", "path": "/"}
        assert client.get("/items/7", params={"q": "x y"}).json() == {"id": 7, "q": "x y"}
        created = client.post("/echo", content=b"payload")
        assert (created.status_code, created.text) == (201, "7:payload")
        assert client.get("/items/not-a-number").status_code == 404
        for _ in range(3):  # a sync endpoint, and the middleware's task group, every time
            resp = client.get("/blocking")
            assert resp.json() == {"on_loop_thread": False}
            assert resp.headers["x-stamped"] == "yes"
        with client.stream("GET", "/stream") as resp:
            assert resp.headers["content-type"] == "application/x-ndjson"
            assert resp.headers["transfer-encoding"] == "chunked"
            assert list(resp.iter_lines()) == [f'{{"n": {i}}}' for i in range(5)]
    assert server.stop() == 0


def test_starlette_websocket_echo(corral_factory: Factory) -> None:
    server = corral_factory("-k", "asyncio", "-w", "1", *BIND, "starlette_app:app")
    host, port = server.addr

    async def session() -> None:
        async with connect(f"ws://{host}:{port}/ws", subprotocols=["echo"]) as ws:
            assert ws.subprotocol == "echo"
            await ws.send("ping")
            assert await ws.recv() == "echo: ping"
            await ws.send(b"\xffbytes")
            assert await ws.recv() == b"\xffbytes"

    asyncio.run(asyncio.wait_for(session(), 30))


def test_django_asgi_page_form_404_and_stream(corral_factory: Factory) -> None:
    server = corral_factory("-k", "asyncio", "-w", "1", *BIND, "django_project.asgi:application")
    with httpx.Client(base_url=base_url(server), timeout=20) as client:
        page = client.get("/")
        assert page.status_code == 200
        assert "<title>corral django</title>" in page.text and "served by asgi" in page.text
        posted = client.post("/form/", data={"name": "Ada Lovelace"})
        assert (posted.status_code, posted.text) == (201, "Hello, Ada Lovelace! (17 bytes)")
        assert client.get("/items/2/").status_code == 404
        assert client.get("/no/such/page/").status_code == 404
        assert client.get("/items/1/").text == "item 1"
        with client.stream("GET", "/stream/") as resp:
            assert resp.headers["transfer-encoding"] == "chunked"
            assert list(resp.iter_lines()) == [f"line {i}" for i in range(5)]
    assert server.stop() == 0
    # Django does not speak lifespan; `auto` serves it anyway and says so once per worker.
    assert "ASGI 'lifespan' protocol appears unsupported" in server.log_text()
