"""What every worker process does: signals, heartbeat, app loading, request budget, exit."""

from __future__ import annotations

import os
import random
import signal
import socket
import sys
import threading
import time
import traceback
from types import FrameType
from typing import TYPE_CHECKING, Any, ClassVar, NoReturn

from corral.errors import APP_LOAD_ERROR, WORKER_BOOT_ERROR, AppLoadError
from corral.gateway.loader import LoadedApp, load_app, resolve_interface
from corral.reloader import Reloader, Watched, broken_app, choose_engine, failing_files
from corral.scoreboard import BOARD_SIZE, REASONS, Scoreboard
from corral.tally import Tally
from corral.workers.deadline import Deadlines

if TYPE_CHECKING:
    import ssl

    from corral.arbiter.heartbeat import Heartbeat
    from corral.config import Config
    from corral.logging import Logger

_ARTICLE = {"asgi": "an", "wsgi": "a"}

# Signals the arbiter uses to talk to workers; the worker installs its own handlers for them.
_HANDLED = ("TERM", "INT", "QUIT", "ABRT", "USR1", "HUP", "TTIN", "TTOU", "USR2", "WINCH")


class Worker:
    """Base class of the worker processes; subclasses implement :meth:`serve`."""

    interface: ClassVar[str] = "wsgi"
    kind: ClassVar[str] = "base"
    # Requests served on several threads at once (the threaded worker's pool).
    concurrent_threads: ClassVar[bool] = False
    # Serves HTTP/2 when http_protocols asks (threaded, asyncio); the sync worker does not.
    serves_h2: ClassVar[bool] = False

    def __init__(
        self,
        age: int,
        ppid: int,
        listeners: list[socket.socket],
        cfg: Config,
        log: Logger,
        heartbeat: Heartbeat,
    ) -> None:
        self.age = age
        self.ppid = ppid
        self.listeners = listeners
        self.cfg = cfg
        self.log = log
        self.heartbeat = heartbeat
        self.pid = 0
        self.alive = True
        self.booted = False
        self.aborted = False
        self.nr = 0
        self.preloaded: LoadedApp | None = None
        self.server: Any = None  # the Arbiter, for hooks such as worker_exit(server, worker)
        self.max_requests = self._request_budget()
        self.deadlines: Deadlines | None = None  # request_timeout's watchdog (WSGI workers)
        self._broken_files: list[str] = []  # reload: the files an import failure points at
        # metrics_bind: this worker's request counts, published on its heartbeat's board, which
        # the arbiter gives only when it serves metrics (so a HUP changing the setting does not
        # leave the two disagreeing).
        self.tally: Tally | None = None
        if heartbeat.board is not None and len(heartbeat.board) > BOARD_SIZE:
            self.tally = Tally(threaded=self.concurrent_threads)
        # What this worker and each of its threads is doing, published with each heartbeat
        # (corral ctl, corral top, utilisation); a worker sets its capacity when it knows it.
        self.scoreboard = Scoreboard(self.kind, 1, threaded=self.concurrent_threads)
        self._publishing = threading.Lock()
        # Made here, in the arbiter before the fork, and shared by every worker of one
        # configuration: a client resumes its TLS session whichever worker it reaches.
        self.tls_context: ssl.SSLContext | None = None
        if cfg.is_ssl:
            # Imported only for TLS: without it, a sync or threaded server never loads ssl.
            # tls_socket too, here in the arbiter before the fork, for every worker to share.
            import corral.drivers.tls_socket  # noqa: F401
            from corral.drivers.tls import TLS_CONTEXTS

            self.tls_context = TLS_CONTEXTS.get(cfg, log.error, h2=self.h2_enabled())

    def h2_enabled(self) -> bool:
        """Whether this worker serves HTTP/2 under its settings."""
        return self.serves_h2 and "h2" in self.cfg.http_protocols

    def _publish(self, board: Any) -> None:
        """At each heartbeat: the scoreboard, then the request counts (metrics_bind). Under a
        lock: the sync worker's refresher thread publishes too."""
        with self._publishing:
            self.scoreboard.encode_into(board, self.pid)
            if self.tally is not None:
                data = self.tally.encode()
                board[BOARD_SIZE : BOARD_SIZE + len(data)] = data

    def _refresh_scoreboard(self) -> None:
        """The sync worker's thread that publishes its scoreboard while a request runs (its
        main thread beats only between requests, so that a stuck request still times out)."""

        def run() -> None:
            while self.alive:
                time.sleep(self.heartbeat_interval())
                self.heartbeat.refresh()

        threading.Thread(target=run, name="corral-scoreboard", daemon=True).start()

    def exiting_for(self, reason: str) -> None:
        """Say on the scoreboard why this worker is about to exit (the arbiter counts it)."""
        self.scoreboard.reason = REASONS.index(reason)

    def _request_budget(self) -> int:
        """max_requests plus jitter, so that workers do not all restart at once; 0 = no limit."""
        limit: int = self.cfg.max_requests
        if limit <= 0:
            return 0
        jitter: int = self.cfg.max_requests_jitter
        return limit + (random.randint(0, jitter) if jitter > 0 else 0)

    def __str__(self) -> str:
        return f"<Worker {self.pid}>"

    # -- life cycle ------------------------------------------------------------------------------

    def run(self) -> NoReturn:
        """Boot and serve in the forked child; never returns (the process exits)."""
        code = 0
        try:
            self.pid = os.getpid()
            self.heartbeat.publisher = self._publish
            if self.cfg.capture_output:
                self.log.redirect_stdio()
            self._install_signals()
            loading_since = time.time()
            app = self._load()
            self.booted = True
            self.heartbeat.notify()
            self.cfg.post_worker_init(self)
            self._watch_requests()
            if self.cfg.reload:
                self._start_reloader(loading_since)
            self.serve(app)
        except AppLoadError as exc:
            self.log.error("%s", exc)
            code = APP_LOAD_ERROR
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 0
        except BaseException:
            self.log.exception("Exception in worker process")
            code = WORKER_BOOT_ERROR if not self.booted else 1
        finally:
            try:
                self.log.info("Worker exiting (pid: %s)", self.pid)
                self.cfg.worker_exit(self.server, self)
            except Exception:
                self.log.exception("Exception in the worker_exit hook")
            finally:
                self._publish_last()
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)

    def _publish_last(self) -> None:
        """metrics_bind: the final counts, for the arbiter to keep once this worker is gone."""
        if self.booted:
            self.heartbeat.publish()

    def _load(self) -> LoadedApp:
        try:
            loaded = self.preloaded or load_app(self._app_uri())
        except AppLoadError as exc:
            # Under reload, an error raised by the app's own code (a syntax error while it is
            # being edited) keeps the worker up, as in gunicorn: it serves 500 and the next
            # save reloads. A wrong APP (no such module or attribute) still stops the server.
            if not self.cfg.reload or exc.__cause__ is None:
                raise
            self.log.error("%s\nServing 500 until a watched file changes (reload)", exc)
            self._broken_files = failing_files(exc.__cause__)
            return broken_app(self.interface)
        interface = resolve_interface(loaded.app, self.cfg.interface)
        if interface != self.interface:
            raise AppLoadError(
                f"{self.cfg.app_uri} is {_ARTICLE[interface]} {interface.upper()} application, "
                f"but the worker class "
                f"{self.cfg.worker_class!r} serves {self.interface.upper()}; "
                + ("use -k asyncio" if interface == "asgi" else "use -k sync or -k threaded")
            )
        return loaded

    def _app_uri(self) -> str:
        uri = self.cfg.app_uri
        if not uri:
            raise AppLoadError("no application given: pass APP as module:callable")
        return str(uri)

    def _start_reloader(self, loading_since: float) -> None:
        """``reload``: watch the app's files (and the ones that failed to import) from a thread."""
        engine, why_not = choose_engine(self.cfg.reload_engine)
        if why_not:
            self.log.warning("%s: polling instead", why_not)
        cfg = self.cfg
        watched = Watched(
            os.getcwd(), cfg.reload_extra_files, cfg.reload_include, cfg.reload_exclude
        )
        watched.added.update(self._broken_files)
        reloader = Reloader(
            watched,
            self._code_changed,
            engine=engine,
            since=loading_since,
            warn=self.log.warning,
        )
        self.log.debug("Reloader on (%s): watching the app's files", engine)
        reloader.start()

    def _code_changed(self, path: str) -> None:
        """``reload``: a watched file changed; finish what is in flight, exit, get replaced."""
        if self.alive:
            self.log.info("Worker reloading: %s modified", path)
            self.exiting_for("reload")
            self.alive = False
            self.wake()

    def _watch_requests(self) -> None:
        """``request_timeout`` on a WSGI worker: start the watchdog that stops late requests.

        The asyncio worker times its requests on its own loop (drivers/aio.py).
        """
        limit: float = self.cfg.request_timeout
        if limit > 0 and self.interface == "wsgi":
            self.deadlines = Deadlines(limit, self.log, self._request_stuck)
            self.deadlines.start()

    def _request_stuck(self) -> None:
        """A request would not stop after its request_timeout: have the arbiter replace us.

        The arbiter boots a replacement first, then stops this worker gracefully (TERM), as
        for max_worker_memory, so the number of serving workers does not dip meanwhile.
        """
        self.heartbeat.ask_replacement()

    def heartbeat_interval(self) -> float:
        """How often an idle worker wakes to notify the arbiter: well within ``timeout``."""
        timeout: int = self.cfg.timeout
        return 1.0 if timeout <= 0 else max(0.05, min(1.0, timeout / 2))

    def serve(self, app: LoadedApp) -> None:
        """Serve requests until told to stop."""
        raise NotImplementedError

    def request_done(self) -> None:
        """Count a served request; start a graceful exit once the max_requests budget is spent."""
        self.nr += 1
        if self.max_requests and self.nr >= self.max_requests and self.alive:
            self.log.info("Autorestarting worker after current request.")
            self.exiting_for("max_requests")
            self.alive = False
            self.wake()

    def last_request(self) -> bool:
        """Whether the request about to be served spends the max_requests budget."""
        return bool(self.max_requests) and self.nr + 1 >= self.max_requests

    def draining(self) -> bool:
        """Whether the whole server is shutting down (its master got TERM), so that this
        worker serves its listeners' backlog before it exits; False when only it retires."""
        try:
            return self.heartbeat.draining()
        except OSError:
            return False  # the heartbeat is closed: the worker is on its way out anyway

    def stopping(self) -> bool:
        """A graceful stop begins: log it, and say whether the server drains (see draining)."""
        draining = self.draining()
        self.log.debug(
            "Worker stopping gracefully (pid: %s): %s",
            self.pid,
            "the server drains" if draining else "this worker retires",
        )
        return draining

    def parent_alive(self) -> bool:
        """False once the arbiter has gone (we were re-parented): then the worker stops."""
        if os.getppid() != self.ppid:
            self.log.info("Parent changed, shutting down: %s", self)
            self.alive = False
            return False
        return True

    # -- signals ---------------------------------------------------------------------------------

    def _install_signals(self) -> None:
        for name in _HANDLED:
            signal.signal(getattr(signal, "SIG" + name), signal.SIG_DFL)
        signal.signal(signal.SIGTERM, self._on_term)
        signal.signal(signal.SIGINT, self._on_quit)
        signal.signal(signal.SIGQUIT, self._on_quit)
        signal.signal(signal.SIGABRT, self._on_abort)
        signal.signal(signal.SIGUSR1, self._on_usr1)
        # gunicorn's workers ignore WINCH; corral's arbiter sends it to ask for a dump (corral
        # ctl dump), and a terminal's resize, which reaches a foreground group, finds none asked.
        signal.signal(signal.SIGWINCH, self._on_winch)
        # The arbiter forks with these blocked; a signal sent while we booted is delivered now,
        # to the handlers above.
        signal.pthread_sigmask(
            signal.SIG_UNBLOCK, {getattr(signal, "SIG" + name) for name in (*_HANDLED, "CHLD")}
        )

    def _on_term(self, signum: int, frame: FrameType | None) -> None:
        self.alive = False
        self.wake()

    def _on_quit(self, signum: int, frame: FrameType | None) -> None:
        self.alive = False
        self.cfg.worker_int(self)
        sys.exit(0)

    def _on_usr1(self, signum: int, frame: FrameType | None) -> None:
        self.log.reopen_files()

    def _on_winch(self, signum: int, frame: FrameType | None) -> None:
        """The arbiter asks for the stacks of the requests running now (corral ctl dump)."""
        board = self.heartbeat.board
        if board is None:
            return
        seq = self.scoreboard.dump_asked(board)
        if seq:
            self.scoreboard.write_dump(board, seq, self.dump_requests(frame))

    def dump_requests(self, current: FrameType | None) -> str:
        """Each running request with its age and where its thread is now, as text."""
        frames: dict[int, Any] = dict(sys._current_frames())
        main = threading.main_thread().ident
        if current is not None and main is not None:
            frames[main] = current
        now = time.monotonic()
        blocks = []
        for act in self.scoreboard.activities():
            req, t0 = act.req, act.t0
            if req is None:
                continue
            frame = frames.get(act.ident)
            stack = "".join(traceback.format_stack(frame)) if frame is not None else ""
            blocks.append(f"{req.method} {req.path} running {now - t0:.3f}s:\n{stack}")
        return "\n".join(blocks) or "no request running"

    def _on_abort(self, signum: int, frame: FrameType | None) -> None:
        """The arbiter found us hung: log where every thread is stuck, then exit."""
        self.aborted = True
        self.log.critical("WORKER TIMEOUT (pid:%s): stack of every thread follows", self.pid)
        self.log.critical("%s", format_all_stacks(frame))
        try:
            self.cfg.worker_abort(self)
        finally:
            sys.stdout.flush()
            sys.stderr.flush()
            os._exit(1)

    def wake(self) -> None:
        """Interrupt a blocking wait after a signal; workers with a wakeup fd override this."""

    def signal_pipe(self) -> int:
        """A non-blocking pipe that signals write to (signal.set_wakeup_fd); its read end.

        A loop that selects on it wakes at once when a signal arrives, instead of at its next
        timeout. Drain it with :func:`drain_pipe`.
        """
        wake_r, wake_w = os.pipe()
        os.set_blocking(wake_r, False)
        os.set_blocking(wake_w, False)
        signal.set_wakeup_fd(wake_w)
        return wake_r


def format_all_stacks(current: FrameType | None) -> str:
    """The stack of every thread in this process, most recent call last, as one block of text."""
    names = {t.ident: t.name for t in threading.enumerate()}
    blocks = []
    frames: dict[int, Any] = dict(sys._current_frames())
    main_ident = threading.main_thread().ident
    if current is not None and main_ident is not None:
        frames[main_ident] = current
    for ident, frame in frames.items():
        stack = "".join(traceback.format_stack(frame))
        blocks.append(f"Thread {names.get(ident, ident)} (id {ident}):\n{stack}")
    return "\n".join(blocks)


def drain_pipe(fd: int) -> None:
    """Read everything a non-blocking pipe holds (the signal wakeup bytes)."""
    try:
        while os.read(fd, 4096):
            pass
    except BlockingIOError:
        pass
