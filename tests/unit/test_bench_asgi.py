"""Pure pieces of the ASGI and WebSocket benchmarks: the apps, wsload's framing and report."""

from __future__ import annotations

import asyncio
import json
import sys
import zlib
from collections.abc import MutableMapping
from pathlib import Path
from typing import Any

import pytest

# `pytest` without `python -m` leaves the repository root off sys.path; benchmarks/ lives there.
_REPO = str(Path(__file__).resolve().parents[2])
if _REPO not in sys.path:
    sys.path.insert(0, _REPO)

from benchmarks import servers, tables, workloads, wrkrun, wsload, wsrun  # noqa: E402
from benchmarks.apps import asgi_apps  # noqa: E402
from benchmarks.suite import Cell  # noqa: E402

Message = MutableMapping[str, Any]
BY_NAME = {w.name: w for w in workloads.WORKLOADS}


def _unmask(frame: bytes) -> tuple[int, bytes]:
    """opcode and payload of a client frame (test side of RFC 6455 5.3)."""
    size, start = frame[1] & 0x7F, 2
    if size == 126:
        size, start = int.from_bytes(frame[2:4], "big"), 4
    mask = frame[start : start + 4]
    data = frame[start + 4 :]
    assert len(data) == size
    return frame[0] & 0x0F, bytes(b ^ mask[i % 4] for i, b in enumerate(data))


def test_accept_value_matches_the_rfc_example() -> None:
    # RFC 6455 section 1.3 gives this key and its accept value.
    assert wsload.accept_value(b"dGhlIHNhbXBsZSBub25jZQ==") == b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="


@pytest.mark.parametrize("size", [0, 5, 16, 125, 126, 300])
def test_client_frames_are_final_masked_and_unmask_to_the_payload(size: int) -> None:
    payload = bytes(range(256))[: size % 256] + b"x" * max(0, size - 256)
    frame = wsload.client_frame(0x1, payload, b"\x01\x02\x03\x04")
    assert frame[0] == 0x81
    assert frame[1] & 0x80
    assert _unmask(frame) == (0x1, payload)


def test_server_frames_are_parsed_whole_and_partial_ones_wait() -> None:
    long_payload = b"y" * 200
    data = b"\x81\x05hello" + b"\x82\x7e\x00\xc8" + long_payload + b"\x89\x00" + b"\x81\x05wo"
    buffer = bytearray(data)
    frames = wsload.parse_frames(buffer)
    assert frames == [(True, 0x1, b"hello"), (True, 0x2, long_payload), (True, 0x9, b"")]
    assert buffer == bytearray(b"\x81\x05wo")
    buffer += b"rld"
    assert wsload.parse_frames(buffer) == [(True, 0x1, b"world")]
    assert buffer == bytearray()


@pytest.mark.parametrize("frame", [b"\x81\x85abcdhello", b"\xc1\x01x"])
def test_masked_or_reserved_bit_server_frames_are_refused(frame: bytes) -> None:
    with pytest.raises(wsload.FrameError):
        wsload.parse_frames(bytearray(frame))


def test_handshake_is_checked_for_101_and_the_accept_value() -> None:
    key = b"dGhlIHNhbXBsZSBub25jZQ=="
    good = b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
    accept = b"s3pPLMBiTxaQ9kYGzzhZRbK+xOo="
    assert wsload.check_handshake(good + b"sec-websocket-accept: " + accept, key) is None
    assert wsload.check_handshake(good + b"Sec-WebSocket-Accept:" + accept, key) is None
    assert wsload.check_handshake(good + b"Sec-WebSocket-Accept: AAAA", key) == (
        "wrong Sec-WebSocket-Accept"
    )
    refused = wsload.check_handshake(b"HTTP/1.1 403 Forbidden\r\nContent-Length: 0", key)
    assert refused is not None
    assert "403" in refused
    request = wsload.handshake_request("127.0.0.1", 8000, "/ws", key)
    assert request.startswith(b"GET /ws HTTP/1.1\r\nHost: 127.0.0.1:8000\r\n")
    assert b"Sec-WebSocket-Version: 13\r\n" in request
    assert request.endswith(b"\r\n\r\n")


def test_connections_split_evenly_over_processes() -> None:
    assert wsload.split(32, 2) == [16, 16]
    assert wsload.split(5, 2) == [3, 2]
    assert wsload.split(1, 4) == [1]


def test_percentiles_come_from_the_merged_histograms() -> None:
    fast, slow = wsload.bucket(0.0001), wsload.bucket(0.010)
    first: dict[str, Any] = {
        "messages": 98,
        "connect_errors": 0,
        "handshake_failures": 0,
        "read_errors": 1,
    }
    first |= {"timeouts": 0, "histogram": {fast: 98}}
    second: dict[str, Any] = {
        "messages": 2,
        "connect_errors": 1,
        "handshake_failures": 2,
        "read_errors": 0,
    }
    second |= {"timeouts": 3, "histogram": {slow: 2}}
    report = wsload.merge([first, second], 2.0)
    assert report["messages"] == 100
    assert report["messages_per_s"] == 50.0
    assert (report["connect_errors"], report["handshake_failures"]) == (1, 2)
    assert (report["read_errors"], report["timeouts"]) == (1, 3)
    assert report["p50_ms"] == pytest.approx(0.1, rel=0.03)
    assert report["p99_ms"] == pytest.approx(10.0, rel=0.03)
    assert wsload.percentile_ms({}, 0.5) == 0.0


def test_wsload_report_maps_onto_a_wrk_result() -> None:
    report = {"messages": 300, "messages_per_s": 100.0, "p50_ms": 0.5, "p99_ms": 2.0}
    report |= {"connect_errors": 1, "read_errors": 2, "timeouts": 3, "handshake_failures": 4}
    result = wsrun.parse_wsload_output(json.dumps(report))
    assert (result.requests, result.requests_per_s, result.p50_ms, result.p99_ms) == (
        300,
        100.0,
        0.5,
        2.0,
    )
    errors = (result.connect_errors, result.read_errors, result.write_errors, result.timeouts)
    assert errors == (1, 2, 0, 3)
    assert result.non_2xx == 4
    with pytest.raises(wsrun.WsLoadError):
        wsrun.parse_wsload_output('{"messages": 1}')


def test_wsload_argv_is_bounded_and_on_loopback() -> None:
    argv = wsrun.wsload_argv("ws://127.0.0.1:9/ws", 32, 3)
    assert argv[1].endswith("wsload.py")
    options = dict(zip(argv[2::2], argv[3::2], strict=True))
    assert options["--url"] == "ws://127.0.0.1:9/ws"
    assert (options["--connections"], options["--duration"], options["--processes"]) == (
        "32",
        "3",
        "2",
    )


def test_wsload_deflate_is_offered_and_round_trips() -> None:
    argv = wsrun.wsload_argv("ws://127.0.0.1:9/ws", 32, 3, deflate=True)
    assert argv[-1] == "--deflate" and "--deflate" not in wsrun.wsload_argv("ws://x/ws", 1, 1)
    request = wsload.handshake_request("127.0.0.1", 9, "/ws", b"k", deflate=True)
    assert b"Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n" in request
    head = b"HTTP/1.1 101 Switching Protocols\r\nSec-WebSocket-Extensions: permessage-deflate; "
    deflate = wsload.agreed_deflate(head + b"server_max_window_bits=12; client_max_window_bits=10")
    assert deflate is not None and deflate.bits == 10 and not deflate.fresh_each
    assert wsload.agreed_deflate(b"HTTP/1.1 101 Switching Protocols\r\nX: y") is None
    # What the client compresses, a server's decompressor (RFC 7692 7.2.2) inflates.
    server = zlib.decompressobj(wbits=-10)
    for _ in range(3):
        assert server.decompress(deflate.compress(b"hello hello") + b"\x00\x00\xff\xff") == (
            b"hello hello"
        )
    compressor = zlib.compressobj(6, zlib.DEFLATED, -12)
    sent = compressor.compress(b"echo") + compressor.flush(zlib.Z_SYNC_FLUSH)
    assert deflate.inflate(sent[:-4]) == b"echo"
    # RSV1 is allowed on a server frame only once deflate is agreed; it stays in the opcode.
    frame = bytes([0xC1, len(sent) - 4]) + sent[:-4]
    with pytest.raises(wsload.FrameError):
        wsload.parse_frames(bytearray(frame))
    assert wsload.parse_frames(bytearray(frame), rsv1=True) == [(True, 0x41, sent[:-4])]


def test_asgi_servers_serve_only_asgi_workloads() -> None:
    asgi = {"corral-asyncio", "uvicorn-asgi", "gunicorn-asgi", "granian-asgi"}
    for server in servers.SERVERS:
        serves = {w.name for w in workloads.WORKLOADS if server.serves(w)}
        if server.name in {"corral-asyncio", "uvicorn-asgi"}:  # these two agree to deflate
            assert serves == {"asgi-hello", "ws-echo", "ws-echo-deflate"}
        elif server.name in asgi:
            assert serves == {"asgi-hello", "ws-echo"}
        else:
            assert not serves & {"asgi-hello", "ws-echo", "ws-echo-deflate"}
    gunicorn = servers.select_servers(["gunicorn-asgi"])[0]
    argv = gunicorn.build("1", BY_NAME["asgi-hello"], Path("/tmp")).argv
    assert argv[argv.index("-k") + 1] == "asgi"
    uvicorn = servers.select_servers(["uvicorn-asgi"])[0].build("1", BY_NAME["ws-echo"], Path("/"))
    assert uvicorn.argv[-1] == "asgi_apps:ws_echo"
    assert {"httptools", "uvloop"} <= set(uvicorn.argv)


def test_missing_dotted_module_makes_a_server_unavailable() -> None:
    server = servers.Server("x", "gunicorn", servers.SERVERS[0].build, module="no_such_pkg.mod")
    reason = servers.missing_reason(server)
    assert reason is not None
    assert "no_such_pkg.mod" in reason


def _ws_cell(server: str, rate: float) -> Cell:
    result = wrkrun.WrkResult(100, rate, 1.0, 2.0, 0.0, non_2xx=1)
    return Cell(BY_NAME["ws-echo"], server, "cfg", [result])


def test_websocket_table_has_messages_and_ratios_against_uvicorn() -> None:
    cells = [_ws_cell("uvicorn-asgi", 1000.0), _ws_cell("corral-asyncio", 3000.0)]
    lines = tables.results_table(cells)
    assert lines[0] == "### WebSocket echo (wsload)"
    names = [n.strip() for n in lines[2].strip("|").split("|")]
    assert names[3:7] == ["msg/s", "vs granian asgi", "vs uvicorn asgi", "vs gunicorn asgi"]
    assert "MiB/s" not in names
    assert "failed handshakes" in names
    row = tables.result_row(cells[1], tables.baselines(cells, "ws-echo"))
    assert row[3:7] == ["3,000", "-", "3.00x", "-"]
    assert len(row) == len(names)


def _drive(app: Any, scope: dict[str, Any], incoming: list[Message]) -> list[Message]:
    sent: list[Message] = []

    async def receive() -> Message:
        return incoming.pop(0)

    async def send(message: Message) -> None:
        sent.append(message)

    asyncio.run(asyncio.wait_for(app(scope, receive, send), 5))
    return sent


def test_asgi_hello_answers_13_bytes_and_runs_lifespan() -> None:
    sent = _drive(asgi_apps.hello, {"type": "http"}, [])
    assert sent[0]["status"] == 200
    assert (b"content-length", b"13") in sent[0]["headers"]
    assert sent[1]["body"] == b"Hello, World!"
    life: list[Message] = [{"type": "lifespan.startup"}, {"type": "lifespan.shutdown"}]
    done = _drive(asgi_apps.hello, {"type": "lifespan"}, life)
    assert [m["type"] for m in done] == ["lifespan.startup.complete", "lifespan.shutdown.complete"]


def test_asgi_ws_echo_sends_each_message_back() -> None:
    incoming: list[Message] = [
        {"type": "websocket.connect"},
        {"type": "websocket.receive", "text": "ping 1"},
        {"type": "websocket.receive", "bytes": b"\x00\x01"},
        {"type": "websocket.disconnect", "code": 1000},
    ]
    sent = _drive(asgi_apps.ws_echo, {"type": "websocket"}, incoming)
    assert sent == [
        {"type": "websocket.accept"},
        {"type": "websocket.send", "text": "ping 1"},
        {"type": "websocket.send", "bytes": b"\x00\x01"},
    ]
    assert _drive(asgi_apps.ws_echo, {"type": "http"}, [])[1]["body"] == b"Hello, World!"
