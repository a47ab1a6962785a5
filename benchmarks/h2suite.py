"""Runs every cell of the HTTP/2 rows (benchmarks/h2.py): a workload's servers start together
and take turns under h2load, round by round, as benchmarks/suite.py does under wrk."""

from __future__ import annotations

import importlib.util
import statistics
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from benchmarks.h2load import H2LoadError, H2Result, h2load_argv, probe, probe_ok, run_h2load
from benchmarks.servers import Server, missing_reason
from benchmarks.suite import launch_turns
from benchmarks.turns import TurnCell, Turns, log_tail, take_turns

if TYPE_CHECKING:
    from benchmarks.h2 import H2Workload

H2LOAD_THREADS = 1  # one client thread: the two cores are shared with the servers
READY_TIMEOUT_S = 30.0
START_COST_S = 4  # per server: start, readiness, stop (for the time estimate)


@dataclass(frozen=True)
class Options:
    """What to run and for how long."""

    workloads: list[H2Workload]
    servers: list[Server]
    duration_s: int
    warmup_s: int
    runs: int
    h2load: str
    tls: bool = False

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def protocol(self) -> str:
        """What h2load must report having spoken."""
        return "h2" if self.tls else "h2c"


@dataclass
class H2Cell(TurnCell["H2Workload", H2Result]):
    """One (workload, server) pair: its runs, or why there are none."""

    def median(self, metric: str) -> float:
        return float(statistics.median(getattr(r, metric) for r in self.runs))

    def total(self, metric: str) -> int:
        return int(sum(getattr(r, metric) for r in self.runs))

    @property
    def lost(self) -> int:
        return sum(r.lost for r in self.runs)


class NotReady(RuntimeError):
    """The server exited, or never answered an HTTP/2 request, in time."""


def _url(turns: Turns[H2Cell], opts: Options) -> str:
    return f"{opts.scheme}://127.0.0.1:{turns.port}/"


def wait_ready(turns: Turns[H2Cell], opts: Options) -> None:
    """Return once one h2load request is answered 2xx over HTTP/2; NotReady if the server exits
    first or READY_TIMEOUT_S passes."""
    deadline = time.monotonic() + READY_TIMEOUT_S
    last = "no answer"
    while time.monotonic() < deadline:  # each probe is bounded by h2load's PROBE_TIMEOUT_S
        code = turns.proc.poll()
        if code is not None:
            raise NotReady(f"server exited with code {code}: {log_tail(turns.log, 3, 300)}")
        try:
            result = probe(opts.h2load, _url(turns, opts))
        except H2LoadError as exc:
            last = str(exc)[-200:]
        else:
            if probe_ok(result, opts.protocol):
                return
            last = (
                f"protocol {result.protocol}, {result.status_2xx} 2xx, "
                f"{result.failed} failed, {result.errored} errored"
            )
        time.sleep(0.1)
    tail = log_tail(turns.log, 3, 300)
    raise NotReady(f"no HTTP/2 200 within {READY_TIMEOUT_S:.0f} s ({last}): {tail}")


def _start(
    server: Server, workload: H2Workload, opts: Options, tmp: Path
) -> tuple[H2Cell, Turns[H2Cell] | None]:
    cell = H2Cell(workload, server.name)
    missing = missing_reason(server)
    if missing is None and not _importable("h2") and server.distribution != "granian":
        missing = "the h2 library is not importable (pip install h2)"
    if missing is not None:
        cell.note = f"not available: {missing}"
        return cell, None
    turns = launch_turns(cell, server, workload.as_workload(), tmp)
    return cell, turns.confirm(lambda: wait_ready(turns, opts), NotReady)


def _importable(module: str) -> bool:
    return importlib.util.find_spec(module) is not None


def _take_turn(turns: Turns[H2Cell], opts: Options, first: bool) -> None:
    """One measured h2load run (after the warm-up on the first turn), the RSS sampler watching;
    then the server must still answer. A failure stops the server and leaves a note."""
    w, url = turns.cell.workload, _url(turns, opts)

    def load(seconds: int) -> H2Result:
        argv = h2load_argv(opts.h2load, url, w.clients, w.streams, seconds, H2LOAD_THREADS)
        return run_h2load(argv, seconds)

    try:
        if first and opts.warmup_s > 0:
            load(opts.warmup_s)
            wait_ready(turns, opts)
        result = turns.measure(lambda: load(opts.duration_s))
        if result.protocol != opts.protocol:
            turns.stop(f"h2load spoke {result.protocol}, not {opts.protocol}")
            return
        wait_ready(turns, opts)
    except NotReady as exc:
        turns.stop(f"stopped answering: {exc}")
    except H2LoadError as exc:
        turns.stop(f"h2load failed: {str(exc)[:300]}")


def run_workload(workload: H2Workload, opts: Options, tmp: Path) -> list[H2Cell]:
    """Every server of one workload, started together and measured in turns, as
    benchmarks/suite.py does: round k of every server falls in the same minute or two, each
    round starting one server further on."""
    return take_turns(
        workload.name,
        [s for s in opts.servers if s.interface == workload.interface],
        tmp,
        opts.runs,
        lambda server, cell_dir: _start(server, workload, opts, cell_dir),
        lambda turns, first: _take_turn(turns, opts, first),
        _summary,
    )


def _summary(cell: H2Cell) -> str:
    run = cell.runs[-1]
    lost = f", LOST {run.lost} (failed {run.failed}, errored {run.errored})" if run.lost else ""
    return f"{run.requests_per_s:,.0f} req/s, mean {run.mean_ms:.2f} ms{lost}"


def run_all(opts: Options) -> list[H2Cell]:
    """Every cell, workload by workload."""
    cells: list[H2Cell] = []
    with tempfile.TemporaryDirectory(prefix="corral-h2-") as tmpdir:
        for workload in opts.workloads:
            cells += run_workload(workload, opts, Path(tmpdir))
    return cells


def estimate_s(opts: Options) -> int:
    """About how long the run takes: each server's start and stop, warm-up and rounds."""
    cells = sum(1 for w in opts.workloads for s in opts.servers if s.interface == w.interface)
    per_cell = START_COST_S + opts.warmup_s + opts.runs * (opts.duration_s + 1)
    return cells * per_cell
