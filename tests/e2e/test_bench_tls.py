"""The TLS benchmark rows (benchmarks/tls.py) end to end, on corral alone; no speed is asserted."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import stime, tls  # noqa: E402

needs_tools = pytest.mark.skipif(
    shutil.which("wrk") is None or shutil.which("openssl") is None, reason="needs wrk and openssl"
)

# What `openssl s_time -reuse -www / -time 1` prints: a full handshake ('*') among resumed ones.
STIME_OUTPUT = """

Now timing with session id reuse.
starting
rrr*r

5 connections in 0.01s; 500.00 connections/user sec, bytes read 750
5 connections in 2 real seconds, 150 bytes read per connection
"""


def test_s_time_report_counts_connections_and_resumed_ones() -> None:
    count = stime.parse_stime_output(STIME_OUTPUT)
    assert count == stime.StimeCount(connections=5, resumed=4, bytes_read=750)
    with pytest.raises(stime.StimeError):
        stime.parse_stime_output(STIME_OUTPUT.replace("rrr*r", "rrr"))  # 4 marks for 5


# Each server's option names, as its --help lists them.
FLAGS = {
    "corral": ("--certfile", "--keyfile"),
    "gunicorn": ("--certfile", "--keyfile"),
    "uvicorn": ("--ssl-certfile", "--ssl-keyfile"),
    "granian": ("--ssl-certificate", "--ssl-keyfile"),
}


def test_every_tls_server_gets_its_certificate_in_its_own_flags(tmp_path: Path) -> None:
    hello = tls.tls_workloads()[0]
    servers = tls.tls_servers(tls.SERVER_NAMES, ("CERT", "KEY"))
    assert [s.name for s in servers] == list(tls.SERVER_NAMES)
    for server in servers:
        launch = server.build("8443", hello, tmp_path)
        cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
        assert (launch.files[cert], launch.files[key]) == ("CERT", "KEY"), server.name
        cert_flag, key_flag = FLAGS[server.distribution]
        assert launch.argv[-4:] == [cert_flag, str(cert), key_flag, str(key)], server.name


@needs_tools
def test_tls_rows_run_and_corral_resumes_every_session(tmp_path: Path) -> None:
    report = tmp_path / "tls.md"
    argv = [sys.executable, str(ROOT / "benchmarks" / "tls.py"), "--quick"]
    argv += ["--servers", "corral-threaded,corral-asyncio", "--markdown", str(report)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=180)
    assert done.returncode == 0, done.stderr
    assert done.stdout == report.read_text() + "\n"
    rows = {
        (cells[1], cells[2]): cells
        for line in done.stdout.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.split("|")])[1] != "---"
    }
    for workload, server in (
        ("tls-hello", "corral-threaded"),
        ("tls-resume", "corral-threaded"),
        ("asgi-tls-hello", "corral-asyncio"),
        ("asgi-tls-resume", "corral-asyncio"),
    ):
        row = rows[(workload, server)]
        assert "TLSv1.3" in row[3], row
        assert row[5] == "1.00x", row
        assert row[7 if "resume" in workload else 8].isdigit(), row  # server CPU µs per request
    for workload in ("tls-resume", "asgi-tls-resume"):
        server = "corral-threaded" if workload == "tls-resume" else "corral-asyncio"
        row = rows[(workload, server)]
        assert re.fullmatch(r"100\.0 % \([\d,]+ of [\d,]+\)", row[8]), row
