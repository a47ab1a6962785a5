"""Measure one configuration: start its server, load it, read /proc, stop it."""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from corral.tune import procs, stats
from corral.tune.model import Cell, Measurement, failed
from corral.tune.requests import RequestSpec
from corral.tune.server import Server, ServerPlan

# The load generator processes must start Python and connect their clients within this long.
READY_LIMIT_S = 30.0
SAMPLE_EVERY_S = 0.25
COLLECT_GRACE_S = 30.0

Tick = Callable[[str, float], None]  # (what is happening, share of this cell done)


@dataclass(frozen=True)
class LoadPlan:
    """How to load a server: the request mix, clients, processes, warm-up and window."""

    requests: list[RequestSpec]
    connections: int
    processes: int
    warmup_s: float
    window_s: float
    request_timeout_s: float = 10.0

    def jobs(self, port: int) -> list[dict[str, Any]]:
        """One JSON job per generator process, the connections spread over them."""
        host = f"127.0.0.1:{port}"
        wire = [
            [base64.b64encode(spec.encode(host)).decode(), spec.method == "HEAD"]
            for spec in self.requests
        ]
        count = max(1, min(self.processes, self.connections))
        shares = [self.connections // count + (i < self.connections % count) for i in range(count)]
        return [
            {
                "host": "127.0.0.1",
                "port": port,
                "requests": wire,
                "connections": share,
                "offset": sum(shares[:i]),
                "request_timeout": self.request_timeout_s,
                "longest_s": self.warmup_s + self.window_s + 60,
            }
            for i, share in enumerate(shares)
        ]


def _sleep_until(moment: float, tick: Tick, what: str, start: float, total: float) -> None:
    while True:
        now = time.monotonic()
        if now >= moment:
            return
        tick(what, min(1.0, (now - start) / total) if total > 0 else 1.0)
        time.sleep(min(0.1, moment - now))


def _launch(jobs: list[dict[str, Any]], log_path: Path) -> list[subprocess.Popen[bytes]]:
    launched = []
    with open(log_path, "ab") as log:
        for job in jobs:
            popen = subprocess.Popen(
                [sys.executable, "-m", "corral.tune.loadgen"],
                stdin=subprocess.PIPE,
                stdout=subprocess.PIPE,
                stderr=log,
                **procs.own_group(),
            )
            launched.append(popen)
            assert popen.stdin is not None
            popen.stdin.write(json.dumps(job).encode() + b"\n")
            popen.stdin.flush()
    return launched


def _await_ready(launched: list[subprocess.Popen[bytes]], tick: Tick) -> int:
    """Wait (bounded) until every generator has opened its clients; how many they opened."""
    deadline = time.monotonic() + READY_LIMIT_S
    connected = 0
    for popen in launched:
        assert popen.stdout is not None
        while time.monotonic() < deadline and popen.poll() is None:
            tick("connecting", 0.0)
            if select.select([popen.stdout], [], [], 0.1)[0]:
                line = popen.stdout.readline()
                connected += int(json.loads(line or b"{}").get("ready", 0))
                break
    return connected


def _send_window(launched: list[subprocess.Popen[bytes]], start_at: float, end_at: float) -> None:
    for popen in launched:
        if popen.stdin is None:
            continue
        with contextlib.suppress(OSError):
            popen.stdin.write(json.dumps({"start_at": start_at, "end_at": end_at}).encode())
            popen.stdin.write(b"\n")
            popen.stdin.close()
        popen.stdin = None  # communicate() must not flush it again


def _collect(launched: list[subprocess.Popen[bytes]], end_at: float) -> list[dict[str, Any]]:
    """Each generator's JSON result; a generator that overruns is killed by its PID."""
    results = []
    for popen in launched:
        assert popen.stdout is not None
        try:
            out, _ = popen.communicate(
                timeout=max(1.0, end_at - time.monotonic()) + COLLECT_GRACE_S
            )
            results.append(json.loads(out or b"{}"))
        except (subprocess.TimeoutExpired, json.JSONDecodeError):
            popen.kill()
            popen.wait()
            results.append({})
    return results


@dataclass
class _Snapshot:
    at: float
    usage: dict[int, procs.Usage]
    host: tuple[float, float]


def _snapshot(pids: list[int]) -> _Snapshot:
    found = {pid: u for pid in pids if (u := procs.usage(pid)) is not None}
    return _Snapshot(time.monotonic(), found, procs.host_busy())


def _pool_threads(workers: list[int]) -> int:
    counts = [s[1] for pid in workers if (s := procs.stat_of(pid)) is not None]
    return max(counts, default=0)


class Bench:
    """Measures configurations one after another. A server's stop (about a second for the
    threaded worker's threads to notice) overlaps the next server's start; the old one is gone
    before the next warm-up begins."""

    def __init__(self, plan: ServerPlan) -> None:
        self.plan = plan
        self._stopping: list[Server] = []

    def _settle(self) -> None:
        for server in self._stopping:
            server.finish_stop()
        self._stopping = []

    def close(self) -> None:
        """Stop every server still running or stopping."""
        self._settle()

    def measure(self, load: LoadPlan, cell: Cell, name: str, tick: Tick) -> Measurement:
        """Start the server for `cell`, warm it up, measure one window of load, stop it."""
        began = time.monotonic()
        server = Server(self.plan, cell, self.plan.log_dir / f"{name}.log")
        try:
            why = server.wait_ready(lambda port: load.requests[0].encode(f"127.0.0.1:{port}"))
            self._settle()
            if why:
                detail = server.log_tail()
                return failed(cell, load.connections, f"{why}\n{detail}".strip(), _since(began))
            return self._load(server, load, tick, began)
        finally:
            server.begin_stop()
            self._stopping.append(server)

    def _load(self, server: Server, load: LoadPlan, tick: Tick, began: float) -> Measurement:
        workers = server.workers()
        base_threads = _pool_threads(workers)
        launched = _launch(load.jobs(server.port), self.plan.log_dir / "loadgen.log")
        try:
            if not _await_ready(launched, tick):
                return failed(server.cell, load.connections, "no client could connect")
            start_at = time.monotonic() + load.warmup_s
            end_at = start_at + load.window_s
            total = end_at - began
            _send_window(launched, start_at, end_at)
            _sleep_until(start_at, tick, "warming up", began, total)
            workers = server.workers()
            first = _snapshot([server.pid, *workers])
            peak = base_threads
            while time.monotonic() < end_at:
                peak = max(peak, _pool_threads(workers))
                moment = min(end_at, time.monotonic() + SAMPLE_EVERY_S)
                _sleep_until(moment, tick, "measuring", began, total)
            last = _snapshot([server.pid, *workers])
            memory = {pid: procs.memory_kib(pid) for pid in [server.pid, *workers]}
            peak = max(peak, _pool_threads(workers))
            results = _collect(launched, end_at)
        finally:
            for popen in launched:
                if popen.poll() is None:
                    popen.kill()
                    popen.wait()
        pool = peak - base_threads + 1 if server.cell.kind == "threaded" and base_threads else 0
        window = (first, last)
        return summarise(server.cell, load, window, workers, memory, results, pool, _since(began))


def _since(began: float) -> float:
    return time.monotonic() - began


def client_side(results: list[dict[str, Any]]) -> dict[str, Any]:
    """The load generators' view, summed over their processes: rate, latency, failures, and
    their own CPU."""
    responses = sum(int(r["responses"]) for r in results)
    histogram = stats.merge(r["histogram"] for r in results)
    window_s = max(1e-6, sum(float(r["window_s"]) for r in results) / len(results))
    gen_cpu = [float(r["cpu_s"]) for r in results]
    statuses = _statuses(results)
    errors = ("connect_errors", "read_errors", "timeouts")
    return {
        "rps": responses / window_s,
        "p50_ms": stats.percentile(histogram, 0.5) * 1000,
        "p99_ms": stats.percentile(histogram, 0.99) * 1000,
        "mean_ms": stats.mean(histogram) * 1000,
        "responses": responses,
        "errors": sum(int(r[k]) for r in results for k in errors),
        "bad_status": statuses.get("4xx", 0) + statuses.get("5xx", 0),
        "generator_cores": max(c / window_s for c in gen_cpu),
        "generator_us": sum(gen_cpu) / responses * 1e6 if responses else 0.0,
        "window_s": window_s,
        "connected": sum(int(r.get("connected", 0)) for r in results),
        "active": responses / window_s * stats.mean(histogram),
    }


def summarise(
    cell: Cell,
    load: LoadPlan,
    window: tuple[_Snapshot, _Snapshot],
    workers: list[int],
    memory: dict[int, tuple[int, int]],
    results: list[dict[str, Any]],
    pool_threads: int,
    seconds: float,
) -> Measurement:
    """The numbers of one cell, from the generators' results and the two /proc snapshots."""
    if not results or any(not r for r in results):
        return failed(cell, load.connections, "a load generator gave no result", seconds)
    client = client_side(results)
    first, last = window
    span = max(1e-6, last.at - first.at)
    cpu = {p: last.usage[p].cpu_s - first.usage[p].cpu_s for p in last.usage if p in first.usage}
    runq = sum(last.usage[p].runq_s - first.usage[p].runq_s for p in cpu)
    server_cpu = sum(cpu.values())
    busy, total = (b - a for a, b in zip(first.host, last.host, strict=True))
    pss = [m[1] for m in memory.values()]
    answered = max(1, client["responses"])
    host_busy = busy / total if total > 0 else 0.0
    load_cores = client["generator_us"] * client["rps"] / 1e6
    others = host_busy * (os.cpu_count() or 1) - server_cpu / span - load_cores
    return Measurement(
        cell=cell,
        connections=load.connections,
        **client,
        cpu_ms=server_cpu / answered * 1000,
        runq_ms=runq / answered * 1000,
        server_cores=server_cpu / span,
        worker_cores=max((cpu.get(w, 0.0) / span for w in workers), default=0.0),
        runq_share=runq / (server_cpu + runq) if server_cpu + runq > 0 else 0.0,
        host_busy=host_busy,
        others_cores=max(0.0, others),
        memory_mib=(sum(pss) if all(pss) else sum(m[0] for m in memory.values())) / 1024,
        worker_rss_mib=max((memory[w][0] for w in workers if w in memory), default=0) / 1024,
        pool_threads=pool_threads,
        seconds=seconds,
        notes=_notes(load, client, workers, cpu),
    )


def _notes(
    load: LoadPlan, client: dict[str, Any], workers: list[int], cpu: dict[int, float]
) -> tuple[str, ...]:
    """What makes a measurement doubtful."""
    notes = []
    if not all(w in cpu for w in workers):
        notes.append("a worker exited during the window")
    if client["connected"] < load.connections:
        notes.append(f"{client['connected']} of {load.connections} clients connected")
    if client["active"] < 0.8 * load.connections:
        notes.append(
            f"only {client['active']:.0f} of {load.connections} clients had answers during the "
            "window (Little's law): the rest waited longer than the window; a longer --warmup "
            "or --time, or a server that starves connections"
        )
    return tuple(notes)


def _statuses(results: list[dict[str, Any]]) -> dict[str, int]:
    """Answers by status class ("2xx"...), summed over the generator processes."""
    statuses: dict[str, int] = {}
    for r in results:
        for key, count in r["statuses"].items():
            statuses[key] = statuses.get(key, 0) + int(count)
    return statuses
