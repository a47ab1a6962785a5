"""One forked worker: the arbiter's record of it, the child side of fork, and its exit report."""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, NoReturn, Protocol

from corral.arbiter.affinity import pin_process
from corral.arbiter.heartbeat import Heartbeat
from corral.arbiter.plan import Phase, WorkerView
from corral.arbiter.privileges import drop_privileges
from corral.arbiter.proctitle import set_title
from corral.arbiter.signals import SignalQueue
from corral.errors import APP_LOAD_ERROR, WORKER_BOOT_ERROR, AppLoadError
from corral.logging import Logger

if TYPE_CHECKING:
    from corral.arbiter.arbiter import Arbiter
    from corral.workers.base import Worker


class Service(Protocol):
    """A socket server of the arbiter's (metrics_bind, control_socket)."""

    def close(self, *, unlink: bool) -> None: ...


@dataclass
class Child:
    """The arbiter's record of one forked worker."""

    worker: Worker
    heartbeat: Heartbeat
    generation: int
    spawned_at: float
    phase: Phase = Phase.ACTIVE
    phase_since: float = 0.0
    cpu: int | None = None  # the CPU it is pinned to (cpu_affinity)
    booted_at: float = 0.0  # when a view first found it booted (its first heartbeat notify)
    exit_reason: str | None = None  # why the arbiter stops it: timeout, memory, request_timeout

    def view(self, *, measure_memory: bool = False) -> WorkerView:
        """The plan's view of this worker; its resident memory read only when asked for."""
        booted = self.heartbeat.notified()
        if booted and not self.booted_at:
            self.booted_at = time.monotonic()
        return WorkerView(
            pid=self.worker.pid,
            age=self.worker.age,
            generation=self.generation,
            spawned_at=self.spawned_at,
            last_beat=self.heartbeat.last_update(),
            booted=booted,
            phase=self.phase,
            phase_since=self.phase_since,
            rss=resident_bytes(self.worker.pid) if measure_memory else 0,
            booted_at=self.booted_at,
            asks_replacement=self.heartbeat.asks_replacement(),
        )


def resident_bytes(pid: int) -> int:
    """A process's resident memory (its RSS) from /proc; 0 when it cannot be read.

    Shared pages count in full, as in `ps` and `top`: with preload_app, the pages a worker
    still shares with the arbiter after fork are part of its number.
    """
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            return int(statm.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, IndexError, ValueError):
        return 0  # gone (reaped next turn), or no /proc on this system


def run_child(
    server: Arbiter,
    worker: Worker,
    signals: SignalQueue,
    siblings: Sequence[Heartbeat],
    ids: tuple[int, int] | None,
    cpu: int | None = None,
    services: Sequence[Service] = (),
) -> NoReturn:
    """The child side of fork: never returns into the arbiter's loop, whatever happens.

    A failure before `worker.run()` (dropping privileges, the post_fork hook) exits with
    WORKER_BOOT_ERROR, which halts the arbiter rather than fork-looping.
    """
    code = WORKER_BOOT_ERROR
    try:
        signals.reset_in_child()
        for service in services:
            service.close(unlink=False)  # the arbiter's sockets (scrapes, control): not ours
        for heartbeat in siblings:
            heartbeat.close()  # the other workers' files: not ours to touch
        worker.pid = os.getpid()
        set_title("worker", server.proc_name)
        if cpu is not None:
            _pin(server.log, cpu)
        if ids is not None:
            drop_privileges(*ids, initgroups=server.cfg.initgroups)
        server.log.info("Booting worker with pid: %s", worker.pid)
        server.cfg.post_fork(server, worker)
        worker.run()
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    except AppLoadError as exc:
        server.log.error("%s", exc)
        code = APP_LOAD_ERROR
    except BaseException:
        server.log.exception("Exception in worker process")
        code = 1 if worker.booted else WORKER_BOOT_ERROR
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def _pin(log: Logger, cpu: int) -> None:
    """Pin this worker before it starts any thread, so that its threads share the CPU."""
    try:
        pin_process(cpu)
    except OSError as exc:  # the CPU went offline or left our cpuset since the arbiter looked
        log.warning("cpu_affinity: cannot pin worker %s to CPU %s: %s", os.getpid(), cpu, exc)


def log_exit(log: Logger, pid: int, code: int, phase: Phase, requested: bool) -> None:
    """Report a worker's exit at the level it deserves: errors only for what we did not ask."""
    if code < 0:
        name = signal_label(-code)
        if phase is Phase.KILLED:
            log.warning("Worker (pid:%s) was killed (%s)", pid, name)
        elif requested and -code in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            log.info("Worker (pid:%s) exited on %s", pid, name)
        else:
            hint = " Perhaps out of memory?" if -code == signal.SIGKILL else ""
            log.error("Worker (pid:%s) was sent %s!%s", pid, name, hint)
    elif phase is Phase.ABORTED:
        log.warning("Worker (pid:%s) exited after its timeout (code %s)", pid, code)
    elif code > 0:
        log.error("Worker (pid:%s) exited with code %s", pid, code)
    elif requested:
        log.debug("Worker (pid:%s) exited", pid)
    else:
        log.info("Worker (pid:%s) exited", pid)


def signal_label(signum: int) -> str:
    """`SIGKILL`, or `signal 64` for a number with no name."""
    try:
        return signal.Signals(signum).name
    except ValueError:
        return f"signal {signum}"
