"""HTTP/2 load: the `h2load` command line (nghttp2), the reader of its report, a readiness probe."""

from __future__ import annotations

import os
import re
import subprocess
import tempfile
import time
from dataclasses import dataclass

_OVERRUN_S = 30  # h2load stops itself after its -D; this is the harness's backstop
PROBE_TIMEOUT_S = 10  # one probe request (connect, preface, one stream)


class H2LoadError(RuntimeError):
    """h2load failed to run, overran its time, or printed a report this parser cannot read."""


@dataclass(frozen=True)
class H2Result:
    """The numbers from one h2load run."""

    done: int  # requests completed inside the measured window
    requests_per_s: float  # h2load's own figure: done over the measured duration
    succeeded: int
    # h2load's `failed`: every stream of the measured window that did not end in a 2xx or 3xx
    # answer, whether it got another status, was reset, or was lost with its connection.
    failed: int
    errored: int  # of those, the streams that ended without an answer (reset, connection lost)
    timeouts: int  # streams closed by h2load's -T/-N timeouts (not set here, so expected 0)
    status_2xx: int
    # 3xx, 4xx and 5xx answers. h2load counts statuses as the headers arrive, also for
    # streams that finish after the measured window, so this is not a subset of `done`.
    non_2xx: int
    protocol: str  # what h2load says it spoke: `h2c` (prior knowledge) or `h2` (ALPN)
    mean_ms: float  # `time for request`: mean over every request (h2load gives no percentiles)
    max_ms: float
    client_cpu_s: float = 0.0  # h2load's own user + system CPU over the run

    @property
    def lost(self) -> int:
        """Requests that did not end in a good answer: h2load's failed (which counts the errored
        and timed-out streams too), or the non-2xx answers if they are more."""
        return max(self.failed, self.errored + self.timeouts, self.non_2xx)


def h2load_argv(
    h2load: str, url: str, clients: int, streams: int, duration_s: int, threads: int = 1
) -> list[str]:
    """A timed run: `clients` connections, each with up to `streams` streams in flight."""
    argv = [h2load, "-c", str(clients), "-m", str(streams), "-t", str(threads)]
    return [*argv, "-D", str(duration_s), url]


def probe_argv(h2load: str, url: str) -> list[str]:
    """One request on one connection: does the server answer 200 over HTTP/2?"""
    return [h2load, "-n", "1", "-c", "1", url]


_TIME_UNITS_MS = {"us": 0.001, "ms": 1.0, "s": 1000.0}


def _ms(text: str) -> float:
    match = re.fullmatch(r"([0-9.]+)(us|ms|s)", text)
    if match is None:
        raise H2LoadError(f"cannot read h2load time {text!r}")
    return float(match.group(1)) * _TIME_UNITS_MS[match.group(2)]


def parse_h2load_output(text: str) -> H2Result:
    """Read h2load's report: the `finished in`, `requests:`, `status codes:`, `Application
    protocol:` and `time for request:` lines."""
    finished = re.search(r"^finished in [0-9.]+\w+, ([0-9.]+) req/s", text, re.MULTILINE)
    counts = re.search(
        r"^requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed, "
        r"(\d+) errored, (\d+) timeout",
        text,
        re.MULTILINE,
    )
    codes = re.search(
        r"^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx", text, re.MULTILINE
    )
    if finished is None or counts is None or codes is None:
        raise H2LoadError(f"cannot read h2load's report: {text.strip()[-400:]!r}")
    protocol = re.search(r"^Application protocol: (\S+)", text, re.MULTILINE)
    timing = re.search(r"^time for request:\s+(\S+)\s+(\S+)\s+(\S+)", text, re.MULTILINE)
    mean_ms = max_ms = 0.0
    if timing is not None:
        max_ms, mean_ms = _ms(timing.group(2)), _ms(timing.group(3))
    _total, _started, done, succeeded, failed, errored, timeouts = map(int, counts.groups())
    ok, *others = map(int, codes.groups())
    return H2Result(
        done=done,
        requests_per_s=float(finished.group(1)),
        succeeded=succeeded,
        failed=failed,
        errored=errored,
        timeouts=timeouts,
        status_2xx=ok,
        non_2xx=sum(others),
        protocol=protocol.group(1) if protocol else "none negotiated",
        mean_ms=mean_ms,
        max_ms=max_ms,
    )


def run_h2load(argv: list[str], limit_s: float) -> H2Result:
    """Run h2load, bounded: killed by its PID if it runs `_OVERRUN_S` past `limit_s`. Its own
    CPU time (from wait4) goes into the result."""
    with tempfile.TemporaryFile() as out:
        proc = subprocess.Popen(
            argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT
        )
        deadline = time.monotonic() + limit_s + _OVERRUN_S
        while True:  # ends when h2load exits, or at the deadline (then it is killed)
            pid, status, usage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                proc.returncode = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                proc.kill()
                proc.wait()
                raise H2LoadError(f"h2load did not finish within {limit_s + _OVERRUN_S:.0f} s")
            time.sleep(0.05)
        out.seek(0)
        text = out.read().decode(errors="replace")
    if proc.returncode != 0 and "requests:" not in text:
        raise H2LoadError(f"h2load exited {proc.returncode}: {text.strip()[-400:]}")
    result = parse_h2load_output(text)
    cpu = usage.ru_utime + usage.ru_stime
    return H2Result(**{**result.__dict__, "client_cpu_s": cpu})


def probe(h2load: str, url: str) -> H2Result:
    """One request over HTTP/2; raises H2LoadError when h2load fails or cannot read it."""
    return run_h2load(probe_argv(h2load, url), PROBE_TIMEOUT_S)


def probe_ok(result: H2Result, protocol: str) -> bool:
    """The probe was answered 2xx over the expected protocol, with nothing lost."""
    return result.protocol == protocol and result.status_2xx >= 1 and result.lost == 0


def h2load_version(h2load: str) -> str:
    """`h2load nghttp2/1.52.0` -> `nghttp2/1.52.0`."""
    done = subprocess.run(
        [h2load, "--version"], capture_output=True, text=True, timeout=10, check=False
    )
    words = done.stdout.split()
    return words[1] if len(words) > 1 else "unknown"
