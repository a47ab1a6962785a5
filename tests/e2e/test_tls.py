"""HTTPS in every worker: versions, ALPN, resumption, client certificates, stalls, HUP reload."""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import signal
import socket
import ssl
import subprocess
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

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
