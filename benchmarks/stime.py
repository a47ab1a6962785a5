"""TLS load: parallel `openssl s_time -reuse`, a one-request probe, a throwaway certificate."""

from __future__ import annotations

import functools
import re
import socket
import ssl
import subprocess
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks.wrkrun import WrkError, WrkResult

# What `openssl s_time -www /` sends on every connection; the probe sends the same bytes, so its
# answer (status and length) is what every measured connection should read.
STIME_REQUEST = b"GET / HTTP/1.0\r\n\r\n"
STIME_PROCESSES = 8  # parallel s_time processes: each runs one connection at a time
_OVERRUN_S = 30  # s_time stops itself after its -time; this is the harness's backstop
_PROBE_LIMIT = 1 << 20  # the probe reads at most this much of an answer
# ECDSA P-256: what certbot issues by default. Only full handshakes sign; a resumed one doesn't.
CERT_ARGS = (
    "req -x509 -newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes -days 2 "
    "-subj /CN=127.0.0.1 -addext subjectAltName=IP:127.0.0.1"
)


class StimeError(WrkError):
    """s_time failed to run, failed a connection, or printed a report this parser cannot read."""


@dataclass(frozen=True)
class StimeCount:
    """One s_time process's report: connections, how many resumed their session, bytes read."""

    connections: int
    resumed: int
    bytes_read: int


@dataclass(frozen=True)
class Probe:
    """One TLS request with s_time's bytes: the answer's status and length, what was negotiated."""

    status: int
    size: int
    protocol: str  # e.g. `TLSv1.3 TLS_AES_256_GCM_SHA384`


def stime_argv(openssl: str, host: str, port: int | str, duration_s: int) -> list[str]:
    """One s_time process: GET / on a new connection each time, resuming the last session."""
    argv = [openssl, "s_time", "-connect", f"{host}:{port}", "-www", "/", "-reuse"]
    return [*argv, "-time", str(duration_s)]


def parse_stime_output(text: str) -> StimeCount:
    """s_time prints one character per timed connection after `starting` (`r`: the session was
    resumed; `*`, `t` or `3`: a full handshake), then `N connections in ...; bytes read B`."""
    marks = re.search(r"^starting\n([r*t3]*)\n", text, re.MULTILINE)
    total = re.search(r"^(\d+) connections in [0-9.]+s;.*bytes read (\d+)", text, re.MULTILINE)
    if marks is None or total is None:
        raise StimeError(f"cannot read s_time's report: {text[-300:]!r}")
    connections = int(total.group(1))
    if len(marks.group(1)) != connections:
        raise StimeError(f"s_time marked {len(marks.group(1))} connections of {connections}")
    return StimeCount(connections, marks.group(1).count("r"), int(total.group(2)))


def _short_answers(count: StimeCount, size: int) -> int:
    """How many answers were not the probe's (a 200 of `size` bytes), judged by length: every
    good answer has the same length (the Date header's is fixed)."""
    if size <= 0 or count.bytes_read == count.connections * size:
        return 0
    return max(1, abs(count.connections * size - count.bytes_read) // size)


def run_stime(argv: list[str], processes: int, duration_s: int, answer_size: int) -> WrkResult:
    """Run `processes` copies of the s_time command at once; their connections per second.

    Each process's rate is its connections over its own wall time (s_time's own clock counts
    whole seconds only), and the rates add up. `requests` counts the connections, `resumed`
    those that resumed the session. A process that fails, or overruns its time by 30 s (then
    killed by its PID), fails the run.
    """
    with tempfile.TemporaryDirectory(prefix="corral-stime-") as tmp:
        outs = [Path(tmp) / f"{i}.out" for i in range(processes)]
        procs: list[subprocess.Popen[bytes]] = []
        seconds: list[float] = [0.0] * processes
        waiters: list[threading.Thread] = []

        def wait(i: int, proc: subprocess.Popen[bytes], started: float) -> None:
            try:
                proc.wait(timeout=duration_s + _OVERRUN_S)
            except subprocess.TimeoutExpired:
                return
            seconds[i] = time.monotonic() - started

        try:
            for i, out in enumerate(outs):
                with open(out, "wb") as sink:
                    proc = subprocess.Popen(
                        argv, stdin=subprocess.DEVNULL, stdout=sink, stderr=subprocess.STDOUT
                    )
                procs.append(proc)
                waiter = threading.Thread(target=wait, args=(i, proc, time.monotonic()))
                waiter.start()
                waiters.append(waiter)
        finally:
            for waiter in waiters:
                waiter.join()
            for proc in procs:
                if proc.poll() is None:
                    proc.kill()  # by its PID: overran the backstop
                    proc.wait()
        if len(procs) < processes or any(s <= 0 for s in seconds):
            raise StimeError(f"s_time did not finish within {duration_s + _OVERRUN_S} s")
        counts: list[StimeCount] = []
        for proc, out in zip(procs, outs, strict=True):
            text = out.read_text(errors="replace")
            if proc.returncode != 0:
                raise StimeError(f"s_time exited {proc.returncode}: {text.strip()[-300:]}")
            counts.append(parse_stime_output(text))
    connections = sum(c.connections for c in counts)
    if connections == 0:
        raise StimeError("s_time made no timed connection")
    rate = sum(c.connections / s for c, s in zip(counts, seconds, strict=True))
    read = sum(c.bytes_read / s for c, s in zip(counts, seconds, strict=True))
    return WrkResult(
        requests=connections,
        requests_per_s=rate,
        p50_ms=0.0,  # s_time times no single connection; see mean_connection_ms
        p99_ms=0.0,
        transfer_mib_s=read / (1024 * 1024),
        non_2xx=sum(_short_answers(c, answer_size) for c in counts),
        resumed=sum(c.resumed for c in counts),
    )


def mean_connection_ms(run: WrkResult, processes: int = STIME_PROCESSES) -> float:
    """The mean time of one connection (handshake, request, answer, close) in an s_time run:
    with `processes` connections always open, it is processes / rate (Little's law)."""
    return 1000.0 * processes / run.requests_per_s if run.requests_per_s > 0 else 0.0


def tls_probe(host: str, port: int, timeout_s: float = 5.0) -> Probe:
    """Send s_time's request over one TLS connection (no certificate check) and read the whole
    answer; raises OSError or ssl.SSLError when that fails."""
    context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    with (
        socket.create_connection((host, port), timeout=timeout_s) as raw,
        context.wrap_socket(raw) as tls,
    ):
        cipher = tls.cipher()  # before the close: some servers' close_notify clears them
        protocol = f"{tls.version() or '?'} {cipher[0] if cipher else '?'}"
        tls.sendall(STIME_REQUEST)
        answer = b""
        deadline = time.monotonic() + timeout_s
        while len(answer) < _PROBE_LIMIT and time.monotonic() < deadline:
            piece = tls.recv(65536)
            if not piece:
                break
            answer += piece
    status = re.match(rb"HTTP/1\.[01] (\d{3})", answer)
    return Probe(int(status.group(1)) if status else 0, len(answer), protocol)


@functools.cache
def throwaway_cert(openssl: str = "openssl") -> tuple[str, str]:
    """A self-signed certificate for 127.0.0.1 and its key (PKCS#8 PEM, as granian requires),
    made once per process by the openssl CLI in a temporary directory, as PEM text."""
    with tempfile.TemporaryDirectory(prefix="corral-cert-") as tmp:
        cert, key = Path(tmp) / "cert.pem", Path(tmp) / "key.pem"
        argv = [openssl, *CERT_ARGS.split(), "-keyout", str(key), "-out", str(cert)]
        done = subprocess.run(argv, capture_output=True, text=True, timeout=60, check=False)
        if done.returncode != 0:
            raise RuntimeError(f"openssl req failed: {done.stderr.strip()[-300:]}")
        return cert.read_text(), key.read_text()
