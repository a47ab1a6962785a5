"""The request lifecycle: bookkeeping shared by every worker, and the WSGI request path."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from typing import TYPE_CHECKING, Any, NamedTuple, Protocol

from corral.config.model import default_of
from corral.gateway.exchange import Exchange
from corral.gateway.ladder import ClientDisconnected, RequestTimeout, answer
from corral.gateway.queue_time import proxy_queue_time
from corral.gateway.wsgi import ResponseState, Transport, WSGIGateway
from corral.gateway.wsgi_input import WSGIInput
from corral.http.errors import ProtocolError
from corral.http.events import Request
from corral.logging import AccessRecord
from corral.metrics import NullMetrics

if TYPE_CHECKING:
    from corral.config import Config
    from corral.logging import Logger
    from corral.metrics import Metrics
    from corral.scoreboard import Scoreboard

_STOPS = (RequestTimeout,)


class Watch(Protocol):
    """request_timeout's watch over one request."""

    def end(self) -> None: ...


class Watchdog(Protocol):
    """request_timeout on a WSGI worker (workers/deadline.py)."""

    def begin(self, req: Request, peer: str) -> Watch: ...


class ServingWorker(Protocol):
    """What the request path needs of the worker process serving it."""

    cfg: Config
    log: Logger
    pid: int

    @property
    def deadlines(self) -> Watchdog | None: ...

    @property
    def scoreboard(self) -> Scoreboard: ...

    def request_done(self) -> None: ...

    def last_request(self) -> bool: ...


class Bookkeeping:
    """Hooks, access log, metrics and the max_requests budget: once per request, any worker.

    The WSGI lifecycle below and the ASGI gateway both call it, so these steps exist once.
    """

    def __init__(self, worker: ServingWorker, metrics: Metrics) -> None:
        self.worker = worker
        self.log = worker.log
        # Hooks left at their do-nothing defaults and switched-off metrics cost nothing per
        # request: they are skipped rather than called.
        self.pre_request = _configured(worker.cfg, "pre_request")
        self.post_request = _configured(worker.cfg, "post_request")
        self.record = None if isinstance(metrics, NullMetrics) else metrics.request
        self.record_queue = None if isinstance(metrics, NullMetrics) else metrics.queued
        self.hooked = self.pre_request is not None or self.post_request is not None
        # Nothing reads a request's outcome: no access log, no post_request hook, no metrics.
        self.quiet = (
            not self.log.access_enabled and self.post_request is None and self.record is None
        )
        # Only metrics read the outcome: its duration and status go to them with no Outcome
        # built (a third of the cost of counting a request).
        self.count_only = (
            self.record if not self.log.access_enabled and self.post_request is None else None
        )

    def own(self, req: Request) -> Request:
        """The Request this request's hooks and app see: a copy when a hook is configured.

        A hook may change the request, as gunicorn's may (pre_request runs before the environ
        or scope is built, so the app sees the change), while the parser hands one Request to
        every repeat of a head (readers.parse_head_cached): the change must stay with this one.
        """
        return req.copy() if self.hooked else req

    def begin(self, req: Request) -> None:
        """Before the app: the pre_request hook (its exceptions are the caller's to answer)."""
        if self.pre_request is not None:
            self.pre_request(self.worker, req)

    def end(
        self,
        req: Request,
        env: Mapping[str, Any] | None,
        response: object,
        outcome: Outcome,
    ) -> None:
        """After the response: access log, post_request hook, metrics, request budget."""
        if self.log.access_enabled:
            self.log.access(
                AccessRecord(
                    remote_addr=outcome.remote_addr or "-",
                    remote_port=outcome.remote_port,
                    method=req.method,
                    path=req.path,
                    query=req.query,
                    http_version=req.http_version,
                    status=outcome.status,
                    response_length=outcome.length,
                    request_headers=req.headers,
                    response_headers=outcome.headers,
                    start_time=outcome.started,
                    duration=outcome.duration,
                    pid=self.worker.pid,
                    environ=env,
                )
            )
        if self.post_request is not None:
            try:
                self.post_request(self.worker, req, env, response)
            except Exception:
                self.log.exception("post_request hook failed")
        if self.record is not None:
            self.record(outcome.duration, outcome.status)
        self.worker.request_done()


class Outcome(NamedTuple):
    """How one request went, as the access log and metrics see it."""

    remote_addr: str
    remote_port: Any
    status: int
    length: int
    headers: list[tuple[str, str]]
    started: float  # wall-clock start, for the access log's %(t)s
    duration: float  # seconds


class RequestLifecycle:
    """Runs each WSGI request the same way whichever worker read it off the wire."""

    def __init__(
        self, worker: ServingWorker, gateway: WSGIGateway, metrics: Metrics, drain_limit: int
    ) -> None:
        self.worker = worker
        self.gateway = gateway
        self.log = worker.log
        self.books = Bookkeeping(worker, metrics)
        self.deadlines: Watchdog | None = worker.deadlines
        # Unread request body read and discarded to keep the connection (the drivers' policy).
        self.drain_limit = drain_limit
        self.activity = worker.scoreboard.mine  # the calling thread's scoreboard slot
        server = worker.cfg.server_header
        self.server_header: bytes | None = server.encode("latin-1") if server else None

    def handle(
        self,
        req: Request,
        conn: Exchange,
        transport: Transport,
        env_base: dict[str, Any],
        trusted: bool,
        arrived: float = 0.0,
    ) -> bool:
        """Serve one request; True when the connection may carry another one.

        ``arrived`` is when the request was first seen (its connection accepted, or the first
        bytes of a head read in parts), time.monotonic(); 0 when it was read whole just now.
        """
        books = self.books
        quiet = books.quiet
        started = time.time() if self.log.access_enabled else 0.0
        t0 = time.monotonic()
        act = self.activity()
        act.t0, act.req = t0, req  # Activity.begin, inlined: this runs once per request
        state = ResponseState()
        body = WSGIInput(conn, transport)
        environ: dict[str, Any] = env_base
        keep = True
        deadlines = self.deadlines
        watch = None if deadlines is None else deadlines.begin(req, env_base.get("REMOTE_ADDR", ""))
        # Every stop the watchdog sends (RequestTimeout) lands inside the outer try: end()
        # revokes one that has not landed yet, and no other is sent for this request. A stop
        # landing in the finally, before end() took the lock, is why the handler ends it too.
        try:
            try:
                if books.hooked:
                    req = books.own(req)
                    books.begin(req)
                environ = self.gateway.build_environ(env_base, trusted, req, body)
                act.queued += self._queue_time(environ, trusted, t0 - arrived if arrived else 0.0)
                self.gateway.run(environ, req, conn, transport, state)
            finally:
                if watch is not None:
                    watch.end()
        except BaseException as exc:
            if watch is not None:
                watch.end()
            keep = False
            status = answer(exc, self.log, req, stops=_STOPS if watch is not None else ())
            if status is not None:
                self._fail(status, state, conn, transport)
        act.end(time.monotonic())
        if quiet:
            self.worker.request_done()
        else:
            self._account(req, environ, env_base, state, started, t0)
        return keep and conn.keep_alive and _body_finished(req, conn, body, self.drain_limit)

    def _queue_time(self, environ: dict[str, Any], trusted: bool, queued: float) -> float:
        """How long the request waited before the app: ``corral.queue_time``, in seconds, and
        the metrics' histogram. A trusted proxy's X-Request-Start covers the wait in front too.
        """
        if trusted and "HTTP_X_REQUEST_START" in environ:
            queued = proxy_queue_time(environ["HTTP_X_REQUEST_START"], queued)
        environ["corral.queue_time"] = queued
        if self.books.record_queue is not None:
            self.books.record_queue(queued)
        return queued

    def _account(
        self,
        req: Request,
        environ: dict[str, Any],
        env_base: dict[str, Any],
        state: ResponseState,
        started: float,
        t0: float,
    ) -> None:
        """Hand the request's outcome to whatever reads it (see Bookkeeping)."""
        books = self.books
        if books.count_only is not None:
            books.count_only(time.monotonic() - t0, state.status)
            self.worker.request_done()
        else:
            books.end(req, environ, state, self._outcome(env_base, state, started, t0))

    @staticmethod
    def _outcome(
        env_base: dict[str, Any], state: ResponseState, started: float, t0: float
    ) -> Outcome:
        """What the access log and metrics record of one request."""
        return Outcome(
            env_base.get("REMOTE_ADDR", ""),
            env_base.get("REMOTE_PORT"),
            state.status,
            state.body_bytes,
            state.headers,
            started,
            time.monotonic() - t0,
        )

    def _fail(
        self, status: int, state: ResponseState, conn: Exchange, transport: Transport
    ) -> None:
        """Answer with an error page when no response has started (the connection then closes)."""
        if not state.head_sent:
            state.status = status
            state.head_sent = True
            try:
                transport.sendall(conn.error_page(status, self.server_header))
            except ClientDisconnected:
                pass


def _body_finished(req: Request, conn: Exchange, body: WSGIInput, limit: int) -> bool:
    """Read the request to its end so the next one can start; False when it cannot be."""
    try:
        if body.done:
            return True  # the app read it all, its end included
        if req.content_length is None and not req.chunked:
            # No body, and the app did not read: the next event is this request's end.
            return conn.end_of_message()
        return body.drain(limit)
    except (ProtocolError, ClientDisconnected):
        return False


def _configured(cfg: Config, hook: str) -> Callable[..., Any] | None:
    """The hook's function when the settings changed it from its do-nothing default."""
    fn: Callable[..., Any] = getattr(cfg, hook)
    return None if fn is default_of(hook) else fn
