"""Run one row against one server: start it, warm it, load and operate it, count, stop it."""

from __future__ import annotations

import contextlib
import dataclasses
import resource
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from benchmarks import reliability_clients as rc
from benchmarks.reliability_drain import run_drain
from benchmarks.reliability_load import Tally, open_loop
from benchmarks.reliability_nginx import Nginx, nginx_binary
from benchmarks.reliability_process import ServerProcess
from benchmarks.reliability_rows import Row
from benchmarks.reliability_servers import ServerSpec

WARMUP_UNITS = 4
SETTLE_S = 5.0
# Worker fds may grow by this much and still pass: a worker that has served its first requests
# may hold one lazily created descriptor more than a fresh one (a thread pool's wakeup pipe, a
# module's cache file); a leak grows with the requests, far past it.
FD_SLACK = 2
EMFILE_HEADROOM = 2  # fds a worker may open above its idle count in the emfile row
EMFILE_LOG = r"Too many open files|EMFILE|Errno 24"
DESIGNED: frozenset[int] = frozenset()


@dataclass
class RowResult:
    """What one row came to on one server."""

    server: str
    row: str
    tally: Tally = field(default_factory=Tally)
    na: str = ""  # why the row does not apply to this server
    error: str = ""  # the server or the operation failed outside the requests' count
    notes: list[str] = field(default_factory=list)
    master_fds: tuple[int | None, int | None] = (None, None)  # before, after
    worker_fds: tuple[int | None, int | None] = (None, None)  # the largest, before and after
    replaced: bool | None = None  # new worker pids at the end (rows that must replace them)
    emfile_lines: int = 0
    log: str = ""

    def fd_growth(self) -> tuple[int | None, int | None]:
        """(master, workers) growth in fds; None where not measured."""
        master = _minus(self.master_fds[1], self.master_fds[0])
        return master, _minus(self.worker_fds[1], self.worker_fds[0])

    def problems(self, fd_slack: int = FD_SLACK) -> list[str]:
        """Why this row failed; empty when it passed (or did not apply)."""
        if self.na:
            return []
        found = [self.error] if self.error else []
        if self.tally.failed:
            found.append(
                f"{self.tally.failed} of {self.tally.sent} failed ({self.tally.breakdown()})"
            )
        master, workers = self.fd_growth()
        if master is not None and master > 0:
            found.append(f"master fds grew by {master} ({self.master_fds})")
        if workers is not None and workers > fd_slack:
            found.append(f"worker fds grew by {workers} ({self.worker_fds})")
        if self.replaced is False:
            found.append("no worker was replaced: the operation did not happen")
        return found


def _minus(after: int | None, before: int | None) -> int | None:
    return None if after is None or before is None else after - before


def _fd_snapshot(server: ServerProcess) -> tuple[int | None, int | None]:
    master, workers = server.fds()
    return master, max(workers, default=None)


def settle_fds(
    server: ServerProcess, target: tuple[int | None, int | None] | None
) -> tuple[int | None, int | None]:
    """The fd counts once they stop moving (or reach `target`), polled for SETTLE_S at most.

    Closing a connection on the client side reaches the server a moment later; so does a
    retiring worker's exit. The poll ends early once the counts are at or under the target.
    """
    deadline = time.monotonic() + SETTLE_S
    last = _fd_snapshot(server)
    while time.monotonic() < deadline:
        time.sleep(0.2)
        now = _fd_snapshot(server)
        if target is not None and _within(now, target):
            return now
        if target is None and now == last:
            return now
        last = now
    return last


def _within(now: tuple[int | None, int | None], target: tuple[int | None, int | None]) -> bool:
    return all(n is not None and t is not None and n <= t for n, t in zip(now, target, strict=True))


class Clients:
    """The row's clients, built against the server (and nginx, when the row has it)."""

    def __init__(self, row: Row, addr: tuple[str, int], nginx: Nginx | None) -> None:
        self.units: list[rc.Unit] = []
        self.closers: list[rc.KeepAlivePool | rc.Pipeliner] = []
        for kind in row.clients:
            self._add(kind, row, addr, nginx)

    def _add(self, kind: str, row: Row, addr: tuple[str, int], nginx: Nginx | None) -> None:
        if kind == "keepalive" or (kind == "nginx" and nginx is not None):
            target = nginx.addr if kind == "nginx" and nginx is not None else addr
            pool = rc.KeepAlivePool(target, DESIGNED, row.path, get_only=row.kill_safe)
            self.closers.append(pool)
            self.units.append(pool.unit)
        elif kind == "pipelined":
            pipeliner = rc.Pipeliner(addr, DESIGNED, row.path)
            self.closers.append(pipeliner)
            self.units.append(pipeliner.unit)
        elif kind == "burst":
            self.units.append(lambda: rc.burst_unit(addr, DESIGNED, row.path))
        elif kind == "newconn":
            self.units.append(
                lambda: rc.newconn_unit(addr, DESIGNED, row.path, retry=row.kill_safe)
            )

    def close(self) -> None:
        for closer in self.closers:
            closer.close()


def warm_up(row: Row, server: ServerProcess) -> None:
    """A few units of every direct client, then closed: the workers have served before."""
    kinds = tuple(k for k in row.clients if k != "nginx") or ("newconn",)
    direct = Row(row.name, row.title, clients=kinds, path=row.path)
    clients = Clients(direct, server.addr, None)
    try:
        for _ in range(WARMUP_UNITS):
            for unit in clients.units:
                unit()
    finally:
        clients.close()


def limit_worker_fds(server: ServerProcess, headroom: int) -> list[str]:
    """Lower each worker's RLIMIT_NOFILE (prlimit(2)) so that `headroom` fd numbers stay free.

    A new fd takes the lowest free number under the limit; the limit is set just past the
    `headroom`-th free number, so holes among the open fds count in the headroom. Fds already
    open above the limit stay usable.
    """
    notes = []
    for pid in sorted(server.workers()):
        with contextlib.suppress(OSError):
            used = {int(entry.name) for entry in Path(f"/proc/{pid}/fd").iterdir()}
            free = (n for n in range(len(used) + headroom + 1) if n not in used)
            limit = [n for _, n in zip(range(headroom), free, strict=False)][-1] + 1
            resource.prlimit(pid, resource.RLIMIT_NOFILE, (limit, limit))
            notes.append(f"worker {pid}: {len(used)} fds open, RLIMIT_NOFILE {limit}")
    return notes


def run_row(
    spec: ServerSpec,
    row: Row,
    rate: float,
    *,
    use_nginx: bool = True,
    duration: float | None = None,
) -> RowResult:
    """One row on one server, from start to stop; never raises for the server's failures."""
    result = RowResult(spec.name, row.name)
    if row.name in spec.lacks:
        result.na = spec.lacks[row.name]
        return result
    with tempfile.TemporaryDirectory(prefix="corral-reliability-") as tmp:
        workdir = Path(tmp)
        opts = row.options
        if row.pidfile:
            opts = dataclasses.replace(opts, pidfile=workdir / "server.pid")
        try:
            server = ServerProcess(spec, opts, workdir)
        except (OSError, TimeoutError) as exc:
            result.error = f"did not start: {exc}"
            return result
        try:
            _run_started(server, row, rate, duration or row.duration, use_nginx, result, workdir)
        except (OSError, TimeoutError, AssertionError) as exc:
            result.error = f"{type(exc).__name__}: {exc}"
        finally:
            if row.name != "term_drain" and not server.stop():
                result.error = result.error or "the server did not stop on TERM in time"
            server.kill()
            if result.problems():
                result.log = "\n".join(server.lines()[-60:])
    return result


def _run_started(
    server: ServerProcess,
    row: Row,
    rate: float,
    duration: float,
    use_nginx: bool,
    result: RowResult,
    workdir: Path,
) -> None:
    warm_up(row, server)
    before_workers = server.workers()
    before = settle_fds(server, None)
    if row.name == "term_drain":
        if not run_drain(server, result.tally, DESIGNED):
            result.error = "the master did not exit after TERM"
        return
    if row.name == "emfile":
        result.notes += limit_worker_fds(server, EMFILE_HEADROOM)
    nginx = _start_nginx(row, server, use_nginx, workdir, result)
    clients = Clients(row, server.addr, nginx)
    mark = len(server.lines())
    operate = row.operate
    try:
        during = (lambda: operate(server, duration)) if operate is not None else None
        open_loop(clients.units, rate * row.rate_scale, duration, result.tally, during=during)
    finally:
        clients.close()
        if nginx is not None:
            nginx.stop()
    target = (before[0], None if before[1] is None else before[1] + FD_SLACK)
    after = settle_fds(server, target)
    result.master_fds = (before[0], after[0])
    result.worker_fds = (before[1], after[1])
    result.emfile_lines = server.count(EMFILE_LOG, since=mark)
    if row.replaces:
        result.replaced = bool(server.workers() - before_workers)


def _start_nginx(
    row: Row, server: ServerProcess, use_nginx: bool, workdir: Path, result: RowResult
) -> Nginx | None:
    if "nginx" not in row.clients:
        return None
    if not use_nginx or nginx_binary() is None:
        result.notes.append("nginx: not installed" if use_nginx else "nginx: left out")
        return None
    return Nginx(workdir / "nginx", server.addr, retry_twice=row.kill_safe)
