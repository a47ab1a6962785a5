"""The master process: binds, forks and supervises workers, and turns signals into actions."""

from __future__ import annotations

import contextlib
import os
import signal
import sys
import time
from collections.abc import Iterable, Sequence
from typing import TYPE_CHECKING

from corral import __version__
from corral.arbiter import reexec, reload
from corral.arbiter.affinity import Placement
from corral.arbiter.children import Child, log_exit, resident_bytes, run_child
from corral.arbiter.commands import (
    ServerStats,
)
from corral.arbiter.control import ControlService, control_path
from corral.arbiter.daemon import daemonize
from corral.arbiter.heartbeat import Heartbeat
from corral.arbiter.pidfile import Pidfile, PidfileError
from corral.arbiter.plan import Backoff, Exit, Phase, Timing, decide
from corral.arbiter.privileges import PrivilegeError, target_ids
from corral.arbiter.proctitle import set_title
from corral.arbiter.scrape import Census, MetricsService
from corral.arbiter.sdnotify import sd_notify
from corral.arbiter.signals import SignalQueue, signal_name
from corral.arbiter.sizing import resolve_workers
from corral.arbiter.target import ControlCommands
from corral.arbiter.watch import Watch
from corral.errors import APP_LOAD_ERROR, WORKER_BOOT_ERROR, CorralError, HaltServer
from corral.logging import Logger
from corral.metrics import WORKERS as WORKERS_GAUGE
from corral.sockets import BindError, Listener, close_listeners, open_listeners

if TYPE_CHECKING:
    from corral.config import Config
    from corral.gateway.loader import LoadedApp
    from corral.workers.base import Worker

MAX_SLEEP = 1.0  # the loop wakes at least this often, even with nothing due
KILL_GRACE = 3.0  # a hung worker's time, after SIGABRT, to log its stacks before SIGKILL
FAST_STOP_WAIT = 2.0  # INT/QUIT: workers exit at once; stragglers are killed after this
KILL_WAIT = 5.0  # after SIGKILL, how long shutdown waits to reap before giving up
MIB = 1024 * 1024  # max_worker_memory is in MiB


class Arbiter(ControlCommands):
    """Runs the server: `Arbiter(cfg).run()` returns the process exit status.

    Hooks receive the arbiter as `server`: `server.log`, `server.cfg`, `server.pid`,
    `server.num_workers` and `server.workers` (pid -> worker) are the stable attributes.
    HUP re-reads the configuration from `argv` (default: this process's arguments), and USR2
    re-executes the command, both in `cwd`: the directory the command line's relative paths are
    relative to (default: the current one; the CLI passes the one from before `--chdir`).
    """

    def __init__(
        self, cfg: Config, *, argv: Sequence[str] | None = None, cwd: str | None = None
    ) -> None:
        self.cfg = cfg
        self.argv = list(sys.argv[1:] if argv is None else argv)
        self.pid = os.getpid()
        self.log: Logger
        self.app: LoadedApp | None = None
        self.listeners: list[Listener] = []
        self._num_workers = cfg.workers
        self._worker_class: type[Worker]
        self._children: dict[int, Child] = {}
        self._placement = Placement()
        self._signals = SignalQueue()
        self._backoff = Backoff()
        self._pidfile: Pidfile | None = None
        self._ids: tuple[int, int] | None = None
        self._generation = 0
        self._age = 0
        self._stop: int | None = None  # the signal that asked us to stop
        self._stopping = False
        self._previous: reload.Generation | None = None
        self._upgrade = reexec.Upgrade()
        self._cwd = os.getcwd() if cwd is None else cwd
        self._metrics: MetricsService  # made with the logger
        self._workers_sent: int | None = None  # the workers gauge as last sent to statsd
        self._control: ControlService  # made with the logger
        self._stats = ServerStats()
        self._watch: Watch  # made with the logger: scoreboards, restarts, adaptive mode

    # -- attributes for hooks ----------------------------------------------------------------------

    @property
    def num_workers(self) -> int:
        return self._num_workers

    @num_workers.setter
    def num_workers(self, value: int) -> None:
        old, self._num_workers = self._num_workers, value
        if value != old:
            self._hook("nworkers_changed", self, value, old)

    @property
    def workers(self) -> dict[int, Worker]:
        """Live workers by pid."""
        return {pid: child.worker for pid, child in self._children.items()}

    WORKERS = workers  # gunicorn's name, used by existing hook code

    @property
    def proc_name(self) -> str:
        return self.cfg.proc_name or self.cfg.default_proc_name

    # -- run -------------------------------------------------------------------------------------

    def run(self) -> int:
        """Serve until stopped; return the exit status (0 after a TERM/INT/QUIT shutdown)."""
        if self.cfg.daemon:
            daemonize(keep_stdio=self.cfg.enable_stdio_inheritance)
        self.pid = os.getpid()
        os.umask(self.cfg.umask)
        try:
            self.log = Logger(self.cfg)
        except ValueError as exc:
            sys.stderr.write(f"Error: {exc}\n")
            return 1
        self._metrics = MetricsService(self.cfg.metrics_bind, self.log, self._census)
        self._watch = Watch(self.log, bool(self.cfg.statsd_host), self.cfg.enable_backlog_metric)
        mode = self.cfg.control_socket_mode
        self._control = ControlService(self._control_path(), mode, self.log, self)
        code = 1
        try:
            self._start()
            self._loop()
            assert self._stop is not None
            self._shutdown(self._stop)
            code = 0
        except HaltServer as exc:
            code = self._halt(exc.reason, exc.exit_code)
        except (BindError, PidfileError, PrivilegeError, CorralError) as exc:
            # CorralError: ConfigError (worker class), AppLoadError (preload), with their codes
            self.log.error("%s", exc)
            self._shutdown(signal.SIGQUIT)
            code = exc.exit_code if isinstance(exc, CorralError) else 1
        except Exception:
            self.log.exception("Unhandled exception in the arbiter")
            self._shutdown(signal.SIGQUIT)
        finally:
            self._cleanup()
        return code

    def _start(self) -> None:
        self.log.info("Starting corral %s", __version__)
        # The config file's near misses (WARNING) and old gunicorn names (INFO), once, where
        # the operator reads the log (errorlog, syslog), not only on the terminal.
        for unknown in self.cfg.unknown:
            text = unknown.message()
            if text is not None:
                self.log.log(unknown.level, "%s", text)
        self._upgrade.take_environment(os.environ)
        self._signals.install()
        set_title("master", self.proc_name)
        if self.cfg.pidfile:
            self._pidfile = Pidfile(self.cfg.pidfile)
            self._pidfile.create(self.pid)
        # Sized before the first hook, so hooks see the number of workers that will run.
        self._worker_class = reload.worker_class(self.cfg)
        cpus = resolve_workers(self.cfg, self._worker_class)
        self._num_workers = self.cfg.workers
        self._hook("on_starting", self, fatal=True)
        self._ids = target_ids(self.cfg.user, self.cfg.group)
        if self.cfg.preload_app:
            self.app = reload.preload(self.cfg)
        self.listeners = open_listeners(
            self.cfg.bind,
            os.environ,
            self.pid,
            backlog=self.cfg.backlog,
            reuse_port=self.cfg.reuse_port,
            owner=self._ids,
        )
        for listener in self.listeners:
            self.log.info("Listening at: %s (%s)", listener.url(self.cfg.scheme), self.pid)
        self._metrics.open(upgrading=self._upgrade.predecessor > 0)
        self._control.open(predecessor=self._upgrade.predecessor)
        self.log.info("Using worker: %s", self._worker_class.kind)
        if "h2" in self.cfg.http_protocols and not self._worker_class.serves_h2:
            self.log.warning(
                "http_protocols includes h2, but the %s worker serves HTTP/1.1 only: HTTP/2 "
                "needs -k threaded or -k asyncio",
                self._worker_class.kind,
            )
        if cpus is not None:
            self.log.info(
                "workers = auto: %d %s workers for %d usable CPU(s)",
                self._num_workers,
                self._worker_class.kind,
                cpus,
            )
            if self.cfg.threads == 0:
                self._watch.adaptive(cpus)
        given = self.cfg.given("worker_class")
        if isinstance(given, str) and given.strip().lower() != self.cfg.worker_class.lower():
            # An alias, e.g. uvicorn.workers.UvicornWorker from a gunicorn config for FastAPI.
            self.log.info(
                "worker_class %r is served by corral's %s worker", given, self._worker_class.kind
            )
        if self.cfg.max_worker_memory and not resident_bytes(self.pid):
            self.log.warning("max_worker_memory is set, but /proc cannot tell RSS here: it is off")
        self._hook("when_ready", self, fatal=True)
        sd_notify(f"READY=1\nMAINPID={self.pid}\nSTATUS=corral master booted", os.environ)

    def _loop(self) -> None:
        timeout = 0.0  # a signal that came during startup is handled before the first fork
        while True:
            watched = {**self._metrics.watched(), **self._control.watched()}
            signals, ready = self._signals.wait_io(timeout, watched)
            self._metrics.ready(ready)
            self._control.ready(ready)
            for signum in signals:
                self._dispatch(signum)
            if self._signals.dropped:
                self.log.warning("Ignored %d signals: too many at once", self._signals.dropped)
                self._signals.dropped = 0
            self._reap()
            self._check_promotion()
            if self._stop is not None:
                return
            timeout = self._supervise()

    def _dispatch(self, signum: int) -> None:
        name = signal_name(signum)
        if signum == signal.SIGCHLD:
            return  # the loop reaps after every wake
        self.log.info("Handling signal: %s", name)
        if signum in (signal.SIGTERM, signal.SIGINT, signal.SIGQUIT):
            self._stop = signum
        elif signum == signal.SIGHUP:
            self._reload()
        elif signum == signal.SIGTTIN:
            self.num_workers += 1
        elif signum == signal.SIGTTOU:
            if self.num_workers > 1:
                self.num_workers -= 1
        elif signum == signal.SIGUSR1:
            self.log.reopen_files()
            self._signal_all(signal.SIGUSR1)
        elif signum == signal.SIGUSR2:
            self._reexec()
        elif signum == signal.SIGWINCH:
            self._winch()

    def _census(self) -> Census:
        """The live workers and what they do now, as a scrape reports them."""
        socks = [listener.sock for listener in self.listeners]
        return self._watch.census(self._children.values(), self.num_workers, socks)

    # -- supervision -------------------------------------------------------------------------------

    def _supervise(self) -> float:
        """Apply the plan for now; return how long the loop may sleep."""
        now = time.monotonic()
        max_rss = self.cfg.max_worker_memory * MIB
        views = [child.view(measure_memory=max_rss > 0) for child in self._children.values()]
        for view in views:
            if self._backoff.healthy(view, now):
                self.log.info("Workers boot again: crash backoff reset")
        timing = Timing(self.cfg.timeout, self.cfg.graceful_timeout, KILL_GRACE)
        plan = decide(
            self.num_workers,
            self._generation,
            views,
            now,
            timing,
            self._backoff.spawn_after,
            max_rss,
        )
        socks = [listener.sock for listener in self.listeners]
        wanted = self._watch.tick(self._children.values(), self.num_workers, socks, now)
        if wanted != self.num_workers and not self._stopping:
            self.num_workers = wanted
        self._note_exit_reasons(plan.abort, "timeout")
        self._note_exit_reasons(plan.over_memory, "memory")
        self._note_exit_reasons(plan.asked, "request_timeout")
        for pid in plan.kill:
            self.log.error("Worker (pid:%s) did not exit in time; sending SIGKILL", pid)
            self._signal(pid, signal.SIGKILL, Phase.KILLED)
        for pid in plan.abort:
            self.log.critical("WORKER TIMEOUT (pid:%s): no heartbeat for %ss", pid, timing.timeout)
            self._signal(pid, signal.SIGABRT, Phase.ABORTED)
        for view in views:
            if view.pid in plan.over_memory:
                self.log.warning(
                    "Worker (pid:%s) uses %d MiB %.0f s after booting, over max_worker_memory "
                    "(%d MiB): its replacement has booted, so it finishes its requests and exits",
                    view.pid,
                    view.rss // MIB,
                    now - view.booted_at,
                    self.cfg.max_worker_memory,
                )
        for pid in plan.asked:
            self.log.warning(
                "Worker (pid:%s) asked to be replaced (a request on it would not stop): its "
                "replacement has booted, so it finishes its requests and exits",
                pid,
            )
        for pid in plan.retire:
            self._signal(pid, signal.SIGTERM, Phase.RETIRING)
        for _ in range(plan.spawn):
            if not self._spawn():
                break
        self._send_workers_gauge()
        return max(0.0, min(MAX_SLEEP, plan.wake_at - time.monotonic()))

    def _note_exit_reasons(self, pids: Iterable[int], reason: str) -> None:
        """Remember why the plan stops these workers, for the restarts counted at their exit."""
        for pid in pids:
            child = self._children.get(pid)
            if child is not None and child.exit_reason is None:
                child.exit_reason = reason

    def _send_workers_gauge(self) -> None:
        """statsd's workers gauge, sent when it changes, as gunicorn's arbiter does.

        Like gunicorn's, it counts the workers serving or booting, up to the number wanted:
        during a reload the old and new workers together still count `num_workers`.
        """
        active = sum(1 for child in self._children.values() if child.phase is Phase.ACTIVE)
        count = min(active, self.num_workers)
        if count != self._workers_sent:
            self._workers_sent = count
            self.log.metrics.gauge(WORKERS_GAUGE, count)

    def _signal(self, pid: int, sig: int, phase: Phase | None = None) -> None:
        child = self._children.get(pid)
        if child is not None and phase is not None:
            child.phase, child.phase_since = phase, time.monotonic()
        if sig in (signal.SIGTERM, signal.SIGKILL):
            self._stats.killed += 1  # as gunicorn counts `workers_killed`
        with contextlib.suppress(ProcessLookupError):  # already dead: the next reap collects it
            os.kill(pid, sig)

    def _signal_all(self, sig: int, phase: Phase | None = None) -> None:
        for pid in list(self._children):
            self._signal(pid, sig, phase)

    def _spawn(self) -> bool:
        """Fork one worker; False when fork failed (the backoff then delays the next try)."""
        self._age += 1
        beat = min(1.0, self.cfg.timeout / 4) if self.cfg.timeout > 0 else 1.0
        try:
            heartbeat = Heartbeat(
                self.cfg.worker_tmp_dir,
                min_interval=beat,
                owner=self._ids,
                board=self._metrics.board,
            )
        except OSError as exc:
            raise HaltServer(f"Cannot create a worker heartbeat file: {exc}", 1) from None
        listeners = [listener.sock for listener in self.listeners]
        worker = self._worker_class(self._age, self.pid, listeners, self.cfg, self.log, heartbeat)
        worker.server = self  # hooks run in the worker (worker_exit) get the arbiter as `server`
        if self.app is not None:
            worker.preloaded = self.app
        self._hook("pre_fork", self, worker)
        cpu = self._placement.next_cpu(self.cfg.cpu_affinity, self._children.values(), self.log)
        sys.stdout.flush()
        sys.stderr.flush()
        try:
            with self._signals.blocked_for_fork():
                pid = os.fork()
                if pid == 0:
                    siblings = [child.heartbeat for child in self._children.values()]
                    services = (self._metrics, self._control)
                    run_child(self, worker, self._signals, siblings, self._ids, cpu, services)
        except OSError as exc:  # EAGAIN, ENOMEM: out of processes or memory for now
            heartbeat.close()
            delay = self._backoff.record(Exit(False, False, 1, 0.0), time.monotonic())
            self.log.error("Cannot fork a worker: %s; next try in %.1fs", exc, delay)
            return False
        worker.pid = pid
        self._stats.spawned += 1
        self._children[pid] = Child(worker, heartbeat, self._generation, heartbeat.created, cpu=cpu)
        return True

    # -- reaping -----------------------------------------------------------------------------------

    def _reap(self) -> None:
        """Collect every exited child: workers, a failed upgrade, and orphans (as PID 1)."""
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                return
            if pid == 0:
                return
            self._child_exited(pid, os.waitstatus_to_exitcode(status))

    def _child_exited(self, pid: int, code: int) -> None:
        if pid == self._upgrade.successor:
            self._upgrade_failed(code)
            return
        child = self._children.pop(pid, None)
        if child is None:
            # An orphan re-parented to us (PID 1, subreaper) or a hook's subprocess: routine.
            self.log.debug("Reaped pid %s (not a worker), exit status %s", pid, code)
            return
        now = time.monotonic()
        booted = child.heartbeat.notified()
        self._metrics.retire(child.heartbeat)
        self._watch.exited(child, code)
        child.heartbeat.close()
        requested = self._stopping or child.phase is not Phase.ACTIVE
        log_exit(self.log, pid, code, child.phase, requested)
        self._hook("child_exit", self, child.worker)
        if not requested and code in (WORKER_BOOT_ERROR, APP_LOAD_ERROR):
            self._boot_failed(child, code)
        delay = self._backoff.record(Exit(requested, booted, code, now - child.spawned_at), now)
        if delay:
            self.log.warning(
                "Worker (pid:%s) died %s (%d in a row); next spawn in %.1fs",
                pid,
                "within a second of booting" if booted else "while booting",
                self._backoff.failures,
                delay,
            )

    def _boot_failed(self, child: Child, code: int) -> None:
        """Halt, as gunicorn does, unless a reload's new workers failed while old ones serve."""
        reason = "Worker failed to boot." if code == WORKER_BOOT_ERROR else "App failed to load."
        serving = [
            c
            for c in self._children.values()
            if c.generation < child.generation and c.phase is Phase.ACTIVE
        ]
        previous = self._previous
        if previous is None or child.generation != self._generation or not serving:
            raise HaltServer(reason, code)
        self.log.error("%s Reload abandoned: the previous workers keep serving.", reason)
        for pid, other in list(self._children.items()):
            if other.generation == self._generation:
                self._signal(pid, signal.SIGTERM, Phase.RETIRING)
        reload.switch_environ(self.cfg.raw_env, previous.cfg.raw_env)
        self.cfg = previous.cfg
        self._worker_class = previous.worker_class
        self.app = previous.app
        self._num_workers = previous.num_workers
        self._generation = max(c.generation for c in serving)
        self._previous = None

    # -- signals: HUP, WINCH, USR2 -------------------------------------------------------------

    def _reload(self) -> None:
        """HUP: re-read the configuration; new workers replace the old ones as they boot."""
        sd_notify("RELOADING=1", os.environ)
        try:
            self._reload_config()
        finally:
            sd_notify("READY=1", os.environ)

    def _reload_config(self) -> None:
        try:
            new, log = reload.prepare(self.argv, self._cwd, self.cfg.raw_env)
        except Exception as exc:  # a config file can raise anything
            self.log.error("Reload failed, the current configuration stays: %s", exc)
            return
        self._previous = reload.Generation(self.cfg, self._worker_class, self.app, self.num_workers)
        old_log, self.log = self.log, log
        old_log.close()
        self._workers_sent = None  # the new logger may send to another statsd_host
        self._metrics.reconfigure(new.cfg.metrics_bind, log)
        self._watch.log, self._watch.statsd = log, bool(new.cfg.statsd_host)
        self._watch.backlog_metric = new.cfg.enable_backlog_metric
        cfg = self.cfg = new.cfg
        self._stats.reloads += 1
        self._control.reconfigure(self._control_path(), cfg.control_socket_mode, log)
        self._worker_class, self.app = new.worker_class, new.app
        os.umask(cfg.umask)
        self._ids = target_ids(cfg.user, cfg.group)
        self.listeners = reload.rebind(
            self.listeners, cfg, self.pid, self._ids, self.log, unlink=self._may_unlink()
        )
        self._pidfile = reload.repoint_pidfile(self._pidfile, cfg.pidfile or None, self.pid, log)
        set_title("master", self.proc_name)
        self._generation += 1
        self.num_workers = new.num_workers
        self._hook("on_reload", self)

    def _winch(self) -> None:
        # WINCH also comes with every terminal resize: honour it only when it cannot be that.
        if self.cfg.daemon or self._upgrade.successor:
            self.log.info("Graceful stop of the workers")
            self.num_workers = 0
        else:
            self.log.debug("SIGWINCH ignored: not daemonized and no upgrade in progress")

    def _reexec(self) -> None:
        """USR2: start an upgraded master on the same listeners; we keep running until told."""
        refusal = self._upgrade.refusal()
        if refusal is not None:
            self.log.warning("%s", refusal)
            return
        self._upgrade.successor = reexec.start_new_master(
            self.listeners,
            self._cwd,
            self.log,
            self._signals,
            pidfile=self._pidfile,
            before_exec=self._before_exec,
        )
        self.log.info("Upgrade: started a new master (pid %s)", self._upgrade.successor)
        set_title("master (old)", self.proc_name)

    def _before_exec(self) -> None:
        """In the child that becomes the new master: drop the workers' heartbeats, run pre_exec."""
        for child in self._children.values():
            child.heartbeat.close()
        self._hook("pre_exec", self)

    def _upgrade_failed(self, code: int) -> None:
        self.log.error("Upgrade failed: the new master exited with status %s", code)
        self._upgrade.successor = 0
        self._control.reclaim()
        if self._pidfile is not None and self.cfg.pidfile:
            self._pidfile.rename(self.cfg.pidfile)
        set_title("master", self.proc_name)

    def _check_promotion(self) -> None:
        if self._upgrade.promoted():
            self.log.info("Master promoted: the old master has exited")
            set_title("master", self.proc_name)

    # -- stopping ----------------------------------------------------------------------------------

    def _shutdown(self, sig: int) -> None:
        """Stop every worker: TERM waits graceful_timeout, INT/QUIT a short while; then KILL."""
        self._stopping = True
        sd_notify("STOPPING=1", os.environ)
        graceful = sig == signal.SIGTERM
        if graceful:
            for child in self._children.values():
                with contextlib.suppress(OSError):
                    child.heartbeat.tell_draining()
        self._signal_all(sig, Phase.RETIRING)
        # Only now that the workers are told to stop: until then they may still be accepting.
        close_listeners(self.listeners, unlink=self._may_unlink())
        self.listeners = []
        # Scrapes are refused from here, not left unanswered (and after USR2 the new master
        # takes the address a second later).
        self._metrics.close(unlink=self._may_unlink())
        self._control.close(unlink=True)  # unlinked only while the file is still ours
        limit = float(self.cfg.graceful_timeout)
        deadline = time.monotonic() + max(0.0, limit if graceful else min(FAST_STOP_WAIT, limit))
        while self._children and time.monotonic() < deadline:
            for signum in self._signals.wait(min(MAX_SLEEP, deadline - time.monotonic())):
                if graceful and signum in (signal.SIGINT, signal.SIGQUIT):
                    self.log.info("Handling signal: %s (fast shutdown)", signal_name(signum))
                    graceful = False
                    self._signal_all(signum)
                    deadline = min(deadline, time.monotonic() + FAST_STOP_WAIT)
            self._reap()
        if not self._children:
            return
        self.log.warning("Killing %d worker(s) that did not stop in time", len(self._children))
        self._signal_all(signal.SIGKILL, Phase.KILLED)
        deadline = time.monotonic() + KILL_WAIT
        while self._children and time.monotonic() < deadline:
            self._signals.wait(min(MAX_SLEEP, deadline - time.monotonic()))
            self._reap()

    def _halt(self, reason: str, code: int) -> int:
        self.log.error("Shutting down: %s", reason)
        self._shutdown(signal.SIGTERM)
        return code

    def _may_unlink(self) -> bool:
        """Unix socket files are removed on exit, but not while an upgrade shares them."""
        return not self._upgrade.in_progress

    def _cleanup(self) -> None:
        close_listeners(self.listeners, unlink=self._may_unlink())
        self._metrics.close(unlink=self._may_unlink())
        self._control.close(unlink=True)
        self.listeners = []
        if self._pidfile is not None:
            self._pidfile.unlink()
        self._hook("on_exit", self)
        self._signals.uninstall()
        self.log.info("Shutting down: Master")
        self.log.close()

    def _control_path(self) -> str | None:
        return control_path(self.cfg.control_socket_disable, self.cfg.control_socket)

    def _hook(self, name: str, *args: object, fatal: bool = False) -> None:
        """Call a server hook. An exception is logged; at startup (`fatal`) it also halts."""
        try:
            getattr(self.cfg, name)(*args)
        except Exception as exc:
            self.log.exception("Exception in %s hook", name)
            if fatal:
                raise HaltServer(f"the {name} hook failed: {exc}", 1) from None
