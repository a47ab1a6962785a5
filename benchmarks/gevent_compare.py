"""gunicorn `-k gevent` against corral `-k threaded` on two apps gevent users run.

    pip install gevent            # only to measure; corral does not depend on it
    python benchmarks/gevent_compare.py [--rounds 3] [--duration 15] [--workloads a,b]

Workloads: `longpoll-200`, `longpoll-1000` (each request waits 1 s, as for an event, then answers;
200 or 1000 concurrent keep-alive connections) and `outbound-100` (each request makes 5 sequential
`urllib.request` calls to a local upstream that answers after 10 ms; 100 connections). Every
server runs 2 workers on 127.0.0.1; they take turns, round by round, under the same wrk command
(`--timeout 10s`). The Markdown table goes to stdout: medians over the rounds, the median of the
per-round ratios to gunicorn gevent, errors summed, and the workers' peak RSS and threads.
The apps below import nothing but the standard library, so every server loads just them.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

if TYPE_CHECKING:
    from benchmarks.wrkrun import WrkResult

LONGPOLL_WAIT_S = 1.0
OUTBOUND_CALLS = 5
UPSTREAM_DELAY_S = 0.010
UPSTREAM_ENV = "GEVENT_COMPARE_UPSTREAM"
_UPSTREAM_ANSWER = b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nConnection: close\r\n\r\nok"


def _answer(start_response: Callable[..., Any], body: bytes) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def longpoll(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Wait 1 s (standing in for an event; gevent's monkey-patching makes it a greenlet wait)."""
    time.sleep(LONGPOLL_WAIT_S)
    return _answer(start_response, b"event\n")


def outbound(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    """Five sequential HTTP calls to the upstream, a new connection each, as `requests` makes."""
    url = os.environ[UPSTREAM_ENV]
    total = 0
    for _ in range(OUTBOUND_CALLS):
        with urllib.request.urlopen(url, timeout=10) as response:
            total += len(response.read())
    return _answer(start_response, b"%d\n" % total)


class _Upstream(asyncio.Protocol):
    """Answers each connection's first request after UPSTREAM_DELAY_S, then closes."""

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        # uvloop's transports do not subclass asyncio.Transport; they have its methods.
        self.transport = cast(asyncio.Transport, transport)
        self.head, self.answered = b"", False

    def data_received(self, data: bytes) -> None:
        self.head += data
        if not self.answered and b"\r\n\r\n" in self.head:
            self.answered = True
            asyncio.get_running_loop().call_later(UPSTREAM_DELAY_S, self._send)

    def _send(self) -> None:
        if not self.transport.is_closing():
            self.transport.write(_UPSTREAM_ANSWER)
            self.transport.close()


async def _serve_upstream(port: int) -> None:
    server = await asyncio.get_running_loop().create_server(
        _Upstream, "127.0.0.1", port, backlog=4096
    )
    await server.serve_forever()


# --- the harness: imports the benchmarks package only when run as a script ---

WORKERS = "2"
WRK_TIMEOUT = "10s"
WARMUP_S = 5
PAUSE_S = 5
SAMPLE_S = 0.2
WORKLOADS = {  # name: (app, connections)
    "longpoll-200": ("longpoll", 200),
    "longpoll-1000": ("longpoll", 1000),
    "outbound-100": ("outbound", 100),
}
SERVERS = {  # name: the server's argv before -b and APP
    "gunicorn-gevent": ["gunicorn", "-k", "gevent", "--worker-connections", "1000"],
    "corral-threaded": ["corral", "-k", "threaded"],
    "corral-threads-100": ["corral", "-k", "threaded", "--threads", "100"],
    "corral-threads-1000": ["corral", "-k", "threaded", "--threads", "1000"],
    "corral-max-threads-1000": ["corral", "-k", "threaded", "--max-threads", "1000"],
    "gunicorn-gthread-100": ["gunicorn", "-k", "gthread", "--threads", "100"],
}
BASELINE = "gunicorn-gevent"


def _names(text: str) -> list[str]:
    return [n.strip() for n in text.split(",") if n.strip()]


def _workers_now(root: int) -> tuple[int, int]:
    """The workers' (children of the master) summed RSS in KiB and the most threads in one."""
    from benchmarks.proctree import _read, process_tree, tree_rss_kib

    workers = [s.pid for s in process_tree(root) if s.pid != root]
    threads = 0
    for pid in workers:
        for line in (_read(f"/proc/{pid}/status") or "").splitlines():
            if line.startswith("Threads:"):
                threads = max(threads, int(line.split()[1]))
    return tree_rss_kib(workers), threads


def _load(url: str, connections: int, duration_s: int, root: int) -> tuple[WrkResult, int, int]:
    """One wrk run, bounded: its result, and the workers' peak RSS (KiB) and threads meanwhile."""
    from benchmarks.wrkrun import parse_wrk_output

    argv = ["wrk", "--latency", "-t2", f"-c{connections}", f"-d{duration_s}s"]
    wrk = subprocess.Popen(
        [*argv, "--timeout", WRK_TIMEOUT, url], stdout=subprocess.PIPE, text=True
    )
    rss = threads = 0
    deadline = time.monotonic() + duration_s + 30
    while wrk.poll() is None and time.monotonic() < deadline:
        now_rss, now_threads = _workers_now(root)
        rss, threads = max(rss, now_rss), max(threads, now_threads)
        time.sleep(SAMPLE_S)
    if wrk.poll() is None:
        wrk.kill()
    out, _ = wrk.communicate(timeout=10)
    return parse_wrk_output(out), rss, threads


def _row(
    name: str, runs: list[WrkResult], base: list[WrkResult] | None, rss: int, threads: int
) -> str:
    med = statistics.median
    ratio = "-"
    if base and len(base) == len(runs):
        pairs = zip(runs, base, strict=True)
        ratio = f"{med(r.requests_per_s / b.requests_per_s for r, b in pairs):.2f}"
    errs = [sum(r.connect_errors for r in runs), sum(r.read_errors + r.write_errors for r in runs)]
    errs += [sum(r.timeouts for r in runs), sum(r.non_2xx for r in runs)]
    return (
        f"| {name} | {med(r.requests_per_s for r in runs):.0f} | {ratio} "
        f"| {med(r.p50_ms for r in runs):.0f} | {med(r.p99_ms for r in runs):.0f} "
        f"| {'/'.join(map(str, errs))} | {rss / 1024:.0f} | {threads} |"
    )


def run(workload: str, servers: list[str], rounds: int, duration_s: int, tmp: Path) -> list[str]:
    """Start every server for one workload, load them in turns, stop them; the table's lines."""
    from benchmarks.proctree import ProcStat, process_tree, stop_tree
    from benchmarks.servers import HOST, Launch
    from benchmarks.suite import free_port, start_server, wait_ready

    app, connections = WORKLOADS[workload]
    started: dict[str, tuple[subprocess.Popen[bytes], int, list[ProcStat]]] = {}
    runs: dict[str, list[WrkResult]] = {s: [] for s in servers}
    peaks: dict[str, tuple[int, int]] = {s: (0, 0) for s in servers}
    try:
        for name in servers:
            port = free_port()
            argv = [sys.executable, "-m", *SERVERS[name], "-w", WORKERS, "-b", f"{HOST}:{port}"]
            log = tmp / f"{workload}-{name}.log"
            proc = start_server(Launch([*argv, f"benchmarks.gevent_compare:{app}"], ""), log)
            started[name] = (proc, port, [])
            wait_ready(proc, port, log)
            started[name][2].extend(process_tree(proc.pid))
        for k in range(rounds):
            for name in servers[k % len(servers) :] + servers[: k % len(servers)]:
                proc, port, _ = started[name]
                url = f"http://{HOST}:{port}/"
                if k == 0:
                    _load(url, connections, WARMUP_S, proc.pid)
                    time.sleep(PAUSE_S)  # the warm-up's abandoned requests finish
                result, rss, threads = _load(url, connections, duration_s, proc.pid)
                runs[name].append(result)
                peaks[name] = (max(peaks[name][0], rss), max(peaks[name][1], threads))
                print(
                    f"{workload} round {k + 1} {name}: {result.requests_per_s:.0f} req/s "
                    f"p50 {result.p50_ms:.0f} p99 {result.p99_ms:.0f} ms, "
                    f"{rss / 1024:.0f} MiB, {threads} threads",
                    file=sys.stderr,
                    flush=True,
                )
    finally:
        for proc, _, known in started.values():
            stop_tree(proc, known, timeout_s=10)
    base = runs.get(BASELINE)
    return [_row(n, runs[n], base, *peaks[n]) for n in servers if runs[n]]


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python benchmarks/gevent_compare.py")
    parser.add_argument("--workloads", type=_names, default=list(WORKLOADS))
    parser.add_argument("--servers", type=_names, default=list(SERVERS))
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--upstream", type=int, help=argparse.SUPPRESS)  # internal: serve it
    args = parser.parse_args(argv)
    if args.upstream:
        try:  # uvloop when installed: the upstream should cost little CPU beside the servers
            import uvloop

            uvloop.run(_serve_upstream(args.upstream))
        except ImportError:
            asyncio.run(_serve_upstream(args.upstream))
        return 0
    from benchmarks.machine import describe_machine, package_version
    from benchmarks.proctree import process_tree, stop_tree
    from benchmarks.suite import free_port

    repo = str(Path(__file__).resolve().parent.parent)
    os.environ["PYTHONPATH"] = os.pathsep.join(p for p in (repo, os.environ.get("PYTHONPATH")) if p)
    port = free_port()
    os.environ[UPSTREAM_ENV] = f"http://127.0.0.1:{port}/"
    upstream = subprocess.Popen([sys.executable, __file__, "--upstream", str(port)])
    for _ in range(100):  # at most 10 s for it to listen
        with socket.socket() as probe:
            if probe.connect_ex(("127.0.0.1", port)) == 0:
                break
        time.sleep(0.1)
    host = describe_machine()
    versions = ", ".join(f"{d} {package_version(d)}" for d in ("corral", "gunicorn", "gevent"))
    print(f"{host.nproc} CPUs ({host.cpu_model}), {host.kernel}, {host.python}; {versions}")
    print(f"load average at start: {host.load_at_start}\n")
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for workload in args.workloads:
                print(f"### {workload}\n")
                print(
                    "| server | req/s | vs gevent | p50 ms | p99 ms | errors c/r/t/non-2xx "
                    "| workers' peak RSS MiB | peak threads per worker |"
                )
                print("|---|---|---|---|---|---|---|---|")
                lines = run(workload, args.servers, args.rounds, args.duration, Path(tmp))
                print("\n".join(lines) + "\n", flush=True)
    finally:
        stop_tree(upstream, process_tree(upstream.pid), timeout_s=5)
    return 0


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parent.parent))
    sys.exit(main(sys.argv[1:]))
