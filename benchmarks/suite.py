"""Run every (workload, server) cell: start the server, wait for it, load it (wrk or wsload),
stop it."""

from __future__ import annotations

import http.client
import importlib.util
import os
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks.proctree import ProcStat, RssSampler, stop_tree
from benchmarks.servers import APPS_DIR, HOST, Launch, Server, missing_reason
from benchmarks.workloads import Workload
from benchmarks.wrkrun import WrkError, WrkResult, run_wrk, wrk_argv
from benchmarks.wsrun import WS_PATH, WsLoadError, run_wsload, wsload_argv

READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
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


@dataclass
class Cell:
    """The outcome of one (workload, server) pair: its runs, or why there are none."""

    workload: Workload
    server: str
    config: str = ""
    runs: list[WrkResult] = field(default_factory=list)
    peak_rss_kib: int = 0
    note: str | None = None  # set when the cell did not produce numbers
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


def _log_tail(log: Path, lines: int = 2) -> str:
    try:
        text = log.read_text(errors="replace")
    except OSError:
        return ""
    kept = [line.strip() for line in text.splitlines() if line.strip()][-lines:]
    return " / ".join(kept)[-200:]


def _answers(port: int) -> bool:
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


def wait_ready(proc: subprocess.Popen[bytes], port: int, log: Path) -> None:
    """Return once a real GET / gets a 200; raise ServerStartError if the server exits first
    or READY_TIMEOUT_S passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    while time.monotonic() < deadline:
        code = proc.poll()
        if code is not None:
            raise ServerStartError(f"server exited with code {code}: {_log_tail(log)}")
        if _answers(port):
            return
        time.sleep(0.05)
    raise ServerStartError(f"no 200 on GET / within {READY_TIMEOUT_S:.0f} s: {_log_tail(log)}")


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
            # Its own session, so a Ctrl-C at the terminal reaches the harness, which stops it.
            start_new_session=True,
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
        argv = wsload_argv(f"ws://{HOST}:{port}{WS_PATH}", conns, duration_s)
        return run_wsload(argv, duration_s)
    url = f"http://{HOST}:{port}/"
    return run_wrk(wrk_argv(url, conns, duration_s, _script(workload, tmp), opts.wrk), duration_s)


def _load(
    cell: Cell,
    proc: subprocess.Popen[bytes],
    port: int,
    opts: Options,
    seen: dict[int, ProcStat],
    tmp: Path,
    log: Path,
) -> None:
    """Warm up, then the measured runs with the RSS sampler watching the server's tree; every
    process the sampler saw goes into `seen`, so stop_tree can reach workers left behind."""
    if opts.warmup_s > 0:
        _one_run(cell.workload, port, opts.warmup_s, opts, tmp)
        # A server still working off requests from connections wrk has closed (the sync
        # workers on `io`) answers this only after them, so the next run starts clean.
        wait_ready(proc, port, log)
    for _ in range(opts.runs):
        with RssSampler(proc.pid) as sampler:
            cell.runs.append(_one_run(cell.workload, port, opts.duration_s, opts, tmp))
        cell.peak_rss_kib = max(cell.peak_rss_kib, sampler.peak_kib)
        seen.update(sampler.seen)
        wait_ready(proc, port, log)


def run_cell(server: Server, workload: Workload, opts: Options, tmp: Path) -> Cell:
    """One (workload, server) pair from start to stop; failures become the cell's note."""
    cell = Cell(workload, server.name)
    missing = missing_reason(server)
    if missing is not None:
        cell.note = f"not available: {missing}"
        return cell
    port = free_port()
    launch = server.build(str(port), workload, tmp)
    cell.config = launch.config
    log = tmp / f"{server.name}-{workload.name}.log"
    proc = start_server(launch, log)
    seen: dict[int, ProcStat] = {}
    try:
        wait_ready(proc, port, log)
        _load(cell, proc, port, opts, seen, tmp, log)
    except ServerStartError as exc:
        cell.note = f"not available: {exc}"
        cell.runs.clear()
    except WsLoadError as exc:
        cell.note = f"wsload failed: {str(exc)[:300]}"
        cell.runs.clear()
    except WrkError as exc:
        cell.note = f"wrk failed: {str(exc)[:300]}"
        cell.runs.clear()
    finally:
        stop_tree(proc, seen.values(), STOP_TIMEOUT_S)
    return cell


def _progress(text: str) -> None:
    print(text, file=sys.stderr, flush=True)


def _summary(cell: Cell) -> str:
    if cell.note is not None:
        return cell.note
    rps = cell.median(lambda r: r.requests_per_s)
    p99 = cell.median(lambda r: r.p99_ms)
    unit = "msg/s" if cell.workload.websocket else "req/s"
    return f"{rps:,.0f} {unit}, p99 {p99:.2f} ms, peak RSS {cell.peak_rss_kib / 1024:.0f} MiB"


def run_suite(opts: Options) -> list[Cell]:
    """Every cell, workload by workload, printing progress to stderr."""
    pairs = [(w, s) for w in opts.workloads for s in opts.servers if s.serves(w)]
    cells: list[Cell] = []
    with tempfile.TemporaryDirectory(prefix="corral-bench-") as tmpdir:
        for index, (workload, server) in enumerate(pairs, 1):
            _progress(f"[{index}/{len(pairs)}] {workload.name} x {server.name} ...")
            if workload.needs is not None and importlib.util.find_spec(workload.needs) is None:
                note = f"skipped: {workload.needs} not importable"
                cell = Cell(workload, server.name, note=note, skipped=True)
            else:
                cell_dir = Path(tmpdir) / f"{workload.name}-{server.name}"
                cell_dir.mkdir()
                cell = run_cell(server, workload, opts, cell_dir)
            _progress(f"    {_summary(cell)}")
            cells.append(cell)
    return cells
