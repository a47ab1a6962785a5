"""HTTPS in every worker: versions, ALPN, resumption, client certificates, stalls, HUP reload;
the same seen by `openssl s_client` as by Python's ssl; a certificate swapped by HUP under load."""

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
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest

from tests.e2e.conftest import CorralProcess, wait_until

Factory = Callable[..., CorralProcess]
pytestmark = pytest.mark.skipif(shutil.which("openssl") is None, reason="needs openssl")

APPS = {
    "sync": ["-k", "sync", "tls_view:app"],
    "threaded": ["-k", "threaded", "tls_view:app"],
    "asyncio": ["-k", "asyncio", "tls_view:asgi"],
}


def _openssl(*args: str, cwd: Path) -> None:
    subprocess.run(["openssl", *args], cwd=cwd, check=True, capture_output=True, timeout=60)


def _signed(name: str, cn: str, cwd: Path, ext: str = "") -> None:
    """name.key and name.pem, signed by the test CA (ca.key, ca.pem)."""
    _openssl("req", "-newkey", "rsa:2048", "-nodes", "-keyout", f"{name}.key", "-out",
             f"{name}.csr", "-subj", f"/CN={cn}", cwd=cwd)  # fmt: skip
    extra = []
    if ext:
        (cwd / f"{name}.ext").write_text(ext)
        extra = ["-extfile", f"{name}.ext"]
    _openssl("x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-out", f"{name}.pem", "-days", "2", *extra, cwd=cwd)  # fmt: skip


@pytest.fixture(scope="module")
def certs(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, a server certificate for 127.0.0.1 (two of them, for reloads) and a client's."""
    d = tmp_path_factory.mktemp("tls")
    _openssl("req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", "ca.key", "-out",
             "ca.pem", "-days", "2", "-subj", "/CN=corral test CA", cwd=d)  # fmt: skip
    san = "subjectAltName=DNS:localhost,IP:127.0.0.1\n"
    _signed("server", "localhost", d, san)
    _signed("renewed", "localhost", d, san)
    _signed("client", "service-a", d)
    (d / "file.bin").write_bytes(os.urandom(1 << 20))
    return d


def _serve(factory: Factory, worker: str, certs: Path, *extra: str, cert: str = "server") -> Any:
    return factory(
        "-w", "1", "-b", "127.0.0.1:0", "--certfile", str(certs / f"{cert}.pem"),
        "--keyfile", str(certs / f"{cert}.key"), "--header-timeout", "2", *extra, *APPS[worker],
        env={"TLS_VIEW_FILE": str(certs / "file.bin")},
    )  # fmt: skip


def _client(certs: Path, **kw: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=str(certs / "ca.pem"))
    for name, value in kw.items():
        setattr(ctx, name, value)
    return ctx


def _get(sock: ssl.SSLSocket, path: str = "/") -> tuple[int, bytes, dict[str, str]]:
    """One keep-alive GET on ``sock``: status, body, lower-cased headers."""
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: localhost\r\n\r\n".encode())
    data = b""
    while b"\r\n\r\n" not in data:
        piece = sock.recv(65536)
        assert piece, f"connection closed before a response: {data!r}"
        data += piece
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = {k.lower(): v.strip() for k, _, v in (ln.partition(":") for ln in lines[1:])}
    length = int(headers["content-length"])
    while len(body) < length:
        piece = sock.recv(65536)
        assert piece
        body += piece
    return int(lines[0].split()[1]), body, headers


def _connect(server: CorralProcess, ctx: ssl.SSLContext, **kw: Any) -> ssl.SSLSocket:
    raw = socket.create_connection(server.addr, timeout=10)
    return ctx.wrap_socket(raw, server_hostname="localhost", **kw)


@pytest.mark.parametrize("worker", sorted(APPS))
def test_https_in_every_worker(corral_factory: Factory, certs: Path, worker: str) -> None:
    server = _serve(corral_factory, worker, certs)
    assert server.urls[0].startswith("https://127.0.0.1:")  # the "Listening at:" line
    client = _client(certs)
    client.set_alpn_protocols(["h2", "http/1.1"])
    with _connect(server, client) as sock:
        assert sock.selected_alpn_protocol() == "http/1.1"  # no h2 until HTTP/2 exists
        assert sock.version() == "TLSv1.3"
        status, body, headers = _get(sock)
        doc = json.loads(body)
        assert status == 200 and doc["scheme"] == "https"
        if worker == "asyncio":
            assert doc["tls"]["tls_version"] == 0x0304 and doc["tls"]["client_cert_chain"] == []
            assert isinstance(doc["tls"]["cipher_suite"], int)
        else:
            assert doc["HTTPS"] == "on" and doc["SSL_PROTOCOL"] == "TLSv1.3"
            assert doc["SSL_CLIENT_VERIFY"] == "NONE"
        if worker != "sync":  # keep-alive over TLS
            assert headers.get("connection") != "close"
            assert _get(sock)[0] == 200


@pytest.mark.parametrize("worker", ["sync", "threaded"])
def test_file_wrapper_over_tls_sends_the_whole_file(
    corral_factory: Factory, certs: Path, worker: str
) -> None:
    """No kernel sendfile under TLS: it would bypass the encryption."""
    server = _serve(corral_factory, worker, certs)
    with _connect(server, _client(certs)) as sock:
        status, body, _ = _get(sock, "/file")
    assert status == 200
    assert (
        hashlib.sha256(body).digest() == hashlib.sha256((certs / "file.bin").read_bytes()).digest()
    )


@pytest.mark.parametrize("worker", ["sync", "threaded"])
def test_a_large_body_given_whole_over_tls_arrives_whole(
    corral_factory: Factory, certs: Path, worker: str
) -> None:
    """A body past the gateway's JOIN_MAX is written after its head (TLSTransport.send_after),
    with the Content-Length the app left out."""
    server = _serve(corral_factory, worker, certs)
    expected = (certs / "file.bin").read_bytes()
    with _connect(server, _client(certs)) as sock:
        status, body, headers = _get(sock, "/whole")
        assert status == 200 and body == expected
        assert headers["content-length"] == str(len(expected))
        if worker == "threaded":  # the sync worker closes after each response
            sock.sendall(b"HEAD /whole HTTP/1.1\r\nHost: localhost\r\n\r\n")
            head = b""
            while not head.endswith(b"\r\n\r\n"):
                piece = sock.recv(1)
                assert piece, "closed before the HEAD response"
                head += piece
            assert head.startswith(b"HTTP/1.1 200 ")
            assert f"content-length: {len(expected)}\r\n".encode() in head.lower()
            assert _get(sock, "/")[0] == 200  # nothing of a body came after the HEAD head


@pytest.mark.parametrize("worker", sorted(APPS))
def test_versions_below_the_minimum_are_refused(
    corral_factory: Factory, certs: Path, worker: str
) -> None:
    server = _serve(corral_factory, worker, certs, "--ssl-min-version", "TLSv1.3")
    old = _client(certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    with pytest.raises((ssl.SSLError, ConnectionResetError)), _connect(server, old) as sock:
        _get(sock)
    with _connect(server, _client(certs)) as sock:
        assert _get(sock)[0] == 200


@pytest.mark.parametrize("worker", sorted(APPS))
def test_sessions_resume_across_workers(corral_factory: Factory, certs: Path, worker: str) -> None:
    """One context made before the fork: a ticket from one worker is good at every other."""
    server = corral_factory(
        "-w", "2", "-b", "127.0.0.1:0", "--certfile", str(certs / "server.pem"),
        "--keyfile", str(certs / "server.key"), *APPS[worker],
    )  # fmt: skip
    server.wait_workers(lambda pids: len(pids) == 2)
    client = _client(certs)
    with _connect(server, client) as first:
        _get(first)  # TLS 1.3 tickets arrive after the handshake, with the first response
        session = first.session
    pids, reused = set(), []
    for _ in range(60):  # until both workers have answered (the kernel picks which)
        with _connect(server, client, session=session) as sock:
            pids.add(json.loads(_get(sock)[1])["pid"])
            reused.append(sock.session_reused)
        if len(pids) == 2 and len(reused) >= 6:
            break
    assert all(reused), reused
    assert len(pids) == 2, "every connection reached one worker: the test proves nothing"


@pytest.mark.parametrize("worker", sorted(APPS))
def test_tls12_sessions_resume_by_session_id(
    corral_factory: Factory, certs: Path, worker: str
) -> None:
    """A TLS 1.2 client that takes no tickets resumes from the worker's session cache.

    It closes with close_notify, as a careful client does: OpenSSL drops a session whose
    connection ended without one from the side that closed (the asyncio worker's stream
    sends none after the client's FIN; tickets, the usual way, do not depend on it).
    """
    server = _serve(corral_factory, worker, certs)
    client = _client(certs, maximum_version=ssl.TLSVersion.TLSv1_2)
    client.options |= ssl.OP_NO_TICKET
    with _connect(server, client) as first:
        _get(first)
        session = first.session
        first.unwrap()
    assert session is not None and session.id
    with _connect(server, client, session=session) as again:
        assert again.version() == "TLSv1.2" and again.session_reused
        assert _get(again)[0] == 200


@pytest.mark.parametrize("worker", sorted(APPS))
def test_client_certificates_required_and_seen(
    corral_factory: Factory, certs: Path, worker: str
) -> None:
    server = _serve(
        corral_factory, worker, certs, "--cert-reqs", "2", "--ca-certs", str(certs / "ca.pem")
    )
    refused = (ssl.SSLError, ConnectionResetError, AssertionError)
    with pytest.raises(refused), _connect(server, _client(certs)) as sock:  # no certificate
        _get(sock)
    client = _client(certs)
    client.load_cert_chain(str(certs / "client.pem"), str(certs / "client.key"))
    with _connect(server, client) as sock:
        status, body, _ = _get(sock)
    doc = json.loads(body)
    assert status == 200
    if worker == "asyncio":
        assert doc["tls"]["client_cert_name"] == "/CN=service-a"
        assert doc["tls"]["client_cert_chain"][0].startswith("-----BEGIN CERTIFICATE-----")
    else:
        assert doc["SSL_CLIENT_VERIFY"] == "SUCCESS"
        assert doc["SSL_CLIENT_S_DN"] == "/CN=service-a"
        assert doc["SSL_CLIENT_I_DN"] == "/CN=corral test CA"
        assert doc["SSL_CLIENT_CERT"].startswith("-----BEGIN CERTIFICATE-----")


@pytest.mark.parametrize("worker", sorted(APPS))
def test_a_client_that_never_finishes_its_handshake_is_dropped(
    corral_factory: Factory, certs: Path, worker: str
) -> None:
    """It holds no worker meanwhile (threaded, asyncio), and goes at header_timeout (2 s)."""
    server = _serve(corral_factory, worker, certs)
    stalled = socket.create_connection(server.addr, timeout=10)
    stalled.sendall(b"\x16\x03\x01")  # the first bytes of a ClientHello, then nothing
    started = time.monotonic()
    if worker != "sync":
        with _connect(server, _client(certs)) as sock:
            assert _get(sock)[0] == 200
    assert stalled.recv(1024) == b""  # closed by the server, with nothing in plain text
    assert time.monotonic() - started < 8
    stalled.close()


@pytest.mark.parametrize("worker", ["threaded", "asyncio"])
def test_hup_reloads_the_certificate_and_a_bad_one_keeps_the_old(
    corral_factory: Factory, certs: Path, worker: str, tmp_path: Path
) -> None:
    live = tmp_path / "live"
    live.mkdir()
    for ext in ("pem", "key"):
        shutil.copy(certs / f"server.{ext}", live / f"site.{ext}")
    server = corral_factory(
        "-w", "1", "-b", "127.0.0.1:0", "--certfile", str(live / "site.pem"),
        "--keyfile", str(live / "site.key"), *APPS[worker],
    )  # fmt: skip
    client = _client(certs)

    def serial() -> str:
        with _connect(server, client) as sock:
            assert _get(sock)[0] == 200
            cert = sock.getpeercert()
            return str(cert["serialNumber"]) if cert else ""

    assert serial() == _serial_of(certs / "server.pem")
    for ext in ("pem", "key"):
        shutil.copy(certs / f"renewed.{ext}", live / f"site.{ext}")
    renewed = _serial_of(certs / "renewed.pem")
    server.signal(signal.SIGHUP)
    # Once the old worker has gone, every connection gets the renewed certificate.
    wait_until(lambda: [serial() for _ in range(4)], lambda s: s == [renewed] * 4, 20)
    (live / "site.pem").write_text("not a certificate\n")
    server.signal(signal.SIGHUP)
    server.wait_for("TLS: keeping the previous certificate")
    server.wait_for("Booting worker", count=3)
    assert [serial() for _ in range(4)] == [renewed] * 4  # by the new workers too


def _serial_of(pem: Path) -> str:
    """The serial number of a certificate file, as getpeercert() shows it."""
    der = ssl.PEM_cert_to_DER_cert(pem.read_text())
    out = subprocess.run(
        ["openssl", "x509", "-inform", "DER", "-noout", "-serial"],
        input=der, capture_output=True, check=True, timeout=30,
    )  # fmt: skip
    return out.stdout.decode().strip().split("=", 1)[1]


# -- openssl s_client: another TLS stack than Python's, the one operators test with -------------

GET_AND_CLOSE = b"GET / HTTP/1.1\r\nHost: localhost\r\nConnection: close\r\n\r\n"
S_CLIENT_TIMEOUT = 20


class SClient(NamedTuple):
    """One ``openssl s_client`` run: its exit status, stdout (the session summary and the
    response, interleaved at record boundaries), stderr (errors and received alerts), and the
    server's log as it was then."""

    code: int
    out: str
    err: str
    log: str

    @property
    def status(self) -> int | None:
        """The HTTP status of the response it printed, None without one."""
        found = re.search(r"HTTP/1\.1 (\d{3}) ", self.out)
        return int(found.group(1)) if found else None

    def doc(self) -> dict[str, Any]:
        """The JSON the tls_view app answered."""
        start = self.out.find('{"scheme"')
        assert start >= 0, f"no response body in:\n{self.out}\n{self.err}"
        doc, _ = json.JSONDecoder().raw_decode(self.out, start)
        assert isinstance(doc, dict)
        return doc

    def describe(self) -> str:
        return (
            f"exit {self.code}\n--- stdout\n{self.out[-3000:]}\n--- stderr\n{self.err}"
            f"--- server log\n{self.log}"
        )


def _s_client(server: CorralProcess, certs: Path, *args: str) -> SClient:
    """``openssl s_client`` against ``server``: one GET with Connection: close on stdin, then
    stdin closed; it reads until the server closes (``-ign_eof``), so that a TLS 1.3 ticket,
    sent after the handshake, arrives before it exits. The server's certificate is verified."""
    host, port = server.addr
    assert host == "127.0.0.1"
    cmd = [
        "openssl", "s_client", "-connect", f"{host}:{port}", "-servername", "localhost",
        "-CAfile", str(certs / "ca.pem"), "-verify_return_error", "-ign_eof", *args,
    ]  # fmt: skip
    done = subprocess.run(
        cmd, input=GET_AND_CLOSE, capture_output=True, timeout=S_CLIENT_TIMEOUT, check=False
    )
    return SClient(
        done.returncode,
        done.stdout.decode("utf-8", "replace"),
        done.stderr.decode("utf-8", "replace"),
        server.log_text(),
    )


def _refused(run: SClient, offered: str, alert: str, worker: str) -> bool:
    """The handshake failed after the client offered ``offered``: no cipher was agreed, no
    response came, and the server said why with ``alert``. Not the asyncio worker: asyncio's
    TLS transport closes on a failed handshake without sending the alert OpenSSL wrote (the
    client sees an EOF)."""
    return (
        run.code != 0
        and "Cipher is (NONE)" in run.out
        and f"Protocol  : {offered}" in run.out
        and run.status is None
        and (f"alert {alert}" in run.err or worker == "asyncio")
    )


# Each case: the server's ssl_min_version (None: the default, TLS 1.2), s_client's options
# for a version below it, what that offers, then for the minimum itself, and what it gets.
# OpenSSL 3 refuses TLS 1.1 on the client side at its default security level: SECLEVEL=0
# makes s_client send a TLS 1.1 ClientHello, for the server to refuse.
VERSION_CASES = {
    "default-1.2": (None, ["-tls1_1", "-cipher", "DEFAULT@SECLEVEL=0"], "TLSv1.1", "-tls1_2",
                    "TLSv1.2"),
    "min-1.3": ("TLSv1.3", ["-tls1_2"], "TLSv1.2", "-tls1_3", "TLSv1.3"),
}  # fmt: skip


@pytest.mark.parametrize("case", sorted(VERSION_CASES))
@pytest.mark.parametrize("worker", sorted(APPS))
def test_s_client_below_the_minimum_is_refused_and_the_minimum_served(
    corral_factory: Factory, certs: Path, worker: str, case: str
) -> None:
    minimum, below, offered, at, version = VERSION_CASES[case]
    extra = ["--ssl-min-version", minimum] if minimum else []
    server = _serve(corral_factory, worker, certs, *extra)
    old = _s_client(server, certs, *below)
    assert _refused(old, offered, "protocol version", worker), old.describe()
    ok = _s_client(server, certs, at)
    assert ok.status == 200 and f"New, {version}, Cipher is " in ok.out, ok.describe()


@pytest.mark.parametrize("worker", sorted(APPS))
def test_s_client_alpn_gets_http11(corral_factory: Factory, certs: Path, worker: str) -> None:
    server = _serve(corral_factory, worker, certs)
    run = _s_client(server, certs, "-alpn", "h2,http/1.1")
    # h2 is offered only when http_protocols asks for it (tests/e2e/test_http2.py)
    assert "ALPN protocol: http/1.1" in run.out, run.describe()
    assert run.status == 200 and run.doc()["scheme"] == "https", run.describe()


# Each way to resume: s_client's options, and the version both runs must show.
RESUMPTION = {
    "tls1.3-ticket": ([], "TLSv1.3"),
    "tls1.2-ticket": (["-tls1_2"], "TLSv1.2"),
    "tls1.2-session-id": (["-tls1_2", "-no_ticket"], "TLSv1.2"),
}


@pytest.mark.parametrize("how", sorted(RESUMPTION))
@pytest.mark.parametrize("worker", sorted(APPS))
def test_s_client_resumes_its_session(
    corral_factory: Factory, certs: Path, worker: str, how: str, tmp_path: Path
) -> None:
    """A second run with the first run's saved session reports "Reused".

    The server ends each connection (Connection: close) with close_notify, which every worker
    sends, so a session-ID session stays in its cache (see design.md on the asyncio worker).
    """
    options, version = RESUMPTION[how]
    server = _serve(corral_factory, worker, certs)
    saved = tmp_path / "session.pem"
    first = _s_client(server, certs, *options, "-sess_out", str(saved))
    assert first.status == 200 and f"New, {version}, " in first.out, first.describe()
    assert saved.stat().st_size > 0
    # A ticket came, or (-no_ticket) none did: the resumption below is the one named.
    assert ("TLS session ticket:" in first.out) == ("-no_ticket" not in options), first.out
    again = _s_client(server, certs, *options, "-sess_in", str(saved))
    assert again.status == 200, again.describe()
    assert f"Reused, {version}, " in again.out, again.describe()


@pytest.mark.parametrize("worker", sorted(APPS))
def test_s_client_certificate_required_and_seen(
    corral_factory: Factory, certs: Path, worker: str
) -> None:
    server = _serve(
        corral_factory, worker, certs, "--cert-reqs", "2", "--ca-certs", str(certs / "ca.pem")
    )
    anonymous = _s_client(server, certs)
    # TLS 1.3: the client's side of the handshake ends before the server has checked the
    # certificate it asked for, so the refusal comes after, as an alert (see _refused on the
    # asyncio worker's), never as a response.
    assert "Requested Signature Algorithms" in anonymous.out, anonymous.describe()  # asked
    assert anonymous.code != 0 and anonymous.status is None, anonymous.describe()
    assert "HTTP/1.1" not in anonymous.out, anonymous.describe()
    if worker != "asyncio":
        assert "alert certificate required" in anonymous.err, anonymous.describe()
    client = ["-cert", str(certs / "client.pem"), "-key", str(certs / "client.key")]
    run = _s_client(server, certs, *client)
    assert run.status == 200, run.describe()
    doc = run.doc()
    if worker == "asyncio":
        assert doc["tls"]["client_cert_name"] == "/CN=service-a"
    else:
        assert doc["SSL_CLIENT_VERIFY"] == "SUCCESS"
        assert doc["SSL_CLIENT_S_DN"] == "/CN=service-a"
        assert doc["SSL_CLIENT_I_DN"] == "/CN=corral test CA"


# -- HUP under load ---------------------------------------------------------------------------


class _TLSLoad:
    """Two client threads sending GETs over TLS until stopped, or LOAD_REQUESTS each, or
    LOAD_SECONDS: one on a new connection per request, one on kept-alive connections (a new
    one only after a response says Connection: close). Each waits PACE between requests, to
    leave the server's new workers some of a small machine. Every outcome other than a 200 is
    kept in ``failures``; ``serials`` holds the certificate serial of each request's
    connection."""

    LOAD_REQUESTS = 20_000
    LOAD_SECONDS = 45.0
    PACE = 0.002

    def __init__(self, server: CorralProcess, client: ssl.SSLContext) -> None:
        self.server = server
        self.client = client
        self.failures: list[str] = []
        self.serials: dict[str, list[str]] = {"new": [], "kept": []}
        self.kept_connections = 0
        self._stop = threading.Event()
        self._until = time.monotonic() + self.LOAD_SECONDS
        self._threads = [
            threading.Thread(target=self._new_connections, daemon=True),
            threading.Thread(target=self._kept_alive, daemon=True),
        ]
        for thread in self._threads:
            thread.start()

    def _going(self) -> bool:
        return not self._stop.wait(self.PACE) and time.monotonic() < self._until

    def _new_connections(self) -> None:
        for _ in range(self.LOAD_REQUESTS):
            if not self._going():
                return
            try:
                with _connect(self.server, self.client) as sock:
                    status = _get(sock)[0]
                    serial = _peer_serial(sock)
            except Exception as exc:
                self.failures.append(f"new connection: {exc!r}")
                continue
            if status != 200:
                self.failures.append(f"new connection: status {status}")
            self.serials["new"].append(serial)

    def _kept_alive(self) -> None:
        sock: ssl.SSLSocket | None = None
        try:
            for _ in range(self.LOAD_REQUESTS):
                if not self._going():
                    return
                try:
                    if sock is None:
                        sock = _connect(self.server, self.client)
                        self.kept_connections += 1
                    status, _, headers = _get(sock)
                    self.serials["kept"].append(_peer_serial(sock))
                except Exception as exc:
                    self.failures.append(f"kept-alive connection: {exc!r}")
                    if sock is not None:
                        sock.close()
                    sock = None
                    continue
                if status != 200:
                    self.failures.append(f"kept-alive connection: status {status}")
                if headers.get("connection", "").lower() == "close":
                    sock.close()
                    sock = None
        finally:
            if sock is not None:
                sock.close()

    def summary(self) -> str:
        """Per client, how many requests each certificate served, in order; the failures."""
        runs = {}
        for kind, serials in self.serials.items():
            counts: list[list[Any]] = []
            for serial in serials:
                if counts and counts[-1][0] == serial:
                    counts[-1][1] += 1
                else:
                    counts.append([serial, 1])
            runs[kind] = [(serial[-6:], n) for serial, n in counts][-12:]
        return f"{runs}; {self.kept_connections} kept-alive connections; {self.failures[:5]}"

    def requests(self) -> int:
        return len(self.serials["new"]) + len(self.serials["kept"]) + len(self.failures)

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=S_CLIENT_TIMEOUT)
            assert not thread.is_alive(), "a client thread is stuck"


def _peer_serial(sock: ssl.SSLSocket) -> str:
    cert = sock.getpeercert()
    return str(cert["serialNumber"]) if cert else ""


def _replace(source: Path, target: Path) -> None:
    """Put a copy of ``source`` at ``target`` in one rename, as a renewal tool would."""
    partial = target.with_name(target.name + ".new")
    shutil.copy(source, partial)
    os.replace(partial, target)


@pytest.mark.parametrize("worker", ["threaded", "asyncio"])
def test_hup_swaps_the_certificate_under_load_without_a_failed_request(
    corral_factory: Factory, certs: Path, worker: str, tmp_path: Path
) -> None:
    """New and kept-alive TLS connections all the while: the old workers finish what they
    have (a kept-alive connection is told Connection: close), the new ones serve the renewed
    certificate, and not one request fails."""
    live = tmp_path / "live"
    live.mkdir()
    for ext in ("pem", "key"):
        shutil.copy(certs / f"server.{ext}", live / f"site.{ext}")
    server = corral_factory(
        "-w", "2", "-b", "127.0.0.1:0", "--certfile", str(live / "site.pem"),
        "--keyfile", str(live / "site.key"), *APPS[worker],
    )  # fmt: skip
    old_workers = server.wait_workers(lambda pids: len(pids) == 2)
    original, renewed = _serial_of(certs / "server.pem"), _serial_of(certs / "renewed.pem")
    load = _TLSLoad(server, _client(certs))
    try:
        # Under way on both kinds of connection before the renewal.
        wait_until(lambda: {k: len(v) for k, v in load.serials.items()},
                   lambda n: min(n.values()) >= 20, 20, load.summary)  # fmt: skip
        for ext in ("key", "pem"):
            _replace(certs / f"renewed.{ext}", live / f"site.{ext}")
        server.signal(signal.SIGHUP)
        server.wait_workers(lambda pids: len(pids) == 2 and not pids & old_workers)
        # Once the old workers have gone, both clients are on renewed connections.
        mark = {k: len(v) for k, v in load.serials.items()}
        wait_until(
            lambda: {k: (len(v) - mark[k], v[-1] == renewed) for k, v in load.serials.items()},
            lambda seen: all(n >= 20 and fresh for n, fresh in seen.values()),
            20,
            lambda: f"{load.summary()}\n{server.log_text()}",
        )
    finally:
        load.stop()
    assert not load.failures, f"{len(load.failures)} of {load.requests()}: {load.failures[:5]}"
    assert load.serials["new"][0] == original and load.serials["kept"][0] == original
    assert load.serials["new"][-20:] == [renewed] * 20
    assert load.kept_connections >= 2  # a kept-alive connection was closed by an old worker


SSL_PROBE = """
import sys

def pre_fork(server, worker):
    print("ssl in the arbiter:", "ssl" in sys.modules, flush=True)

def post_worker_init(worker):
    print("ssl in a worker:", "ssl" in sys.modules, flush=True)
"""


@pytest.mark.parametrize("worker", ["sync", "threaded"])
def test_only_a_server_with_a_certificate_loads_ssl(
    corral_factory: Factory, certs: Path, tmp_path: Path, worker: str
) -> None:
    """Without TLS no process of a WSGI server loads ssl (OpenSSL: about 3 MiB resident in the
    arbiter, 1 MiB more in each worker); with a certificate each one has it."""
    probe = tmp_path / "ssl_probe.py"
    probe.write_text(SSL_PROBE)
    plain = corral_factory("-c", str(probe), "-w", "1", "-b", "127.0.0.1:0", *APPS[worker])
    tls = _serve(corral_factory, worker, certs, "-c", str(probe))
    for server, loaded in ((plain, "False"), (tls, "True")):
        for where in ("the arbiter", "a worker"):
            (line,) = server.wait_for(f"ssl in {where}: (True|False)")
            assert line.group(1) == loaded, server.log_text()
    assert plain.get("/")[0] == 200
    with _connect(tls, _client(certs)) as sock:
        assert _get(sock)[0] == 200
