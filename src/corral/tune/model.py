"""What one measured configuration is and what it gave: the records the search decides on."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

KINDS = ("threaded", "sync", "asyncio")


@dataclass(frozen=True, order=True)
class Cell:
    """One configuration: worker class, worker processes, threads per worker (1 unless threaded)."""

    kind: str
    workers: int
    threads: int = 1

    def label(self) -> str:
        """`threaded 2x16`, `sync 5`, `asyncio 2`."""
        if self.kind == "threaded":
            return f"threaded {self.workers}x{self.threads}"
        return f"{self.kind} {self.workers}"


@dataclass(frozen=True)
class Measurement:
    """A cell under load: the client's view, the server's CPU and memory, and the machine's.

    Times are in milliseconds, CPU in cores (CPU seconds per second of the window), memory in
    MiB. `cpu_ms` is the server's CPU (master and workers, every thread) per answered request.
    """

    cell: Cell
    connections: int
    rps: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    responses: int
    errors: int = 0  # connect and read errors, timeouts
    bad_status: int = 0  # 4xx and 5xx answers
    cpu_ms: float = 0.0
    runq_ms: float = 0.0  # per request, the server's threads waited this long for a CPU
    server_cores: float = 0.0
    worker_cores: float = 0.0  # the busiest worker
    runq_share: float = 0.0  # of the server's runnable time, spent waiting for a CPU
    generator_cores: float = 0.0  # the busiest load generator process
    generator_us: float = 0.0  # load generator CPU per request
    host_busy: float = 0.0  # share of the host's CPUs busy, with every process counted
    others_cores: float = 0.0  # CPUs other processes (not the server, not the load) kept busy
    memory_mib: float = 0.0  # PSS (RSS without smaps_rollup) of master and workers
    worker_rss_mib: float = 0.0  # the largest worker's RSS
    pool_threads: int = 0  # threads the busiest worker's pool had grown to (threaded)
    connected: int = 0  # clients connected when the window opened
    active: float = 0.0  # clients with a request in flight, on average (rps x mean latency)
    window_s: float = 0.0
    seconds: float = 0.0  # the whole cell: start, warm-up, window, stop
    failure: str = ""  # why the cell gave no numbers (the server did not start...)
    notes: tuple[str, ...] = field(default_factory=tuple)

    @property
    def error_share(self) -> float:
        """Failed requests (errors and 4xx/5xx) over all attempts."""
        total = self.responses + self.errors
        if self.failure or total == 0:
            return 1.0
        return (self.errors + self.bad_status) / total

    def as_dict(self) -> dict[str, Any]:
        """For the JSON record (measurements.json)."""
        data = asdict(self)
        data["cell"] = asdict(self.cell)
        data["notes"] = list(self.notes)
        return data

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Measurement:
        """The inverse of as_dict, for recorded measurements."""
        values = dict(data)
        values["cell"] = Cell(**values["cell"])
        values["notes"] = tuple(values.get("notes", ()))
        return cls(**values)


def failed(cell: Cell, connections: int, why: str, seconds: float = 0.0) -> Measurement:
    """A cell that produced no numbers."""
    return Measurement(cell, connections, 0.0, 0.0, 0.0, 0.0, 0, failure=why, seconds=seconds)
