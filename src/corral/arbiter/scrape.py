"""metrics_bind: the arbiter's Prometheus endpoint, served from its own loop without threads."""

from __future__ import annotations

import errno
import select
import socket
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field

from corral.arbiter.heartbeat import Heartbeat
from corral.http.connection import ServerConnection
from corral.http.errors import ProtocolError, render_error
from corral.http.events import NEED_DATA, Request
from corral.logging import Logger
from corral.scoreboard import BOARD_SIZE
from corral.sockets import BindError, Listener, create_listener, parse_bind
from corral.tally import BUCKETS, QUEUE_BUCKETS, SIZE, STATUS_CLASSES, Totals, decode

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"  # the text exposition format
SCRAPE_TIMEOUT = 5.0  # a scraper that has not sent its request or read the answer by then
MAX_SCRAPERS = 16  # connections at once; more wait in the listen backlog
BACKLOG = 64


@dataclass
class Census:
    """What the arbiter knows of its workers when a scrape comes in."""

    heartbeats: list[Heartbeat]
    target: int  # num_workers
    resident: int  # bytes, summed over the workers
    inflight: int = 0  # requests running now
    threads_busy: int = 0  # sync and threaded workers' threads on a request now
    threads_idle: int = 0
    utilisation: dict[float, float] = field(default_factory=dict)  # window -> busy share
    backlog: tuple[int, int] | None = None  # connections waiting to be accepted, backlog
    restarts: dict[str, int] = field(default_factory=dict)  # worker exits by reason
    adaptive: dict[str, int] | None = None  # adaptive mode's changes, up and down (when on)


class _Scraper:
    """One scrape connection: its request coming in, then its answer going out."""

    def __init__(self, sock: socket.socket, now: float) -> None:
        self.sock = sock
        self.conn = ServerConnection(server_header=None)
        self.conn.close_after()
        self.out = b""
        self.deadline = now + SCRAPE_TIMEOUT


class MetricsEndpoint:
    """Serves ``GET /metrics`` on one listener: non-blocking, one poll turn at a time.

    The arbiter must never wait on a scraper (its loop reaps and restarts workers), and it
    must not run threads (it forks), so every socket here is non-blocking and watched by the
    arbiter's own poll (``watched``); ``ready`` does what poll found possible.
    """

    def __init__(self, listener: Listener, log: Logger, render: Callable[[], bytes]) -> None:
        self.listener = listener
        self.log = log
        self.render = render
        listener.sock.setblocking(False)
        self._scrapers: dict[int, _Scraper] = {}
        self._accept_after = 0.0  # accept failed (out of fds): the listener rests until then

    def watched(self) -> dict[int, int]:
        """fd -> poll events to wait for."""
        fds = {
            fd: select.POLLOUT if scraper.out else select.POLLIN
            for fd, scraper in self._scrapers.items()
        }
        if len(self._scrapers) < MAX_SCRAPERS and time.monotonic() >= self._accept_after:
            fds[self.listener.fileno()] = select.POLLIN
        return fds

    def ready(self, events: Iterable[tuple[int, int]], now: float) -> None:
        """Accept, read or write what poll found ready; drop scrapers past their deadline."""
        for fd, _ in events:
            if fd == self.listener.fileno():
                self._accept(now)
            elif (scraper := self._scrapers.get(fd)) is not None:
                self._step(scraper)
        for fd, scraper in list(self._scrapers.items()):
            if now > scraper.deadline:
                self._drop(fd)

    def close(self, *, unlink: bool) -> None:
        for fd in list(self._scrapers):
            self._drop(fd)
        self.listener.close(unlink)

    def _accept(self, now: float) -> None:
        try:
            sock, _ = self.listener.sock.accept()
        except (BlockingIOError, ConnectionAbortedError):
            return
        except OSError as exc:
            # EMFILE and the like: the connection stays queued and the listener readable, so
            # watching it again at once would spin the arbiter's loop. It rests a second.
            self._accept_after = now + 1.0
            self.log.warning("metrics_bind: cannot accept a scrape (next try in 1 s): %s", exc)
            return
        sock.setblocking(False)
        self._scrapers[sock.fileno()] = _Scraper(sock, now)

    def _step(self, scraper: _Scraper) -> None:
        try:
            if not scraper.out:
                data = scraper.sock.recv(65536)
                scraper.conn.receive_data(data)
                scraper.out = self._answer(scraper.conn)
                if not scraper.out:
                    return  # the head is not all here yet
            sent = scraper.sock.send(scraper.out)
            scraper.out = scraper.out[sent:]
            if scraper.out:
                return
        except BlockingIOError:
            return
        except OSError as exc:
            if exc.errno not in (errno.ECONNRESET, errno.EPIPE):
                self.log.debug("metrics_bind: scrape connection failed: %s", exc)
        self._drop(scraper.sock.fileno())

    def _answer(self, conn: ServerConnection) -> bytes:
        """The whole response once the request head is in; b'' while it is still coming."""
        try:
            event = conn.next_event()
        except ProtocolError as exc:
            return render_error(exc.status, server=None)
        if event is NEED_DATA:
            return b""
        if not isinstance(event, Request):  # the peer closed before a whole head
            return render_error(400, server=None)
        if event.path != "/metrics":
            return render_error(404, server=None)
        if event.method not in ("GET", "HEAD"):
            return render_error(405, server=None, extra=b"Allow: GET, HEAD\r\n")  # RFC 9110 15.5.6
        try:
            body = self.render()
        except Exception:  # a bug here must cost a scrape, not the arbiter
            self.log.exception("metrics_bind: cannot render the metrics")
            return render_error(500, server=None)
        return conn.send_full(200, [("Content-Type", CONTENT_TYPE)], body)

    def _drop(self, fd: int) -> None:
        scraper = self._scrapers.pop(fd, None)
        if scraper is not None:
            scraper.sock.close()


class MetricsService:
    """The arbiter's side of metrics_bind: the endpoint, and the counts of workers gone.

    ``census`` tells what the arbiter knows of its live workers at scrape time. After an
    upgrade (USR2) the new master finds the address held by the old one until that one exits,
    so it binds again each second until it can; metrics are not worth failing an upgrade for.
    """

    def __init__(self, address: str | None, log: Logger, census: Callable[[], Census]) -> None:
        self.address = address
        self.log = log
        self.census = census
        self.endpoint: MetricsEndpoint | None = None
        self.retired = Totals()  # a counter never goes down: the workers gone still count
        self._seen: dict[Heartbeat, Totals] = {}  # each live worker's last good read
        self.exits = 0
        self.started = time.time()
        self._next_try = 0.0

    @property
    def board(self) -> int:
        """The bytes each worker's heartbeat shares: its scoreboard, then its request counts
        when metrics are served (the worker counts only when its board has room for them)."""
        return BOARD_SIZE + (SIZE if self.address is not None else 0)

    def reconfigure(self, address: str | None, log: Logger) -> None:
        """HUP: the new logger. The address stays until a restart (the workers follow the
        arbiter: they count only when their heartbeat has a board)."""
        self.log = log
        if self.endpoint is not None:
            self.endpoint.log = log
        if address != self.address:
            log.warning(
                "metrics_bind changed to %r: it takes effect on restart; still %r",
                address,
                self.address,
            )

    def open(self, *, upgrading: bool) -> None:
        """Listen at metrics_bind, when set; BindError names the setting when that fails."""
        if self.address is not None:
            self._bind(upgrading=upgrading)

    def _bind(self, *, upgrading: bool) -> None:
        assert self.address is not None
        try:
            listener = create_listener(parse_bind(self.address), backlog=BACKLOG)
        except BindError as exc:
            if not upgrading:
                raise BindError(f"metrics_bind: {exc}") from None
            if not self._next_try:
                self.log.info(
                    "metrics_bind: %s; trying again each second (the old master holds the "
                    "address until it exits)",
                    exc,
                )
            self._next_try = time.monotonic() + 1.0
            return
        self.log.info("Serving metrics at: %s/metrics", listener.url())
        self.endpoint = MetricsEndpoint(listener, self.log, self.render)

    def watched(self) -> dict[int, int]:
        """The fds the arbiter's poll should watch for the endpoint (fd -> events)."""
        if self.endpoint is None and self._next_try and time.monotonic() >= self._next_try:
            self._bind(upgrading=True)
        return {} if self.endpoint is None else self.endpoint.watched()

    def ready(self, events: Iterable[tuple[int, int]]) -> None:
        if self.endpoint is not None:
            self.endpoint.ready(events, time.monotonic())

    def close(self, *, unlink: bool) -> None:
        """Stop serving; in a forked worker (``unlink`` False) only the fds are closed."""
        if self.endpoint is not None:
            self.endpoint.close(unlink=unlink)
            self.endpoint = None
        self._next_try = 0.0

    def retire(self, heartbeat: Heartbeat) -> None:
        """A worker was reaped: keep the counts it published last (before its heartbeat closes).

        A worker killed by a signal loses what it counted since its last heartbeat (at most
        about a second's worth); one that exits normally publishes its final counts first.
        """
        self.exits += 1
        totals = self._read(heartbeat)
        self._seen.pop(heartbeat, None)
        if totals is not None:
            self.retired.add(totals)

    def served(self, heartbeat: Heartbeat) -> int | None:
        """Requests a live worker has served, as it last published; None without metrics_bind
        (its heartbeat then has no board to publish on)."""
        if heartbeat.board is None:
            return None
        totals = self._read(heartbeat)
        return None if totals is None else totals.requests

    def render(self) -> bytes:
        """The text exposition of every counter and gauge (Prometheus text format 0.0.4)."""
        census = self.census()
        totals = Totals()
        totals.add(self.retired)
        for heartbeat in census.heartbeats:
            live = self._read(heartbeat)
            if live is not None:
                totals.add(live)
        return exposition(totals, census, self.exits, self.started).encode()

    def _read(self, heartbeat: Heartbeat) -> Totals | None:
        """A worker's last published counts. A torn read is tried again (the writer is quick),
        and one that stays torn gives the counts read before, so a sum never goes down."""
        for _ in range(3):
            totals = decode(heartbeat.published(SIZE, BOARD_SIZE))
            if totals is not None:
                self._seen[heartbeat] = totals
                return totals
        return self._seen.get(heartbeat)


def exposition(totals: Totals, census: Census, exits: int, started: float) -> str:
    """The metrics as Prometheus text: HELP, TYPE, then the samples of each."""
    lines: list[str] = []

    def metric(name: str, kind: str, text: str, samples: Iterable[tuple[str, float]]) -> None:
        lines.append(f"# HELP {name} {text}")
        lines.append(f"# TYPE {name} {kind}")
        lines.extend(f"{name}{labels} {_number(value)}" for labels, value in samples)

    other = totals.requests - sum(totals.statuses)
    statuses = [*zip(STATUS_CLASSES, totals.statuses, strict=True), ("other", other)]
    metric(
        "corral_requests_total",
        "counter",
        "Requests served, by response status class (other: no response was sent).",
        ((f'{{status="{kind}"}}', count) for kind, count in statuses),
    )
    metric(
        "corral_request_duration_seconds",
        "histogram",
        "Time from a request's head to the end of its response.",
        _histogram(BUCKETS, totals.buckets, totals.micros),
    )
    metric(
        "corral_request_queue_seconds",
        "histogram",
        "Time from a request's arrival (its connection's accept, a proxy's X-Request-Start) "
        "until the app was called.",
        _histogram(QUEUE_BUCKETS, totals.queue_buckets, totals.queue_micros),
    )
    _activity(metric, census)
    metric("corral_workers", "gauge", "Worker processes running.", [("", len(census.heartbeats))])
    metric("corral_workers_target", "gauge", "Worker processes wanted.", [("", census.target)])
    metric(
        "corral_workers_resident_bytes",
        "gauge",
        "Resident memory of the worker processes, summed.",
        [("", census.resident)],
    )
    metric("corral_worker_exits_total", "counter", "Worker processes that exited.", [("", exits)])
    metric(
        "corral_worker_restarts_total",
        "counter",
        "Worker processes that exited, by reason (exit: asked to, by a reload, scale-down or "
        "shutdown).",
        ((f'{{reason="{reason}"}}', count) for reason, count in census.restarts.items()),
    )
    if census.adaptive is not None:
        metric(
            "corral_adaptive_changes_total",
            "counter",
            "Changes adaptive mode made to the number of workers (each logged with its reason).",
            ((f'{{direction="{way}"}}', count) for way, count in census.adaptive.items()),
        )
    metric(
        "corral_master_start_time_seconds",
        "gauge",
        "When the arbiter started, in seconds since the epoch.",
        [("", started)],
    )
    return "\n".join(lines) + "\n"


Metric = Callable[[str, str, str, Iterable[tuple[str, float]]], None]


def _histogram(bounds: Iterable[float], counts: list[int], micros: int) -> list[tuple[str, float]]:
    """The samples of a histogram from per-bucket counts (+Inf last) and a sum in µs."""
    cumulative = 0
    samples: list[tuple[str, float]] = []
    for bound, count in zip([*map(_number, bounds), "+Inf"], counts, strict=True):
        cumulative += count
        samples.append((f'_bucket{{le="{bound}"}}', cumulative))
    # _count is the +Inf bucket's, so the two always agree.
    return [*samples, ("_sum", micros / 1_000_000), ("_count", cumulative)]


def _activity(metric: Metric, census: Census) -> None:
    """The gauges of what the workers do now: in flight, threads, utilisation, backlog."""
    metric(
        "corral_requests_in_flight",
        "gauge",
        "Requests running now.",
        [("", census.inflight)],
    )
    metric(
        "corral_threads",
        "gauge",
        "Threads of the sync and threaded workers, busy on a request or idle.",
        [('{state="busy"}', census.threads_busy), ('{state="idle"}', census.threads_idle)],
    )
    metric(
        "corral_utilisation",
        "gauge",
        "Busy share of the workers' capacity (threads; an asyncio worker's event loop), "
        "averaged over the window.",
        ((f'{{window="{window:g}s"}}', share) for window, share in census.utilisation.items()),
    )
    if census.backlog is not None:
        metric(
            "corral_listen_backlog",
            "gauge",
            "Connections waiting in the TCP listeners' accept queues.",
            [("", census.backlog[0])],
        )
        metric(
            "corral_listen_backlog_limit",
            "gauge",
            "The accept queues' size (the backlog setting, capped by the kernel).",
            [("", census.backlog[1])],
        )


def _number(value: float) -> str:
    return repr(value) if isinstance(value, float) else str(value)
