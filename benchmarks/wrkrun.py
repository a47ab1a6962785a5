"""Run wrk against one URL and parse its text report into numbers."""

from __future__ import annotations

import re
import subprocess
from dataclasses import dataclass
from pathlib import Path

WRK_THREADS = 2
WRK_TIMEOUT = "2s"

_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60_000.0, "h": 3_600_000.0}
# wrk prints sizes with binary multiples (its format_binary divides by 1024).
_SIZE_UNITS_MIB = {
    "B": 1.0 / (1024 * 1024),
    "KB": 1.0 / 1024,
    "MB": 1.0,
    "GB": 1024.0,
    "TB": 1024.0 * 1024,
}


class WrkError(RuntimeError):
    """wrk failed to run or printed a report this parser does not understand."""


@dataclass(frozen=True)
class WrkResult:
    """The numbers from one wrk run."""

    requests: int
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    transfer_mib_s: float
    connect_errors: int = 0
    read_errors: int = 0
    write_errors: int = 0
    timeouts: int = 0
    non_2xx: int = 0
    # openssl s_time runs (benchmarks/stime.py): of the `requests` connections, how many
    # resumed their TLS session; 0 for every other load generator.
    resumed: int = 0


def parse_time_ms(text: str) -> float:
    """`456.00us`, `1.23ms`, `1.02s`, `2.00m` -> milliseconds."""
    match = re.fullmatch(r"([0-9.]+)(us|ms|s|m|h)", text.strip())
    if match is None:
        raise WrkError(f"cannot parse wrk time {text!r}")
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2)]


def parse_size_mib(text: str) -> float:
    """`512.00B`, `1.50KB`, `12.30MB`, `1.02GB` -> MiB."""
    match = re.fullmatch(r"([0-9.]+)(B|KB|MB|GB|TB)", text.strip())
    if match is None:
        raise WrkError(f"cannot parse wrk size {text!r}")
    return float(match.group(1)) * _SIZE_UNITS_MIB[match.group(2)]


def _find(pattern: str, text: str, what: str) -> re.Match[str]:
    match = re.search(pattern, text, re.MULTILINE)
    if match is None:
        raise WrkError(f"wrk output has no {what} line:\n{text}")
    return match


def parse_wrk_output(text: str) -> WrkResult:
    """Parse the report `wrk --latency` prints; the error lines are optional (absent when zero)."""
    requests = int(_find(r"^\s*(\d+) requests in ", text, "'requests in'").group(1))
    rps = float(_find(r"^Requests/sec:\s*([0-9.]+)", text, "Requests/sec").group(1))
    p50 = parse_time_ms(_find(r"^\s*50%\s+(\S+)", text, "50% latency").group(1))
    p99 = parse_time_ms(_find(r"^\s*99%\s+(\S+)", text, "99% latency").group(1))
    transfer = parse_size_mib(_find(r"^Transfer/sec:\s*(\S+)", text, "Transfer/sec").group(1))
    errors = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text
    )
    connect, read, write, timeout = (int(g) for g in errors.groups()) if errors else (0, 0, 0, 0)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests=requests,
        requests_per_s=rps,
        p50_ms=p50,
        p99_ms=p99,
        transfer_mib_s=transfer,
        connect_errors=connect,
        read_errors=read,
        write_errors=write,
        timeouts=timeout,
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
    )


def wrk_argv(
    url: str, connections: int, duration_s: int, script: Path | None, wrk: str = "wrk"
) -> list[str]:
    """The wrk command line for one run."""
    argv = [wrk, "--latency", f"-t{WRK_THREADS}", f"-c{connections}", f"-d{duration_s}s"]
    argv += ["--timeout", WRK_TIMEOUT]
    if script is not None:
        argv += ["-s", str(script)]
    return [*argv, url]


def run_wrk(argv: list[str], duration_s: int) -> WrkResult:
    """Run wrk (killed if it overruns its duration by 30 s) and parse its report."""
    try:
        done = subprocess.run(
            argv, capture_output=True, text=True, timeout=duration_s + 30, check=False
        )
    except subprocess.TimeoutExpired as exc:
        raise WrkError(f"wrk did not finish within {duration_s + 30} s") from exc
    if done.returncode != 0:
        raise WrkError(f"wrk exited {done.returncode}: {done.stderr.strip() or done.stdout}")
    return parse_wrk_output(done.stdout)
