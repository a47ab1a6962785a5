"""Settings table, part 3: logging, metrics, process naming, WebSocket and TLS."""

# ruff: noqa: RUF009  (setting() returns a dataclasses.Field, the documented way to attach
# metadata; it is not a default computed once and shared.)

from __future__ import annotations

import inspect
import sys
from dataclasses import dataclass
from logging.handlers import SysLogHandler

from corral.config import parsers as p
from corral.config.spec import setting

# The local syslog endpoint differs by platform (a constant of the interpreter, not the
# environment).
if sys.platform == "darwin":
    SYSLOG_DEFAULT = "unix:///var/run/syslog"
elif sys.platform.startswith(("freebsd", "dragonfly")):
    SYSLOG_DEFAULT = "unix:///var/run/log"
elif sys.platform.startswith("openbsd"):
    SYSLOG_DEFAULT = "unix:///dev/log"
else:
    SYSLOG_DEFAULT = "udp://localhost:514"

SYSLOG_FACILITIES = tuple(sorted(SysLogHandler.facility_names))

DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'


DEFAULT_LOGGER_CLASS = "corral.logging.Logger"
# gunicorn's default logger, by its names, and corral's own path: all mean corral's logger.
_DEFAULT_LOGGERS = {"simple", "gunicorn.glogging.logger", "corral.logs.logger.logger"}
_LOGGER_CLASS_REFUSED = (
    "corral does not load logger classes, gunicorn.glogging.Logger subclasses included: "
    "configure handlers, formatters and filters with logconfig_dict (its 'gunicorn.error' "
    "and 'gunicorn.access' loggers are corral's), use access_log_format = 'json' for JSON "
    "access lines and health_check_path to keep probes out of the access log "
    "(docs/migrating.md, section logger_class)"
)


def _logger_class(value: object) -> str:
    if inspect.isclass(value):
        # gunicorn also takes the class itself.
        value = f"{value.__module__}.{value.__qualname__}"
    if isinstance(value, str) and value.strip().lower() in _DEFAULT_LOGGERS:
        return DEFAULT_LOGGER_CLASS
    return p.DOTTED_PATH(value)


LOGGER_CLASS = p.Parser("dotted path", _logger_class)


@dataclass
class LoggingTable:
    """Logging, Process Naming, WebSocket and SSL settings."""

    # --- Logging -----------------------------------------------------------------------------
    accesslog: str | None = setting(
        None,
        section="Logging",
        parse=p.OPTIONAL_STRING,
        cli=("--access-logfile",),
        metavar="FILE",
        help="""
        File to write the access log to; `-` means stdout. No access log when unset.
        """,
    )
    disable_redirect_access_to_syslog: bool = setting(
        False,
        section="Logging",
        parse=p.BOOL,
        cli=("--disable-redirect-access-to-syslog",),
        mode="true",
        help="""
        With `syslog`, keep the access log out of syslog.
        """,
    )
    access_log_format: str = setting(
        DEFAULT_ACCESS_LOG_FORMAT,
        section="Logging",
        parse=p.STRING,
        cli=("--access-logformat", "--access-log-format"),
        metavar="STRING",
        help="""
        Format of access log lines, with gunicorn's `%(x)s` atoms; `json` for JSON lines.

        Atoms: `h` remote address, `l` `-`, `u` user name, `t` time, `r` request line,
        `m` method, `U` path, `q` query, `H` protocol, `s` status, `B` response length,
        `b` response length or `-`, `f` referer, `a` user agent, `T` seconds, `M`
        milliseconds, `D` microseconds, `L` decimal seconds, `p` pid, `{name}i` request
        header, `{name}o` response header, `{name}e` environment variable.
        """,
    )
    errorlog: str = setting(
        "-",
        section="Logging",
        parse=p.STRING,
        cli=("--error-logfile", "--log-file"),
        metavar="FILE",
        help="""
        File to write the error log to; `-` means stderr.
        """,
    )
    loglevel: str = setting(
        "info",
        section="Logging",
        parse=p.choice(
            ("debug", "info", "warning", "error", "critical"),
            {"warn": "warning", "fatal": "critical", "trace": "debug"},
        ),
        cli=("--log-level",),
        metavar="LEVEL",
        help="""
        Least severe level written to the error log: debug, info, warning, error, critical.

        uvicorn's `trace` means `debug`.
        """,
    )
    capture_output: bool = setting(
        False,
        section="Logging",
        parse=p.BOOL,
        cli=("--capture-output",),
        mode="true",
        help="""
        Send the workers' stdout and stderr to the error log file.
        """,
    )
    logger_class: str = setting(
        DEFAULT_LOGGER_CLASS,
        section="Logging",
        parse=LOGGER_CLASS,
        cli=("--logger-class",),
        metavar="STRING",
        gunicorn_default="gunicorn.glogging.Logger",
        differs_because="corral has its own logger.",
        unsupported=_LOGGER_CLASS_REFUSED,
        help="""
        Dotted path of the logger class: only the default is accepted, spelt as corral's
        (`corral.logging.Logger`) or gunicorn's (`gunicorn.glogging.Logger`, `simple`).

        A custom logger class (a subclass of gunicorn's `Logger`, which gunicorn configs often
        name) is refused at start with what to use instead: `logconfig_dict` for handlers,
        formatters and filters (the `gunicorn.error` and `gunicorn.access` loggers named there
        are corral's), `access_log_format = 'json'` for JSON access lines, and
        `health_check_path` to keep health probes out of the access log.
        """,
    )
    logconfig: str | None = setting(
        None,
        section="Logging",
        parse=p.OPTIONAL_STRING,
        cli=("--log-config",),
        metavar="FILE",
        help="""
        A `logging.config.fileConfig` file to configure logging with.
        """,
    )
    logconfig_dict: dict[str, object] = setting(
        {},
        section="Logging",
        parse=p.MAPPING,
        help="""
        A `logging.config.dictConfig` dictionary; it takes precedence over `logconfig` and
        `logconfig_json`. From the environment, give a JSON object.
        """,
    )
    logconfig_json: str | None = setting(
        None,
        section="Logging",
        parse=p.OPTIONAL_STRING,
        cli=("--log-config-json",),
        metavar="FILE",
        help="""
        A JSON file holding a `logging.config.dictConfig` dictionary.
        """,
    )
    syslog_addr: str = setting(
        SYSLOG_DEFAULT,
        section="Logging",
        parse=p.STRING,
        cli=("--log-syslog-to",),
        metavar="SYSLOG_ADDR",
        doc_default=(
            "udp://localhost:514 (unix:///var/run/syslog on macOS, unix:///var/run/log on "
            "FreeBSD, unix:///dev/log on OpenBSD)"
        ),
        help="""
        Where syslog messages go: `unix://PATH#TYPE` (`stream` or `dgram`),
        `udp://HOST:PORT` or `tcp://HOST:PORT`.
        """,
    )
    syslog: bool = setting(
        False,
        section="Logging",
        parse=p.BOOL,
        cli=("--log-syslog",),
        mode="true",
        help="""
        Send the logs to syslog too.
        """,
    )
    syslog_prefix: str | None = setting(
        None,
        section="Logging",
        parse=p.OPTIONAL_STRING,
        cli=("--log-syslog-prefix",),
        metavar="SYSLOG_PREFIX",
        help="""
        Program name in syslog entries (`corral.<prefix>`); the process name if unset.
        """,
    )
    syslog_facility: str = setting(
        "user",
        section="Logging",
        parse=p.choice(SYSLOG_FACILITIES),
        cli=("--log-syslog-facility",),
        metavar="SYSLOG_FACILITY",
        help="""
        Syslog facility name.
        """,
    )
    enable_stdio_inheritance: bool = setting(
        False,
        section="Logging",
        parse=p.BOOL,
        cli=("-R", "--enable-stdio-inheritance"),
        mode="true",
        help="""
        With `daemon`, keep stdin, stdout and stderr instead of pointing them at /dev/null.
        """,
    )
    statsd_host: str | None = setting(
        None,
        section="Logging",
        parse=p.STATSD_ADDRESS,
        cli=("--statsd-host",),
        metavar="STATSD_ADDR",
        help="""
        StatsD server to send metrics to: `HOST`, `HOST:PORT` (port 8125 if omitted) or
        `unix:PATH`. No metrics when unset.
        """,
    )
    dogstatsd_tags: str = setting(
        "",
        section="Logging",
        parse=p.STRING,
        cli=("--dogstatsd-tags",),
        metavar="DOGSTATSD_TAGS",
        help="""
        Comma-separated DogStatsD tags added to every metric (`tag1:value1,tag2:value2`).
        """,
    )
    statsd_prefix: str = setting(
        "",
        section="Logging",
        parse=p.STRING,
        cli=("--statsd-prefix",),
        metavar="STATSD_PREFIX",
        help="""
        Prefix of every metric name (a `.` is added when missing).
        """,
    )
    statsd_names: str = setting(
        "gunicorn",
        section="Logging",
        parse=p.choice(("gunicorn", "corral")),
        cli=("--statsd-names",),
        metavar="gunicorn|corral",
        corral_only=True,
        help="""
        The names statsd metrics are sent under: `gunicorn` (the default) sends gunicorn's
        (`gunicorn.requests`, `gunicorn.request.duration`, `gunicorn.workers`,
        `gunicorn.request.status.<code>`, `gunicorn.log.<level>`), so existing dashboards keep
        working; `corral` sends the same series under `corral.`.
        """,
    )
    metrics_bind: str | None = setting(
        None,
        section="Logging",
        parse=p.OPTIONAL_BIND,
        cli=("--metrics-bind",),
        metavar="ADDRESS",
        corral_only=True,
        help="""
        Serve Prometheus metrics at `http://ADDRESS/metrics` (`HOST:PORT`, `[IPv6]:PORT` or
        `unix:PATH`); none when unset. Bind it to loopback or a private network: the endpoint
        has no authentication.

        The arbiter serves it from its own loop, so a scrape works while workers restart, and
        the counters include the workers that have exited: `corral_requests_total` by status
        class, the `corral_request_duration_seconds` histogram, `corral_workers`,
        `corral_workers_target`, `corral_workers_resident_bytes`, `corral_worker_exits_total`
        and `corral_master_start_time_seconds`. Workers publish their counts with their
        heartbeat, so a scrape lags by a second at most; a worker killed by a signal loses what
        it counted since its last heartbeat. Works with `statsd_host` at the same time. A
        change takes effect on restart, not on HUP.
        """,
    )

    enable_backlog_metric: bool = setting(
        False,
        section="Logging",
        parse=p.BOOL,
        cli=("--enable-backlog-metric",),
        mode="true",
        help="""
        Send the listen queue length to statsd as gunicorn does: `gunicorn.backlog`, a
        histogram, each second (Linux only; TCP listeners).

        The Prometheus endpoint always has it (`corral_listen_backlog`), and statsd always
        gets the `listen.backlog` gauge with corral's other activity gauges; this adds
        gunicorn's own series, for dashboards built on it.
        """,
    )

    # --- Process Naming ----------------------------------------------------------------------
    proc_name: str | None = setting(
        None,
        section="Process Naming",
        parse=p.OPTIONAL_STRING,
        cli=("-n", "--name"),
        metavar="STRING",
        help="""
        Base of the process titles shown by `ps` and `top` (needs setproctitle).

        When unset, `default_proc_name` is used.
        """,
    )
    default_proc_name: str = setting(
        "corral",
        section="Process Naming",
        parse=p.STRING,
        doc_default="corral, or the APP when one is given",
        gunicorn_default="gunicorn",
        differs_because="it is the program's name.",
        help="""
        Process title base when `proc_name` is unset; the APP sets it, as in gunicorn.
        """,
    )

    # --- WebSocket ---------------------------------------------------------------------------
    websocket_max_message_size: int = setting(
        16 * 1024 * 1024,
        section="WebSocket",
        parse=p.POSITIVE_INT,
        cli=("--websocket-max-message-size",),
        metavar="INT",
        help="""
        Largest WebSocket message in bytes, after reassembly; larger closes with 1009.
        """,
    )
    websocket_ping_interval: float = setting(
        20.0,
        section="WebSocket",
        parse=p.seconds(allow_zero=True),
        cli=("--websocket-ping-interval",),
        metavar="SECONDS",
        corral_only=True,
        help="""
        Send a ping on a WebSocket connection idle this long; 0 sends none.
        """,
    )
    websocket_ping_timeout: float = setting(
        20.0,
        section="WebSocket",
        parse=p.seconds(allow_zero=True),
        cli=("--websocket-ping-timeout",),
        metavar="SECONDS",
        corral_only=True,
        help="""
        Close a WebSocket connection whose pong has not come this long after a ping; 0
        waits forever.
        """,
    )
    websocket_per_message_deflate: bool = setting(
        True,
        section="WebSocket",
        parse=p.BOOL,
        cli=("--websocket-per-message-deflate",),
        mode="toggle",
        corral_only=True,
        help="""
        Agree to permessage-deflate compression (RFC 7692) when a WebSocket client offers it.

        As uvicorn's `--ws-per-message-deflate` (on by default there too). Each compressing
        connection keeps a 4 KiB window each way (`server_max_window_bits=12`, and
        `client_max_window_bits=12` when the client allows it) and about 40 KiB of zlib
        state; a compressed message is inflated only up to `websocket_max_message_size`,
        past which the connection closes with 1009. `--no-websocket-per-message-deflate`
        turns it off, as `--ws-per-message-deflate false` does in uvicorn.
        """,
    )
