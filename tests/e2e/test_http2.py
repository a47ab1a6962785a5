"""HTTP/2 end to end, with real clients (curl, httpx, nghttp, h2load, and an h2-library client
that shows frames) against the threaded and the asyncio worker: h2c by prior knowledge and by
Upgrade, ALPN h2 over TLS, large bodies under flow control, a stalled stream, the SETTINGS,
graceful GOAWAY on HUP and TERM, request_timeout per stream and the access log."""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
from h2.errors import ErrorCodes
from h2.settings import SettingCodes

from tests.e2e.apps.h2_app import payload
from tests.e2e.conftest import CorralProcess, wait_until
from tests.e2e.h2client import H2Client

Factory = Callable[..., CorralProcess]
WORKERS = {
    "threaded": ["-k", "threaded", "h2_app:app"],
    "asyncio": ["-k", "asyncio", "h2_app:asgi"],
}
H2C = ["--http-protocols", "h2,h1", "--http2-cleartext", "both"]
IMF_DATE = re.compile(rb"[A-Z][a-z]{2}, \d\d [A-Z][a-z]{2} \d{4} \d\d:\d\d:\d\d GMT")
PREFACE = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
CLIENT_TIMEOUT = 30

needs_curl = pytest.mark.skipif(shutil.which("curl") is None, reason="needs curl")
needs_openssl = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")
workers = pytest.mark.parametrize("worker", sorted(WORKERS))


def _serve(factory: Factory, worker: str, *extra: str) -> CorralProcess:
    return factory("-w", "1", "-b", "127.0.0.1:0", *extra, *WORKERS[worker])


def _tls(cert: Path) -> list[str]:
    return ["--certfile", str(cert / "cert.pem"), "--keyfile", str(cert / "key.pem")]


@pytest.fixture(scope="module")
def cert(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A self-signed certificate for localhost and 127.0.0.1 (its own CA)."""
    d = tmp_path_factory.mktemp("h2cert")
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:prime256v1",
         "-nodes", "-keyout", "key.pem", "-out", "cert.pem", "-days", "2", "-subj", "/CN=localhost",
         "-addext", "subjectAltName=DNS:localhost,IP:127.0.0.1"],
        cwd=d, check=True, capture_output=True, timeout=60,
    )  # fmt: skip
    return d


def _client_tls(cert: Path, alpn: list[str] | None = None) -> ssl.SSLContext:
    """Trusting ``cert``; httpx sets the ALPN list itself, from its http1 and http2."""
    ctx = ssl.create_default_context(cafile=str(cert / "cert.pem"))
    if alpn:
        ctx.set_alpn_protocols(alpn)
    return ctx


def _curl(*args: str) -> tuple[str, dict[str, Any]]:
    """curl on one URL: (the HTTP version it reports, the JSON body)."""
    done = subprocess.run(
        ["curl", "-sS", "--max-time", "20", "-w", "\n%{http_version}", *args],
        capture_output=True, timeout=CLIENT_TIMEOUT, check=False,
    )  # fmt: skip
    out = done.stdout.decode()
    assert done.returncode == 0, f"curl {args}: {done.returncode} {out} {done.stderr!r}"
    body, _, version = out.rpartition("\n")
    return version, json.loads(body)


def _url(server: CorralProcess, path: str = "/") -> str:
    return f"{server.urls[0]}{path}"


# -- 1, 2: curl and httpx, in clear text and over TLS -------------------------------------------


@needs_curl
@workers
def test_curl_h2c_by_prior_knowledge_and_by_upgrade(corral_factory: Factory, worker: str) -> None:
    server = _serve(corral_factory, worker, *H2C)
    for how in ("--http2-prior-knowledge", "--http2"):  # the preface first; Upgrade: h2c, 101
        version, doc = _curl(how, _url(server))
        assert (version, doc["protocol"], doc["scheme"]) == ("2", "HTTP/2", "http"), how


@needs_curl
@needs_openssl
@workers
def test_tls_alpn_h2_with_curl_and_httpx(corral_factory: Factory, worker: str, cert: Path) -> None:
    server = _serve(corral_factory, worker, *_tls(cert), "--http-protocols", "h2,h1")
    version, doc = _curl("--http2", "-k", _url(server))
    assert (version, doc["protocol"], doc["scheme"]) == ("2", "HTTP/2", "https")
    with httpx.Client(http2=True, verify=_client_tls(cert), timeout=CLIENT_TIMEOUT) as c:
        views = [c.get(_url(server)) for _ in range(3)]
        posted = c.post(_url(server, "/echo"), content=b"x" * 100_000)
    assert {(r.status_code, r.http_version) for r in [*views, posted]} == {(200, "HTTP/2")}
    assert {r.json()["protocol"] for r in views} == {"HTTP/2"}
    assert len({r.json()["port"] for r in views}) == 1  # all on one connection
    assert IMF_DATE.fullmatch(views[0].headers["date"].encode()), views[0].headers
    assert posted.text == f"100000 {hashlib.sha256(b'x' * 100_000).hexdigest()}"
    # A client without h2 still gets HTTP/1.1 from the same listener.
    with httpx.Client(verify=_client_tls(cert), timeout=CLIENT_TIMEOUT) as c:
        old = c.get(_url(server))
    assert (old.http_version, old.json()["protocol"]) == ("HTTP/1.1", "HTTP/1.1")


# -- 2, 4: httpx by prior knowledge, several requests on one connection, large bodies ------------


@workers
def test_httpx_h2c_one_connection_and_large_bodies_both_ways(
    corral_factory: Factory, worker: str
) -> None:
    """4 MiB up, 8 MiB down, through the default 65,535-byte stream windows both ways."""
    server = _serve(corral_factory, worker, *H2C)
    with H2Client(server.addr) as probe:  # http2_initial_window_size is left at its default
        probe.pump(lambda: bool(probe.server_settings))
    assert probe.server_settings.get(SettingCodes.INITIAL_WINDOW_SIZE, 65535) == 65535
    upload = os.urandom(4 << 20)
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as c:
        views = [c.get(_url(server)).json() for _ in range(3)]
        echoed = c.post(_url(server, "/echo"), content=upload)
        down = c.get(_url(server, f"/big?n={8 << 20}"))
        after = c.get(_url(server)).json()
    assert {v["protocol"] for v in views} == {"HTTP/2"}
    assert len({v["port"] for v in [*views, after]}) == 1
    assert (echoed.status_code, echoed.http_version) == (200, "HTTP/2")
    assert echoed.text == f"{len(upload)} {hashlib.sha256(upload).hexdigest()}"
    assert (down.status_code, down.headers["content-length"]) == (200, str(8 << 20))
    assert down.content == payload(8 << 20)


def test_a_large_body_given_whole_goes_out_as_frames(corral_factory: Factory) -> None:
    """A WSGI body past the gateway's JOIN_MAX, given in one piece, on a stream: the same
    bytes, with the app's Content-Length when it gave one (DATA frames frame the body, so none
    is added), and HEAD without them."""
    server = _serve(corral_factory, "threaded", *H2C)
    n = 3 << 20
    with httpx.Client(http1=False, http2=True, timeout=CLIENT_TIMEOUT) as c:
        given = c.get(_url(server, f"/whole?n={n}"))
        added = c.get(_url(server, f"/whole?n={n}&cl=0"))
        head = c.head(_url(server, f"/whole?n={n}"))
        after = c.get(_url(server)).json()
    for resp in (given, added):
        assert (resp.status_code, resp.http_version) == (200, "HTTP/2")
        assert resp.content == payload(n)
    assert given.headers["content-length"] == str(n) and "content-length" not in added.headers
    assert (head.status_code, head.headers["content-length"], head.content) == (200, str(n), b"")
    assert after["protocol"] == "HTTP/2"


# -- 3: nghttp and h2load ------------------------------------------------------------------------


@pytest.mark.skipif(
    shutil.which("h2load") is None or shutil.which("nghttp") is None,
    reason="needs nghttp and h2load (Debian package nghttp2-client)",
)
@workers
def test_nghttp_and_h2load_many_streams_on_one_connection(
    corral_factory: Factory, worker: str
) -> None:
    server = _serve(corral_factory, worker, *H2C)
    url = _url(server)
    for how in ([], ["-u"]):  # prior knowledge, then HTTP Upgrade
        run = subprocess.run(["nghttp", "-nv", "-m", "20", *how, url], capture_output=True,
                             timeout=CLIENT_TIMEOUT, check=False)  # fmt: skip
        out = run.stdout.decode()
        assert run.returncode == 0, out + run.stderr.decode()
        assert out.count(":status: 200") == 20, out
        assert ("HTTP Upgrade success" in out) == bool(how), out
    run = subprocess.run(["h2load", "-n", "2000", "-c", "4", "-m", "50", url],
                         capture_output=True, timeout=60, check=False)  # fmt: skip
    out = run.stdout.decode()
    assert run.returncode == 0, out + run.stderr.decode()
    assert "Application protocol: h2c" in out, out
    assert re.search(r"requests: 2000 total, 2000 started, 2000 done, 2000 succeeded, 0 failed,"
                     r" 0 errored, 0 timeout", out), out  # fmt: skip
    assert "status codes: 2000 2xx, 0 3xx, 0 4xx, 0 5xx" in out, out


# -- 5: flow control: a stalled stream stalls only itself -----------------------------------------


@workers
def test_a_stalled_stream_stalls_only_itself_then_send_timeout_resets_it(
    corral_factory: Factory, worker: str
) -> None:
    server = _serve(corral_factory, worker, *H2C, "--send-timeout", "2")
    with H2Client(server.addr, window=1024) as client:
        began = time.monotonic()
        stalled = client.request(f"/big?n={1 << 20}", hold=True)
        client.pump(lambda: len(client.replies[stalled].body) == 1024)  # its window is full
        small = client.request("/")
        (reply,) = client.wait(small, timeout=5)
        assert reply.status == 200 and json.loads(reply.body)["protocol"] == "HTTP/2"
        assert not client.replies[stalled].over, client.describe()  # still waiting meanwhile
        (cut,) = client.wait(stalled, timeout=15)
        assert cut.reset == ErrorCodes.CANCEL and not cut.ended, client.describe()
        assert cut.at - began >= 1.5, cut.at - began  # send_timeout's, not sooner
        # The connection lives on.
        (again,) = client.wait(client.request("/"))
        assert again.status == 200 and not client.goaways and not client.closed


# -- 6: settings, and where HTTP/2 is not served --------------------------------------------------


@workers
def test_the_settings_frame_carries_max_concurrent_streams(
    corral_factory: Factory, worker: str
) -> None:
    server = _serve(corral_factory, worker, *H2C, "--http2-max-concurrent-streams", "7",
                    "--http2-max-frame-size", "32768")  # fmt: skip
    with H2Client(server.addr) as client:
        (reply,) = client.wait(client.request("/"))
    assert reply.status == 200 and IMF_DATE.fullmatch(reply.headers[b"date"]), reply
    assert client.server_settings[SettingCodes.MAX_CONCURRENT_STREAMS] == 7, client.describe()
    assert client.server_settings[SettingCodes.MAX_FRAME_SIZE] == 32768, client.describe()


def _first_response_line(sock: socket.socket, data: bytes) -> bytes:
    sock.sendall(data)
    got = b""
    while b"\r\n" not in got:
        piece = sock.recv(4096)
        if not piece:
            break
        got += piece
    return got.split(b"\r\n", 1)[0]


@needs_curl
@needs_openssl
@workers
def test_without_h2_the_preface_gets_505_and_alpn_offers_http11(
    corral_factory: Factory, worker: str, cert: Path
) -> None:
    tls = _serve(corral_factory, worker, *_tls(cert))  # http_protocols = h1, the default
    ctx = _client_tls(cert, ["h2", "http/1.1"])
    with ctx.wrap_socket(socket.create_connection(tls.addr, timeout=10),
                         server_hostname="localhost") as sock:  # fmt: skip
        assert sock.selected_alpn_protocol() == "http/1.1"
        assert _first_response_line(sock, PREFACE).startswith(b"HTTP/1.1 505 ")
    version, doc = _curl("--http2", "-k", _url(tls))
    assert (version, doc["protocol"]) == ("1.1", "HTTP/1.1")
    # h2 on, but no h2c (http2_cleartext = off): no preface, no Upgrade in clear text.
    clear = _serve(corral_factory, worker, "--http-protocols", "h2,h1")
    with socket.create_connection(clear.addr, timeout=10) as sock:
        assert _first_response_line(sock, PREFACE).startswith(b"HTTP/1.1 505 ")
    version, doc = _curl("--http2", _url(clear))
    assert (version, doc["protocol"]) == ("1.1", "HTTP/1.1")


@needs_curl
@needs_openssl
def test_the_sync_worker_warns_and_serves_http11(corral_factory: Factory, cert: Path) -> None:
    server = corral_factory("-w", "1", "-b", "127.0.0.1:0", *_tls(cert), "--http-protocols",
                            "h2,h1", "-k", "sync", "h2_app:app")  # fmt: skip
    server.wait_for(r"\[WARNING\] http_protocols includes h2, but the sync worker serves "
                    r"HTTP/1\.1 only")  # fmt: skip
    version, doc = _curl("--http2", "-k", _url(server))
    assert (version, doc["protocol"]) == ("1.1", "HTTP/1.1")


# -- 7: graceful GOAWAY on HUP and TERM ----------------------------------------------------------


@pytest.mark.parametrize("sig", ["HUP", "TERM"])
@workers
def test_a_graceful_stop_finishes_the_streams_in_flight_after_goaway(
    corral_factory: Factory, worker: str, sig: str, tmp_path: Path
) -> None:
    """Three streams wait in the app (until a file appears); the master is signalled: the
    client is told GOAWAY naming the last of them, a stream it opens after that is refused
    (REFUSED_STREAM: safe to retry), the three complete with 200, and the connection ends."""
    server = _serve(corral_factory, worker, *H2C)
    old = server.wait_workers(lambda pids: len(pids) == 1)
    gate = tmp_path / "gate"
    with H2Client(server.addr, timeout=20) as client:
        sids = [client.request(f"/gate?f={gate}") for _ in range(3)]
        server.wait_for(rf"h2_app: waiting \d+ {re.escape(str(gate))}", count=3)
        server.signal(getattr(signal, f"SIG{sig}"))
        client.pump(lambda: bool(client.goaways))
        assert client.goaways[0] == (sids[-1], ErrorCodes.NO_ERROR), client.describe()
        assert not any(client.replies[s].over for s in sids)  # the GOAWAY came first
        late = client.request("/")
        (refused,) = client.wait(late)
        assert refused.reset == ErrorCodes.REFUSED_STREAM, client.describe()
        gate.touch()
        replies = client.wait(*sids)
        assert [(r.status, bytes(r.body)) for r in replies] == [(200, b"opened")] * 3
        client.until_closed()
    if sig == "TERM":
        assert server.wait_exit() == 0
        return
    new = server.wait_workers(lambda pids: len(pids) == 1 and not pids & old)
    with H2Client(server.addr) as client:
        (reply,) = client.wait(client.request("/"))
    assert reply.status == 200 and {json.loads(reply.body)["pid"]} == new


# -- 8: request_timeout per stream, an access log line per stream --------------------------------


@workers
def test_request_timeout_ends_one_stream_and_each_stream_is_logged(
    corral_factory: Factory, worker: str, tmp_path: Path
) -> None:
    log = tmp_path / "access.log"
    server = _serve(corral_factory, worker, *H2C, "--request-timeout", "2",
                    "--access-logfile", str(log))  # fmt: skip
    with H2Client(server.addr, timeout=20) as client:
        began = time.monotonic()
        stuck = client.request(f"/gate?f={tmp_path}/never")
        quick = client.request("/")
        posted = client.request("/echo", "POST", b"abc")
        view, echo = client.wait(quick, posted)
        assert view.status == 200 and echo.status == 200 and bytes(echo.body).startswith(b"3 ")
        assert not client.replies[stuck].over  # answered while the stuck one runs
        (late,) = client.wait(stuck)
        assert late.status == 504 and late.ended, client.describe()
        assert 2.0 <= late.at - began < 20
        (after,) = client.wait(client.request("/"))
        assert after.status == 200 and not client.goaways
    lines = wait_until(lambda: log.read_text().splitlines() if log.exists() else [],
                       lambda got: len(got) >= 4, 10)  # fmt: skip
    requests = sorted(m.groups() for line in lines if (m := re.search(r'"([^"]*)" (\d{3}) ', line)))
    assert requests == [("GET / HTTP/2", "200"), ("GET / HTTP/2", "200"),
                        (f"GET /gate?f={tmp_path}/never HTTP/2", "504"),
                        ("POST /echo HTTP/2", "200")]  # fmt: skip
