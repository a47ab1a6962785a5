"""The HTTP/2 benchmark rows (benchmarks/h2.py) end to end, on corral alone; no speed asserted."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

from benchmarks import h2, h2load  # noqa: E402

needs_tools = pytest.mark.skipif(
    shutil.which("h2load") is None or importlib.util.find_spec("h2") is None,
    reason="needs h2load (nghttp2-client) and the h2 library",
)

# What `h2load -c 8 -m 16 -D 5` prints (nghttp2 1.52), progress lines trimmed.
H2LOAD_OUTPUT = """starting benchmark...
spawning thread #0: 8 total client(s). Timing-based test with 0s of warm-up time and 5s of \
main duration for measurements.
Application protocol: h2c
Main benchmark duration is over for thread #0. Stopping all clients.

finished in 5.00s, 2248.67 req/s, 79.58KB/s
requests: 11243 total, 11371 started, 11243 done, 11240 succeeded, 3 failed, 1 errored, 0 timeout
status codes: 11242 2xx, 0 3xx, 0 4xx, 2 5xx
traffic: 238.74KB (244472) total, 33.95KB (34762) headers (space savings 94.79%), \
85.64KB (87698) data
                     min         max         mean         sd        +/- sd
time for request:   612us       1.02s      56.27ms     16.67ms    83.80%
time for connect:       83us       270us       180us        67us    62.50%
time to 1st byte:    82.64ms    149.39ms    121.25ms     25.32ms    62.50%
req/s           :     277.08      282.61      280.91        1.98    87.50%
"""


def test_h2load_report_is_read_with_its_losses() -> None:
    result = h2load.parse_h2load_output(H2LOAD_OUTPUT)
    assert (result.done, result.requests_per_s, result.protocol) == (11243, 2248.67, "h2c")
    assert (result.succeeded, result.failed, result.errored, result.timeouts) == (11240, 3, 1, 0)
    assert (result.status_2xx, result.non_2xx) == (11242, 2)
    assert (result.mean_ms, result.max_ms) == (56.27, 1020.0)
    assert result.lost == 3
    with pytest.raises(h2load.H2LoadError):
        h2load.parse_h2load_output("connect to 127.0.0.1:1 failed\nNo protocol negotiated\n")


def test_every_server_is_told_to_serve_http2(tmp_path: Path) -> None:
    servers = h2.h2_servers(h2.SERVER_NAMES, None)
    assert [s.name for s in servers] == list(h2.SERVER_NAMES)
    for server in servers:
        workload = next(w for w in h2.h2_workloads() if w.interface == server.interface)
        argv = server.build("8080", workload.as_workload(), tmp_path).argv
        if server.distribution == "granian":
            assert argv[-2:] == ["--http", "auto"], argv
        else:
            assert "h2,h1" in argv and "prior-knowledge" in argv, argv
    tls_servers = h2.h2_servers(h2.SERVER_NAMES, ("CERT", "KEY"))
    for server in tls_servers:
        workload = next(w for w in h2.h2_workloads() if w.interface == server.interface)
        launch = server.build("8443", workload.as_workload(), tmp_path)
        assert launch.files[tmp_path / "cert.pem"] == "CERT", server.name
        assert "prior-knowledge" not in launch.argv, server.name


@needs_tools
def test_h2_rows_run_on_corral_without_losing_a_request(tmp_path: Path) -> None:
    report = tmp_path / "h2.md"
    argv = [sys.executable, str(ROOT / "benchmarks" / "h2.py"), "--quick"]
    argv += ["--servers", "corral-threaded,corral-asyncio", "--markdown", str(report)]
    done = subprocess.run(argv, cwd=ROOT, capture_output=True, text=True, timeout=110)
    assert done.returncode == 0, done.stderr
    assert done.stdout == report.read_text() + "\n"
    rows = {
        (cells[1], cells[2]): cells
        for line in done.stdout.splitlines()
        if line.startswith("| ") and (cells := [c.strip() for c in line.split("|")])[1] != "---"
    }
    for workload in h2.h2_workloads():
        row = rows[(workload.name, h2.BASELINE[workload.interface])]
        assert "h2c by prior knowledge" in row[3], row
        assert row[5] == "1.00x", row
        assert row[10] == "0 / 0 / 0" and row[11] == "0", row  # nothing lost
