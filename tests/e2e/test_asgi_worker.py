"""The asyncio worker as users run it: `python -m corral -k asyncio APP`, real clients, signals."""

from __future__ import annotations

import signal
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import CorralProcess, InFlight, wait_until

Factory = Callable[..., CorralProcess]
BIND = ["-b", "127.0.0.1:0"]
HEARTBEAT_TIMEOUT = 4


def base_url(server: CorralProcess) -> str:
    host, port = server.addr
    return f"http://{host}:{port}"


@pytest.mark.parametrize("worker_class", ["asyncio", "asgi"])
def test_raw_asgi_app_over_httpx(corral_factory: Factory, worker_class: str) -> None:
    server = corral_factory("-k", worker_class, "-w", "2", *BIND, "asgi_app:app")
    with httpx.Client(base_url=base_url(server), timeout=10) as client:
        hello = client.get("/")
        assert (hello.status_code, hello.text) == (200, "Hello, world!")
        assert hello.headers["server"] == "corral"
        doc = client.post("/scope?q=1", content=b"form=data").json()
        assert doc["method"] == "POST" and doc["body"] == "form=data"
        assert doc["query_string"] == "q=1" and doc["asgi"]["spec_version"] == "2.4"
        # Every worker ran lifespan startup itself, and its state reached the request.
        assert doc["started_by"] == doc["pid"]
        assert doc["state_keys"] == ["shared", "started_by"]
        assert client.get("/missing").status_code == 404
        with client.stream("GET", "/stream?n=4&size=3") as resp:
            assert resp.headers["transfer-encoding"] == "chunked"
            assert b"".join(resp.iter_bytes()) == b"AAABBBCCCDDD"
        assert client.get("/boom").status_code == 500
        assert client.get("/").status_code == 200  # the worker lives on after an app error
    assert server.stop() == 0


def test_gunicorn_conf_naming_uvicorns_worker_serves_the_asgi_app(
    corral_factory: Factory, tmp_path: Path
) -> None:
    # A typical FastAPI deployment's gunicorn.conf.py, read from the server's directory.
    (tmp_path / "gunicorn.conf.py").write_text('worker_class = "uvicorn.workers.UvicornWorker"\n')
    server = corral_factory("-w", "1", *BIND, "asgi_app:app")
    assert httpx.get(base_url(server)).text == "Hello, world!"
    log = server.log_text()
    assert "Using worker: asyncio" in log
    assert (
        "worker_class 'uvicorn.workers.UvicornWorker' is served by corral's asyncio worker" in log
    )
    assert server.stop() == 0


def test_loop_setting_chooses_uvloop_or_asyncio(corral_factory: Factory) -> None:
    auto = corral_factory("-k", "asyncio", "-w", "1", *BIND, "asgi_app:app")
    assert httpx.get(base_url(auto) + "/loop").text == "uvloop"
    plain = corral_factory("-k", "asyncio", "-w", "1", "--loop", "asyncio", *BIND, "asgi_app:app")
    assert httpx.get(base_url(plain) + "/loop").text == "asyncio.unix_events"


def test_asgi_app_on_a_wsgi_worker_is_a_boot_error(corral_factory: Factory) -> None:
    server = corral_factory("-k", "sync", "-w", "2", *BIND, "asgi_app:app")
    assert server.wait_exit() != 0
    log = server.log_text()
    assert "asgi_app:app is an ASGI application, but the worker class 'sync' serves WSGI" in log
    assert "use -k asyncio" in log
    assert len(server.booted_pids()) <= 2  # halted, no fork loop


def test_wsgi_app_on_the_asyncio_worker_is_a_boot_error(corral_factory: Factory) -> None:
    server = corral_factory("-k", "asyncio", "-w", "1", *BIND, "simple:app")
    assert server.wait_exit() != 0
    assert "is a WSGI application, but the worker class 'asyncio' serves ASGI" in server.log_text()
    assert len(server.booted_pids()) == 1


def test_failed_lifespan_startup_halts_the_server(corral_factory: Factory) -> None:
    server = corral_factory(
        "-k", "asyncio", "-w", "2", *BIND, "asgi_app:app", env={"ASGI_APP_FAIL_STARTUP": "1"}
    )
    assert server.wait_exit() != 0
    log = server.log_text()
    assert "ASGI lifespan startup failed: database unreachable" in log
    assert "exited with code 4" in log
    assert len(server.booted_pids()) <= 2  # each worker booted once: no fork loop


def test_term_runs_lifespan_shutdown_in_every_worker(
    corral_factory: Factory, tmp_path: Path
) -> None:
    marker = tmp_path / "shutdown.txt"
    server = corral_factory(
        "-k",
        "asyncio",
        "-w",
        "2",
        *BIND,
        "asgi_app:app",
        env={"ASGI_APP_SHUTDOWN_MARKER": str(marker)},
    )
    wait_until(server.booted_pids, lambda pids: len(pids) == 2, 20, server.log_text)
    pids = set(server.booted_pids())
    assert httpx.get(base_url(server)).status_code == 200
    assert server.stop() == 0
    lines = marker.read_text().split()
    assert {int(p) for p in lines[1::2]} == pids and set(lines[0::2]) == {"shutdown"}


def test_term_finishes_the_request_in_flight(corral_factory: Factory, tmp_path: Path) -> None:
    marker = tmp_path / "slow.txt"
    server = corral_factory(
        "-k", "asyncio", "-w", "1", *BIND, "asgi_app:app", env={"ASGI_APP_SLOW_MARKER": str(marker)}
    )
    slow = InFlight(server.addr, "/slow?s=1")
    wait_until(marker.exists, bool, 20, server.log_text)  # the app is running the request
    server.signal(signal.SIGTERM)
    assert slow.result() == (200, "slow done")
    assert server.wait_exit() == 0


def test_int_stops_fast_without_waiting(corral_factory: Factory, tmp_path: Path) -> None:
    marker = tmp_path / "slow.txt"
    server = corral_factory(
        "-k", "asyncio", "-w", "1", "--graceful-timeout", "60", *BIND, "asgi_app:app",
        env={"ASGI_APP_SLOW_MARKER": str(marker)},
    )  # fmt: skip
    slow = InFlight(server.addr, "/slow?s=50")
    wait_until(marker.exists, bool, 20, server.log_text)  # the app is running the request
    server.signal(signal.SIGINT)
    # A graceful stop would wait out the request (50 s, within the 60 s graceful_timeout).
    assert server.wait_exit(timeout=20) == 0
    outcome = slow.result()
    assert isinstance(outcome, Exception)  # cut off, not answered after 50 s


def test_max_requests_replaces_the_worker(corral_factory: Factory) -> None:
    server = corral_factory(
        "-k", "asyncio", "-w", "1", "--max-requests", "2", *BIND, "asgi_app:app"
    )
    url = base_url(server) + "/pid"
    first = {httpx.get(url).text for _ in range(2)}
    assert len(first) == 1
    wait_until(server.booted_pids, lambda pids: len(pids) == 2, 20, server.log_text)
    assert httpx.get(url).text not in first
    assert "Autorestarting worker after current request." in server.log_text()


def test_client_going_away_is_seen_as_http_disconnect(
    corral_factory: Factory, tmp_path: Path
) -> None:
    log = tmp_path / "disconnect.txt"
    server = corral_factory(
        "-k",
        "asyncio",
        "-w",
        "1",
        "--log-level",
        "debug",
        *BIND,
        "asgi_app:app",
        env={"ASGI_APP_DISCONNECT_LOG": str(log)},
    )
    with socket.create_connection(server.addr) as sock:
        sock.sendall(b"POST /disconnect HTTP/1.1\r\nHost: a\r\nContent-Length: 2\r\n\r\nhi")
    wait_until(lambda: log.read_text() if log.exists() else "", lambda text: text != "", 20)
    assert log.read_text() == "http.disconnect\n"
    # The app then returns without a response, as a long poll should: no error for that.
    server.wait_for("client left before the response to /disconnect")
    assert "ASGI app returned without a complete response" not in server.log_text()


def test_heartbeat_keeps_an_idle_worker_alive(corral_factory: Factory) -> None:
    # timeout 4 with a beat every second: a loaded machine may delay a beat by almost 3 s
    # before the arbiter would take the worker for hung.
    server = corral_factory(
        "-k", "asyncio", "-w", "1", "--timeout", str(HEARTBEAT_TIMEOUT), *BIND, "asgi_app:app"
    )
    wait_until(server.booted_pids, lambda pids: len(pids) == 1, 20, server.log_text)
    # Two timeouts with no request: without the loop's ticker refreshing the heartbeat, the
    # worker would be aborted and replaced within one timeout (plus the arbiter's 1 s tick).
    with pytest.raises(AssertionError):
        wait_until(server.booted_pids, lambda pids: len(pids) > 1, 2 * HEARTBEAT_TIMEOUT)
    assert httpx.get(base_url(server)).status_code == 200
    assert "WORKER TIMEOUT" not in server.log_text()
