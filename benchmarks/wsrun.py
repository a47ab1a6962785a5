"""Run benchmarks/wsload.py against one WebSocket URL and read its JSON report as a WrkResult."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from benchmarks.wrkrun import WrkError, WrkResult

WSLOAD = Path(__file__).resolve().parent / "wsload.py"
WS_PROCESSES = 2  # the client's processes: one per core, so it is not held back by one GIL
WS_MESSAGE_BYTES = 16
WS_TIMEOUT_S = 2  # as wrk's --timeout: an echo still missing after this counts as a timeout
WS_PATH = "/ws"
# Connecting, the start barrier and closing happen outside the measured window; wsload bounds
# them itself (10 s + 30 s + 1 s); this is the harness's own backstop.
_OVERRUN_S = 60


class WsLoadError(WrkError):
    """wsload failed to run or printed a report this parser does not understand."""


def wsload_argv(url: str, connections: int, duration_s: int, deflate: bool = False) -> list[str]:
    """The wsload command line for one run; `deflate` offers permessage-deflate and compresses."""
    argv = [
        sys.executable,
        str(WSLOAD),
        "--url",
        url,
        "--connections",
        str(connections),
        "--duration",
        str(duration_s),
        "--processes",
        str(WS_PROCESSES),
        "--message-bytes",
        str(WS_MESSAGE_BYTES),
        "--timeout",
        str(WS_TIMEOUT_S),
    ]
    return [*argv, "--deflate"] if deflate else argv


def parse_wsload_output(text: str) -> WrkResult:
    """wsload's JSON report in the shape of a wrk run, so cells, medians and the exit rule treat
    both alike: messages are the requests, lost connections and bad echoes the read errors, and
    an upgrade answered without 101 counts in non_2xx."""
    try:
        report = json.loads(text)
        return WrkResult(
            requests=int(report["messages"]),
            requests_per_s=float(report["messages_per_s"]),
            p50_ms=float(report["p50_ms"]),
            p99_ms=float(report["p99_ms"]),
            transfer_mib_s=0.0,
            connect_errors=int(report["connect_errors"]),
            read_errors=int(report["read_errors"]),
            timeouts=int(report["timeouts"]),
            non_2xx=int(report["handshake_failures"]),
        )
    except (ValueError, KeyError, TypeError) as exc:
        raise WsLoadError(f"cannot read wsload's report {text[:200]!r}: {exc}") from exc


def run_wsload(argv: list[str], duration_s: int) -> WrkResult:
    """Run wsload (killed if it overruns its duration by 60 s) and parse its report."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + _OVERRUN_S, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WsLoadError(f"wsload did not finish within {duration_s + _OVERRUN_S} s") from exc
    if done.returncode != 0:
        raise WsLoadError(f"wsload exited {done.returncode}: {done.stderr.strip()[-300:]}")
    return parse_wsload_output(done.stdout)
