"""Runs every (workload, server) cell: a workload's servers take turns under load, by rounds."""

from __future__ import annotations

import http.client
import importlib.util
import os
import socket
import ssl
import statistics
import subprocess
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from benchmarks.servers import APPS_DIR, HOST, Launch, Server, missing_reason
from benchmarks.stime import (
    STIME_REQUEST,
    Probe,
    StimeError,
    run_stime,
    stime_argv,
    tls_probe,
)
from benchmarks.turns import C, TurnCell, Turns, log_tail, take_turns
from benchmarks.workloads import Workload
from benchmarks.wrkrun import WrkError, WrkResult, run_wrk, wrk_argv
from benchmarks.wsrun import WS_PATH, WsLoadError, run_wsload, wsload_argv
from corral.tune.procs import own_group

READY_TIMEOUT_S = 30.0
# Settings read from the environment would silently change a server's configuration.
_SCRUBBED_ENV = ("GUNICORN_CMD_ARGS", "CORRAL_CMD_ARGS", "WEB_CONCURRENCY")
_SCRUBBED_PREFIXES = ("GRANIAN_", "UVICORN_")  # both read every option from such variables


class ServerStartError(RuntimeError):
    """The server exited, or never answered a request, within the readiness deadline."""


@dataclass(frozen=True)
class Options:
    """What to run and for how long."""

    workloads: list[Workload]
    servers: list[Server]
    duration_s: int
    warmup_s: int
    runs: int
    wrk: str = "wrk"
    openssl: str = "openssl"  # the CLI for the TLS rows' s_time load (benchmarks/tls.py)


@dataclass
class Cell(TurnCell[Workload, WrkResult]):
    """The outcome of one (workload, server) pair: its runs, or why there are none."""

    skipped: bool = False  # not tried: the workload needs a module that is not installed

    def median(self, metric: Callable[[WrkResult], float]) -> float:
        """The median of one metric over the runs."""
        return statistics.median(metric(r) for r in self.runs)

    def total(self, metric: Callable[[WrkResult], int]) -> int:
        """The sum of one count over the runs."""
        return sum(metric(r) for r in self.runs)


def free_port() -> int:
    """A port the OS reports free on 127.0.0.1 (closed again; a race is acceptable here)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((HOST, 0))
        port: int = sock.getsockname()[1]
        return port


def _server_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if k not in _SCRUBBED_ENV and not k.startswith(_SCRUBBED_PREFIXES)
    }
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(APPS_DIR), env.get("PYTHONPATH")) if p)
    return env


def _answers(port: int, tls: bool = False) -> bool:
    conn: http.client.HTTPConnection
    if tls:  # the TLS rows' throwaway self-signed certificate: nothing to verify it against
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
        context.check_hostname = False
        context.verify_mode = ssl.CERT_NONE
        conn = http.client.HTTPSConnection(HOST, port, timeout=2, context=context)
    else:
        conn = http.client.HTTPConnection(HOST, port, timeout=2)
    try:
        conn.request("GET", "/")
        response = conn.getresponse()
        response.read()
        return response.status == 200
    except (OSError, http.client.HTTPException):
        return False
    finally:
        conn.close()


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path, tls: bool = False) -> None:
    """Return once a real GET / (over TLS with `tls`) gets a 200; raise ServerStartError if the
    server exits first or READY_TIMEOUT_S passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise ServerStartError(f"server exited with code {code}: {log_tail(log)}")
        if _answers(port, tls):
            return
        time.sleep(0.05)
    raise ServerStartError(f"no 200 on GET / within {READY_TIMEOUT_S:.0f} s: {log_tail(log)}")


def start_server(launch: Launch, log: Path) -> subprocess.Popen[bytes]:
    """Write the launch's files and start its process, output to the log file."""
    for path, text in launch.files.items():
        path.write_text(text)
    with open(log, "wb") as out:
        return subprocess.Popen(
            launch.argv,
            cwd=APPS_DIR,
            env=_server_env(),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            # Its own group, in the harness's session: see corral.tune.procs.own_group, and
            # benchmarks/README.md ("How a workload runs") for why not a session of its own.
            **own_group(),
        )


def _script(workload: Workload, tmp: Path) -> Path | None:
    if workload.lua is None:
        return None
    path = tmp / f"{workload.name}.lua"
    path.write_text(workload.lua)
    return path


def _one_run(workload: Workload, port: int, duration_s: int, opts: Options, tmp: Path) -> WrkResult:
    """One load run of the workload's client: wsload for WebSocket workloads, else wrk."""
    conns = workload.connections
    if workload.websocket:
        argv = wsload_argv(f"ws://{HOST}:{port}{WS_PATH}", conns, duration_s, workload.deflate)
        return run_wsload(argv, duration_s)
    if workload.resume:  # `connections` s_time processes, each one connection at a time
        size = _probe(port).size  # every answer s_time reads should be this long
        return run_stime(stime_argv(opts.openssl, HOST, port, duration_s), conns, duration_s, size)
    url = f"{'https' if workload.tls else 'http'}://{HOST}:{port}/"
    return run_wrk(wrk_argv(url, conns, duration_s, _script(workload, tmp), opts.wrk), duration_s)


def _probe(port: int) -> Probe:
    """s_time's own request over TLS: it must get a 200 (s_time reads any answer); raises
    ServerStartError otherwise."""
    try:
        probe = tls_probe(HOST, port)
    except (OSError, ssl.SSLError) as exc:
        raise ServerStartError(f"TLS probe failed: {exc}") from exc
    if probe.status != 200:
        raise ServerStartError(f"{STIME_REQUEST!r} got status {probe.status}, not 200")
    return probe


def launch_turns(cell: C, server: Server, workload: Workload, tmp: Path) -> Turns[C]:
    """Start the server for the workload on a free port, its output to a log in tmp; the cell
    gets the launch's config."""
    port = free_port()
    launch = server.build(str(port), workload, tmp)
    cell.config = launch.config
    log = tmp / f"{server.name}-{workload.name}.log"
    return Turns(cell, start_server(launch, log), port, tmp, log)


def _start(server: Server, workload: Workload, tmp: Path) -> tuple[Cell, Turns[Cell] | None]:
    """Start one server for the workload and wait until it answers; None (and a note in the
    cell) if it is missing or did not answer."""
    cell = Cell(workload, server.name)
    missing = missing_reason(server)
    if missing is not None:
        cell.note = f"not available: {missing}"
        return cell, None
    turns = launch_turns(cell, server, workload, tmp)

    def ready() -> None:
        wait_ready(turns.proc, turns.port, turns.log, workload.tls)
        if workload.tls:  # what was negotiated goes in the table
            cell.config += f", {_probe(turns.port).protocol}"

    return cell, turns.confirm(ready, ServerStartError)


def _take_turn(turns: Turns[Cell], opts: Options, first: bool) -> None:
    """One measured run (after the warm-up on the first turn), the RSS sampler watching.

    A failure stops the server and leaves its cell a note instead of numbers.
    """
    cell = turns.cell
    try:
        if first and opts.warmup_s > 0:
            _one_run(cell.workload, turns.port, opts.warmup_s, opts, turns.tmp)
            # A server still working off requests from connections wrk has closed (the sync
            # workers on `io`) answers this only after them, so the measured run starts clean.
            wait_ready(turns.proc, turns.port, turns.log, cell.workload.tls)
        turns.measure(lambda: _one_run(cell.workload, turns.port, opts.duration_s, opts, turns.tmp))
        wait_ready(turns.proc, turns.port, turns.log, cell.workload.tls)
    except ServerStartError as exc:
        turns.stop(f"not available: {exc}")
    except StimeError as exc:
        turns.stop(f"s_time failed: {str(exc)[:300]}")
    except WsLoadError as exc:
        turns.stop(f"wsload failed: {str(exc)[:300]}")
    except WrkError as exc:
        turns.stop(f"wrk failed: {str(exc)[:300]}")


def run_workload(workload: Workload, servers: list[Server], opts: Options, tmp: Path) -> list[Cell]:
    """Every server of one workload, started together and measured in turns, one run each per
    round (see turns.take_turns: run k of every server falls in the same few minutes)."""
    if workload.needs is not None and importlib.util.find_spec(workload.needs) is None:
        note = f"skipped: {workload.needs} not importable"
        return [Cell(workload, s.name, note=note, skipped=True) for s in servers]
    return take_turns(
        workload.name,
        servers,
        tmp,
        opts.runs,
        lambda server, cell_dir: _start(server, workload, cell_dir),
        lambda turns, first: _take_turn(turns, opts, first),
        _summary,
    )


def _summary(cell: Cell) -> str:
    run = cell.runs[-1]
    if cell.workload.resume:
        return f"{run.requests_per_s:,.0f} connections/s, {run.resumed} of {run.requests} resumed"
    unit = "msg/s" if cell.workload.websocket else "req/s"
    return f"{run.requests_per_s:,.0f} {unit}, p99 {run.p99_ms:.2f} ms"


def run_suite(opts: Options) -> list[Cell]:
    """Every cell, workload by workload (see run_workload), printing progress to stderr."""
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmpdir:
        for workload in opts.workloads:
            servers = [s for s in opts.servers if s.serves(workload)]
            if servers:
                cells += run_workload(workload, servers, opts, Path(tmpdir))
    return cells
