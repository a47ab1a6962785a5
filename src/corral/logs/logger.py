"""Logger: the error log, the access log, syslog, stdio capture and log reopening."""

from __future__ import annotations

import io
import logging
import os
import sys
import threading
from typing import Any, TextIO

from corral.logs.access import make_renderer
from corral.logs.logconfig import ACCESS_LOGGER, ERROR_LOGGER, GUNICORN_ALIASES, apply_logconfig
from corral.logs.record import AccessRecord
from corral.logs.settings import LogSettings
from corral.logs.syslog import make_syslog_handler
from corral.metrics import Metrics, StatsdMetrics, make_metrics

ERROR_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"

LEVELS = {
    "critical": logging.CRITICAL,
    "error": logging.ERROR,
    "warning": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
}

# Handlers we attach carry this name prefix, so a later Logger in the same process (a config
# reload) can find and replace them without touching handlers the user configured.
_OWNED = "corral-owned:"


def parse_loglevel(name: str) -> int:
    """A `loglevel` setting to a logging level; ValueError for an unknown name."""
    level = LEVELS.get(name.lower())
    if level is None:
        raise ValueError(f"loglevel {name!r}: expected one of {', '.join(LEVELS)}")
    return level


def _output_handler(target: str, stdio: TextIO) -> logging.StreamHandler[Any]:
    """`-` means the given standard stream; anything else is a file opened for append."""
    if target == "-":
        return logging.StreamHandler(stdio)
    try:
        return logging.FileHandler(target, encoding="utf-8", errors="backslashreplace")
    except OSError as exc:
        raise ValueError(f"cannot open log file {target!r}: {exc}") from exc


def _all_loggers() -> list[logging.Logger]:
    registered = list(logging.Logger.manager.loggerDict.values())
    return [logging.getLogger(), *(lg for lg in registered if isinstance(lg, logging.Logger))]


class Logger:
    """The server's logs. Hooks call `server.log.info(...)`; the lifecycle calls `access(rec)`.

    Raises ValueError on a bad setting (log level, file, syslog address, logging config).
    `metrics` receives a count of every critical/error/warning/exception call; when None,
    one is made from the settings (`make_metrics(cfg)`) and closed with the logger.
    """

    def __init__(self, cfg: LogSettings, metrics: Metrics | None = None) -> None:
        self.cfg = cfg
        self._owns_metrics = metrics is None
        self.metrics: Metrics = make_metrics(cfg) if metrics is None else metrics
        self.error_log = logging.getLogger(ERROR_LOGGER)
        self.access_log = logging.getLogger(ACCESS_LOGGER)
        self._render = make_renderer(cfg.access_log_format)
        self._owned: list[tuple[logging.Logger, logging.Handler]] = []
        self._access_handler: logging.StreamHandler[Any] | None = None
        self._stdio_redirected = False
        self._stdio_lock = threading.Lock()
        # As in gunicorn: a logging config or syslog may route access lines somewhere.
        self.access_enabled = bool(
            cfg.accesslog is not None
            or cfg.logconfig
            or cfg.logconfig_dict
            or cfg.logconfig_json
            or (cfg.syslog and not cfg.disable_redirect_access_to_syslog)
        )
        try:
            self._setup(cfg)
        except BaseException:
            self.close()  # detach what was attached before the bad setting
            raise
        if isinstance(self.metrics, StatsdMetrics) and self.metrics.error is not None:
            self.warning(
                "statsd_host %r unusable, metrics off: %s", cfg.statsd_host, self.metrics.error
            )

    def _setup(self, cfg: LogSettings) -> None:
        level = parse_loglevel(cfg.loglevel)
        for log in (self.error_log, self.access_log):
            for handler in list(log.handlers):
                if (handler.get_name() or "").startswith(_OWNED):
                    log.removeHandler(handler)
                    handler.close()
            log.propagate = False
        self.error_log.setLevel(level)
        self.access_log.setLevel(logging.INFO)
        error_handler = _output_handler(cfg.errorlog, sys.stderr)
        error_handler.setFormatter(logging.Formatter(ERROR_FORMAT, DATE_FORMAT))
        self._attach(self.error_log, error_handler, "error")
        if cfg.accesslog is not None:
            handler = _output_handler(cfg.accesslog, sys.stdout)
            handler.setFormatter(logging.Formatter("%(message)s"))
            self._attach(self.access_log, handler, "access")
            self._access_handler = handler
        if cfg.syslog:
            self._attach(self.error_log, make_syslog_handler(cfg, "error"), "syslog-error")
            if not cfg.disable_redirect_access_to_syslog:
                self._attach(self.access_log, make_syslog_handler(cfg, "access"), "syslog-access")
        apply_logconfig(cfg)
        # Apps find gunicorn's loggers by name (Flask's recipe copies
        # logging.getLogger("gunicorn.error").handlers): make them ours, sharing our handler
        # lists, so what is set up above (and by a logging config) serves them too.
        for alias, name in GUNICORN_ALIASES.items():
            ours, theirs = logging.getLogger(name), logging.getLogger(alias)
            theirs.handlers = ours.handlers
            theirs.setLevel(ours.level)
            theirs.propagate = False

    def _attach(self, log: logging.Logger, handler: logging.Handler, role: str) -> None:
        handler.set_name(f"{_OWNED}{role}")
        log.addHandler(handler)
        self._owned.append((log, handler))

    # The error log, with logging.Logger's signatures; stacklevel points records at our caller.

    def debug(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        self.error_log.debug(msg, *args, **kwargs)

    def info(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        self.error_log.info(msg, *args, **kwargs)

    def warning(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        self.error_log.warning(msg, *args, **kwargs)
        self.metrics.incr("corral.log.warning")

    def error(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        self.error_log.error(msg, *args, **kwargs)
        self.metrics.incr("corral.log.error")

    def exception(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        self.error_log.exception(msg, *args, **kwargs)
        self.metrics.incr("corral.log.exception")

    def critical(self, msg: object, *args: object, **kwargs: Any) -> None:
        kwargs.setdefault("stacklevel", 2)
        self.error_log.critical(msg, *args, **kwargs)
        self.metrics.incr("corral.log.critical")

    def log(self, level: int | str, msg: object, *args: object, **kwargs: Any) -> None:
        """gunicorn's `log.log(level, ...)`; a level name is accepted too."""
        if isinstance(level, str):
            level = parse_loglevel(level)
        kwargs.setdefault("stacklevel", 2)
        self.error_log.log(level, msg, *args, **kwargs)

    def access(self, rec: AccessRecord) -> None:
        """Write one access-log line; a failure is reported to the error log, never raised."""
        if not self.access_enabled:
            return
        try:
            line = self._render(rec)
            if not self._write_direct(line):
                self.access_log.info(line)
        except Exception:
            self.exception("access log failed for %s %s", rec.method, rec.path)

    def _write_direct(self, line: str) -> bool:
        """Write straight to our own access handler when nothing else could see the record.

        This skips building a LogRecord (caller lookup, thread and process names), the
        bulk of logging's cost per line. Any other handler, filter or level change made
        through logging (a hook, a logging config) sends lines the ordinary way.
        """
        handler = self._access_handler
        log = self.access_log
        handlers = log.handlers
        if (
            handler is None
            or len(handlers) != 1
            or handlers[0] is not handler
            or log.filters
            or handler.filters
            or log.disabled
            or not log.isEnabledFor(logging.INFO)
        ):
            return False
        handler.acquire()
        try:
            stream = handler.stream
            if stream is None:
                return False
            stream.write(line + "\n")
            stream.flush()
        finally:
            handler.release()
        return True

    def redirect_stdio(self) -> None:
        """With capture_output and a file errorlog, point fds 1 and 2 at the error log file.

        The worker calls this after fork, so print() and writes by C extensions land in the
        error log.
        """
        if not self.cfg.capture_output or self.cfg.errorlog == "-":
            return
        with self._stdio_lock:
            self._dup_error_log_onto_stdio()
            self._stdio_redirected = True
        # Line buffering keeps print() output in order with the log lines around it.
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(line_buffering=True)

    def _dup_error_log_onto_stdio(self) -> None:
        for stream in (sys.stdout, sys.stderr):
            if stream is not None:
                stream.flush()
        fd = os.open(self.cfg.errorlog, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.dup2(fd, 1)
            os.dup2(fd, 2)
        finally:
            os.close(fd)

    def reopen_files(self) -> None:
        """Reopen every file handler of every logger, and the captured stdio (USR1, logrotate).

        A file that cannot be reopened is reported and keeps its old stream.
        """
        with self._stdio_lock:
            if self._stdio_redirected:
                try:
                    self._dup_error_log_onto_stdio()
                except OSError as exc:
                    self.error("cannot reopen %r for stdout/stderr: %s", self.cfg.errorlog, exc)
        seen: set[int] = set()
        for log in _all_loggers():
            for handler in list(log.handlers):
                if isinstance(handler, logging.FileHandler) and id(handler) not in seen:
                    seen.add(id(handler))
                    self._reopen_handler(handler)

    def _reopen_handler(self, handler: logging.FileHandler) -> None:
        if handler.stream is None:
            return  # delayed or closed: it opens the current path itself when next used
        try:
            # Always append: a reopen must not truncate lines written since the rotation.
            stream = open(  # noqa: SIM115 (the handler owns it from here on)
                handler.baseFilename, "a", encoding=handler.encoding, errors=handler.errors
            )
        except OSError as exc:
            self.error("cannot reopen log file %r: %s", handler.baseFilename, exc)
            return
        old = handler.setStream(stream)
        if old is not None:
            old.close()

    def close(self) -> None:
        """Detach and close our handlers (and our metrics); later access() calls do nothing."""
        self.access_enabled = False
        self._access_handler = None
        for log, handler in self._owned:
            log.removeHandler(handler)
            handler.close()
        self._owned.clear()
        if self._owns_metrics:
            self.metrics.close()
