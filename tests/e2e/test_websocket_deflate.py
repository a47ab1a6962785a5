"""permessage-deflate against a real corral, with the `websockets` client; and no wsproto."""

from __future__ import annotations

import asyncio
import importlib.metadata
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import websockets
from websockets.asyncio.client import connect
from websockets.extensions.permessage_deflate import (
    ClientPerMessageDeflateFactory,
    PerMessageDeflate,
)

from tests.e2e.conftest import APPS, BOOTING, CorralProcess

Factory = Callable[..., CorralProcess]
SERVE = ["-k", "asyncio", "-w", "1", "-b", "127.0.0.1:0", "asgi_app:app"]
TEXT = "the quick brown fox jumps over the lazy dog; " * 2000  # 90 KB that compress well


def url(server: CorralProcess) -> str:
    host, port = server.addr
    return f"ws://{host}:{port}/ws/echo"


def run(coro: Any) -> Any:
    return asyncio.run(asyncio.wait_for(coro, 30))


async def echo_round(ws: Any) -> None:
    for message in (TEXT, TEXT.encode(), "", "é" * 10, TEXT):
        await ws.send(message)
        assert await ws.recv() == message
    await ws.send(["frag", "ments ", TEXT])  # one message in three frames, compressed
    assert await ws.recv() == "fragments " + TEXT


def test_deflate_is_agreed_by_default(corral_factory: Factory) -> None:
    server = corral_factory(*SERVE)

    async def session() -> tuple[str, Any]:
        async with connect(url(server)) as ws:  # websockets offers permessage-deflate
            await echo_round(ws)
            return ws.response.headers["Sec-WebSocket-Extensions"], ws.protocol.extensions

    header, extensions = run(session())
    # The answer uvicorn's engine gives too: a 4 KiB window each way (RFC 7692 §7.1.2).
    assert header == ("permessage-deflate; server_max_window_bits=12; client_max_window_bits=12")
    assert [type(e) for e in extensions] == [PerMessageDeflate]


def test_deflate_turned_off(corral_factory: Factory) -> None:
    server = corral_factory("--no-websocket-per-message-deflate", *SERVE)

    async def session() -> tuple[str | None, Any]:
        async with connect(url(server)) as ws:
            await echo_round(ws)
            return ws.response.headers.get("Sec-WebSocket-Extensions"), ws.protocol.extensions

    assert run(session()) == (None, [])


@pytest.mark.parametrize(
    ("factory", "response"),
    [
        (
            ClientPerMessageDeflateFactory(
                server_no_context_takeover=True,
                client_no_context_takeover=True,
                client_max_window_bits=None,
            ),
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover; "
            "server_max_window_bits=12",
        ),
        (
            ClientPerMessageDeflateFactory(server_max_window_bits=10, client_max_window_bits=9),
            "permessage-deflate; server_max_window_bits=10; client_max_window_bits=9",
        ),
        (
            ClientPerMessageDeflateFactory(server_max_window_bits=15, client_max_window_bits=15),
            "permessage-deflate; server_max_window_bits=12; client_max_window_bits=12",
        ),
    ],
    ids=["no-context-takeover", "smaller-windows", "larger-windows-capped"],
)
def test_negotiated_parameters(
    corral_factory: Factory, factory: ClientPerMessageDeflateFactory, response: str
) -> None:
    server = corral_factory(*SERVE)

    async def session() -> str:
        async with connect(url(server), extensions=[factory], compression=None) as ws:
            await echo_round(ws)  # websockets checks every frame against what was agreed
            header: str = ws.response.headers["Sec-WebSocket-Extensions"]
            return header

    assert run(session()) == response


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        return next(int(line.split()[1]) for line in f if line.startswith("VmHWM:"))


def test_a_compressed_zip_bomb_closes_1009_without_being_inflated(
    corral_factory: Factory,
) -> None:
    server = corral_factory("--websocket-max-message-size", "1048576", *SERVE)
    worker = int(server.wait_for(BOOTING)[0].group(1))
    before = peak_rss_kib(worker)

    async def session() -> tuple[int, str]:
        async with connect(url(server), max_size=None) as ws:
            await ws.send("small")
            assert await ws.recv() == "small"
            # 256 MiB of zeros: about 256 KiB once compressed, well under the 1 MiB limit
            # on the wire, and 256 times over it once inflated.
            await ws.send(bytes(256 * 1024 * 1024))
            with pytest.raises(websockets.ConnectionClosedError) as closed:
                await ws.recv()
            assert closed.value.rcvd is not None
            return closed.value.rcvd.code, closed.value.rcvd.reason

    assert run(session()) == (1009, "message too big once inflated")
    assert peak_rss_kib(worker) - before < 32 * 1024  # inflated to the limit, then stopped

    async def again() -> None:  # the worker serves on
        async with connect(url(server)) as ws:
            await ws.send("after")
            assert await ws.recv() == "after"

    run(again())


BLOCKER = 'raise ImportError("blocked: corral must serve WebSocket without it")\n'


def test_websocket_without_wsproto_or_h11(corral_factory: Factory, tmp_path: Path) -> None:
    blocked = tmp_path / "blocked"
    for name in ("wsproto", "h11"):
        (blocked / name).mkdir(parents=True)
        (blocked / name / "__init__.py").write_text(BLOCKER)
    # The worker's own imports, checked in a fresh interpreter with the blockers first.
    check = subprocess.run(
        [
            sys.executable,
            "-c",
            "import sys, corral.workers.aio, corral.gateway.websocket;"
            "assert not {'wsproto', 'h11'} & set(sys.modules), sorted(sys.modules)",
        ],
        env={"PYTHONPATH": str(blocked), "PATH": "/usr/bin:/bin"},
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert check.returncode == 0, check.stderr
    server = corral_factory(*SERVE, env={"PYTHONPATH": os.pathsep.join([str(blocked), str(APPS)])})

    async def session() -> None:
        async with connect(url(server)) as ws:
            await echo_round(ws)
            await (await ws.ping(b"still there"))

    run(session())
    log = server.log_text()
    assert "blocked:" not in log and "ImportError" not in log and " 501 " not in log


def test_the_websocket_extra_is_kept_and_empty() -> None:
    # `pip install corral[websocket]` from older instructions must still work.
    assert "websocket" in (importlib.metadata.metadata("corral").get_all("Provides-Extra") or [])
    requires = importlib.metadata.requires("corral") or []
    assert not [r for r in requires if 'extra == "websocket"' in r]
