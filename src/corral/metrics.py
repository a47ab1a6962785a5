"""Metrics back ends: a Metrics protocol, a no-op one and a statsd/dogstatsd UDP client."""

from __future__ import annotations

import contextlib
import re
import socket
from typing import Protocol

from corral.hostport import port_number, split_host_port

# The names the Metrics protocol speaks in. statsd sends them as they are with
# `statsd_names = "corral"`, or under gunicorn's `gunicorn.` (the default), which is where
# dashboards built for gunicorn look: gunicorn.requests, gunicorn.request.duration,
# gunicorn.request.status.<code>, gunicorn.workers and gunicorn.log.<level>.
NAMESPACE = "corral."
REQUESTS = "corral.requests"
REQUEST_DURATION = "corral.request.duration"
REQUEST_STATUS = "corral.request.status."
QUEUE_TIME = "corral.request.queue_time"
IN_FLIGHT = "corral.requests.in_flight"
THREADS_BUSY = "corral.threads.busy"
THREADS_IDLE = "corral.threads.idle"
UTILISATION = "corral.utilisation."  # + the window, e.g. corral.utilisation.10s
BACKLOG = "corral.listen.backlog"
RESTARTS = "corral.worker.restarts."  # + the reason
GUNICORN_BACKLOG = "corral.backlog"  # gunicorn's enable_backlog_metric series (a histogram)
WORKERS = "corral.workers"
STATSD_NAMES = ("gunicorn", "corral")
DEFAULT_STATSD_NAMES = "gunicorn"
DEFAULT_STATSD_PORT = 8125


class Metrics(Protocol):
    """What the lifecycle, the arbiter and the logger report to."""

    def request(self, duration_s: float, status: int) -> None:
        """One finished request: its duration in seconds and its status."""

    def queued(self, seconds: float) -> None:
        """How long a request waited before the app ran (its queue time)."""

    def gauge(self, name: str, value: float) -> None:
        """Set a gauge, e.g. `gauge("corral.workers", 4)`."""

    def incr(self, name: str, value: int = 1) -> None:
        """Add to a counter, e.g. `incr("corral.log.error")`."""

    def histogram(self, name: str, value: float) -> None:
        """One observation of a distribution (statsd's `|h`), e.g. the listen backlog."""

    def close(self) -> None:
        """Release the back end's resources."""


class MetricsSettings(Protocol):
    """The settings `make_metrics` reads (gunicorn's names)."""

    @property
    def statsd_host(self) -> str | None: ...
    @property
    def statsd_prefix(self) -> str: ...
    @property
    def dogstatsd_tags(self) -> str: ...
    @property
    def statsd_names(self) -> str: ...


class NullMetrics:
    """Metrics switched off: every call does nothing."""

    def request(self, duration_s: float, status: int) -> None:
        pass

    def queued(self, seconds: float) -> None:
        pass

    def gauge(self, name: str, value: float) -> None:
        pass

    def incr(self, name: str, value: int = 1) -> None:
        pass

    def histogram(self, name: str, value: float) -> None:
        pass

    def close(self) -> None:
        pass


StatsdAddress = tuple[str, int] | str


def parse_statsd_host(host: str) -> tuple[socket.AddressFamily, StatsdAddress]:
    """`host:port`, `[v6]:port`, `host` (port 8125), or `unix://PATH` / `unix:PATH`.

    `unix:8125` means the host "unix", as gunicorn keeps it for backward compatibility.
    """
    if re.fullmatch(r"unix:\d+", host) is None and host.startswith("unix:"):
        path = host.removeprefix("unix://") if host.startswith("unix://") else host[5:]
        if not path:
            raise ValueError(f"statsd_host {host!r}: empty unix socket path")
        return socket.AF_UNIX, path
    try:
        name, port_text, _ = split_host_port(host)
    except ValueError as exc:
        raise ValueError(f"statsd_host {host!r}: {exc}") from None
    port = port_number(port_text) if port_text else DEFAULT_STATSD_PORT
    if not name or port is None:
        raise ValueError(f"statsd_host {host!r}: expected host:port or unix://PATH")
    if not 0 < port < 65536:
        raise ValueError(f"statsd_host {host!r}: port out of range")
    return socket.AF_INET, (name, port)


def normalize_prefix(prefix: str) -> str:
    """A non-empty prefix ends with exactly one dot, as gunicorn's statsd_prefix does."""
    stripped = prefix.rstrip(".")
    return f"{stripped}." if stripped else ""


def statsd_namespace(names: str) -> str:
    """What replaces `corral.` in metric names: `gunicorn.` or `corral.` (the `statsd_names`)."""
    if names not in STATSD_NAMES:
        raise ValueError(f"statsd_names {names!r}: expected one of {', '.join(STATSD_NAMES)}")
    return f"{names}."


class StatsdMetrics:
    """Sends statsd lines over UDP (or a unix datagram socket); never raises on send.

    The lines are gunicorn's: timers `|ms`, counters `|c` with its `|@1.0` sample rate,
    gauges `|g`, dogstatsd tags appended as `|#tags`. Names given in corral's namespace
    (`corral.requests`) go out under `names` (`gunicorn.requests` by default); other names go
    out as given. The host is resolved once, here, so no DNS lookup happens on the request
    path; when resolution fails `error` says why and every send is dropped.
    """

    def __init__(
        self, host: str, prefix: str = "", tags: str = "", names: str = DEFAULT_STATSD_NAMES
    ) -> None:
        family, address = parse_statsd_host(host)
        self.prefix = normalize_prefix(prefix)
        self._namespace = statsd_namespace(names)
        # The request path's three names, translated once rather than per request.
        self._duration = self._name(REQUEST_DURATION)
        self._requests = self._name(REQUESTS)
        self._status = self._name(REQUEST_STATUS)
        self._queue = self._name(QUEUE_TIME)
        self._suffix = f"|#{tags}" if tags else ""
        self.error: OSError | None = None
        self._address: StatsdAddress | None = None
        self._sock: socket.socket | None = None
        try:
            if isinstance(address, tuple):
                info = socket.getaddrinfo(address[0], address[1], type=socket.SOCK_DGRAM)[0]
                family, resolved = info[0], info[4]
                address = (str(resolved[0]), int(resolved[1]))
            self._sock = socket.socket(family, socket.SOCK_DGRAM)
            # A full socket buffer drops a metric instead of stalling a request.
            self._sock.setblocking(False)
            self._address = address
        except OSError as exc:
            self.error = exc

    def _name(self, name: str) -> str:
        if name.startswith(NAMESPACE):
            return self._namespace + name[len(NAMESPACE) :]
        return name

    def _line(self, name: str, value: str, kind: str) -> str:
        return f"{self.prefix}{name}:{value}|{kind}{self._suffix}"

    def send(self, *lines: str) -> None:
        """Send lines in one datagram (statsd reads newline-separated metrics)."""
        if self._sock is None or self._address is None:
            return
        # Metrics are best effort: a missing or slow collector must not hurt serving.
        with contextlib.suppress(OSError):
            self._sock.sendto("\n".join(lines).encode("utf-8"), self._address)

    def request(self, duration_s: float, status: int) -> None:
        self.send(
            self._line(self._duration, f"{duration_s * 1000:.3f}", "ms"),
            self._line(self._requests, "1", "c|@1.0"),
            self._line(f"{self._status}{status}", "1", "c|@1.0"),
        )

    def queued(self, seconds: float) -> None:
        self.send(self._line(self._queue, f"{seconds * 1000:.3f}", "ms"))

    def gauge(self, name: str, value: float) -> None:
        self.send(self._line(self._name(name), str(value), "g"))

    def incr(self, name: str, value: int = 1) -> None:
        self.send(self._line(self._name(name), str(value), "c|@1.0"))

    def histogram(self, name: str, value: float) -> None:
        self.send(self._line(self._name(name), str(value), "h"))

    def close(self) -> None:
        if self._sock is not None:
            self._sock.close()
            self._sock = None


class BothMetrics:
    """statsd and Prometheus (metrics_bind) at once: every report goes to both."""

    def __init__(self, first: Metrics, second: Metrics) -> None:
        self.first = first
        self.second = second

    def request(self, duration_s: float, status: int) -> None:
        self.first.request(duration_s, status)
        self.second.request(duration_s, status)

    def queued(self, seconds: float) -> None:
        self.first.queued(seconds)
        self.second.queued(seconds)

    def gauge(self, name: str, value: float) -> None:
        self.first.gauge(name, value)
        self.second.gauge(name, value)

    def incr(self, name: str, value: int = 1) -> None:
        self.first.incr(name, value)
        self.second.incr(name, value)

    def histogram(self, name: str, value: float) -> None:
        self.first.histogram(name, value)
        self.second.histogram(name, value)

    def close(self) -> None:
        self.first.close()
        self.second.close()


def make_metrics(cfg: MetricsSettings, tally: Metrics | None = None) -> Metrics:
    """StatsdMetrics when `statsd_host` is set; with a worker's `tally` (metrics_bind), that
    too; NullMetrics when neither."""
    # Settings objects made before statsd_names existed (and test doubles) lack it.
    names = getattr(cfg, "statsd_names", DEFAULT_STATSD_NAMES)
    statsd = (
        StatsdMetrics(cfg.statsd_host, cfg.statsd_prefix, cfg.dogstatsd_tags, names)
        if cfg.statsd_host
        else None
    )
    if statsd is not None and tally is not None:
        return BothMetrics(statsd, tally)
    return statsd or tally or NullMetrics()
