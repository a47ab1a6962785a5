"""The one request lifecycle of the WSGI workers: hooks, app call, errors, access log, metrics."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from corral.config.model import default_of
from corral.drivers.transport import ClientDisconnected
from corral.gateway.wsgi import ResponseState, Transport, WSGIGateway
from corral.gateway.wsgi_input import WSGIInput
from corral.http.connection import ServerConnection
from corral.http.errors import LocalProtocolError, ProtocolError, render_error
from corral.http.events import EndOfMessage, Request
from corral.logging import AccessRecord
from corral.metrics import NullMetrics

if TYPE_CHECKING:
    from corral.config import Config
    from corral.metrics import Metrics
    from corral.workers.base import Worker

# Unread request body we are willing to read and discard to keep a connection alive; past this,
# closing is cheaper than draining.
DRAIN_LIMIT = 256 * 1024


class RequestLifecycle:
    """Runs each request the same way whichever worker read it off the wire."""

    def __init__(self, worker: Worker, gateway: WSGIGateway, metrics: Metrics) -> None:
        self.worker = worker
        self.gateway = gateway
        self.log = worker.log
        self.metrics = metrics
        self.cfg = worker.cfg
        server = worker.cfg.server_header
        self.server_header: bytes | None = server.encode("latin-1") if server else None
        # Hooks left at their do-nothing defaults and switched-off metrics cost nothing per
        # request: they are skipped rather than called.
        self.pre_request = _configured(self.cfg, "pre_request")
        self.post_request = _configured(self.cfg, "post_request")
        self.record = None if isinstance(metrics, NullMetrics) else metrics.request

    def handle(
        self,
        req: Request,
        conn: ServerConnection,
        transport: Transport,
        env_base: dict[str, Any],
        trusted: bool,
    ) -> bool:
        """Serve one request; True when the connection may carry another one."""
        started = time.time() if self.log.access_enabled else 0.0
        t0 = time.perf_counter()
        state = ResponseState()
        body = WSGIInput(conn, transport)
        environ: dict[str, Any] = env_base
        keep = True
        try:
            if self.pre_request is not None:
                self.pre_request(self.worker, req)
            environ = self.gateway.build_environ(env_base, trusted, req, body)
            self.gateway.run(environ, req, conn, transport, state)
        except ClientDisconnected as exc:
            self.log.debug("client went away during %s %s: %s", req.method, req.path, exc)
            keep = False
        except ProtocolError as exc:
            self.log.debug("rejected %s %s: %s %s", req.method, req.path, exc.status, exc.reason)
            keep = self._fail(exc.status, state, transport)
        except LocalProtocolError as exc:
            self.log.error("Invalid response from the app for %s %s: %s", req.method, req.path, exc)
            keep = self._fail(500, state, transport)
        except Exception:
            self.log.exception("Error handling request %s", req.target)
            keep = self._fail(500, state, transport)
        duration = time.perf_counter() - t0
        if self.log.access_enabled:
            self._access(req, environ, state, started, duration, transport)
        if self.post_request is not None:
            self.post_request(self.worker, req, environ, state)
        if self.record is not None:
            self.record(duration, state.status)
        self.worker.request_done()
        if not keep or not conn.keep_alive:
            return False
        try:
            if req.content_length is None and not req.chunked:
                # No body: the next event is this request's end.
                return type(conn.next_event()) is EndOfMessage
            return body.drain(DRAIN_LIMIT)
        except (ProtocolError, ClientDisconnected):
            return False

    def _fail(self, status: int, state: ResponseState, transport: Transport) -> bool:
        """Answer with an error page when no response has started; the connection then closes."""
        if not state.head_sent:
            state.status = status
            state.head_sent = True
            try:
                transport.sendall(render_error(status, server=self.server_header))
            except ClientDisconnected:
                pass
        return False

    def _access(
        self,
        req: Request,
        environ: dict[str, Any],
        state: ResponseState,
        started: float,
        duration: float,
        transport: Transport,
    ) -> None:
        self.log.access(
            AccessRecord(
                remote_addr=environ.get("REMOTE_ADDR", "-") or "-",
                remote_port=environ.get("REMOTE_PORT"),
                method=req.method,
                path=req.path,
                query=req.query,
                http_version=req.http_version,
                status=state.status,
                response_length=state.body_bytes,
                request_headers=req.headers,
                response_headers=state.headers,
                start_time=started,
                duration=duration,
                pid=self.worker.pid,
                environ=environ,
            )
        )


def _configured(cfg: Config, hook: str) -> Callable[..., Any] | None:
    """The hook's function when the settings changed it from its do-nothing default."""
    fn: Callable[..., Any] = getattr(cfg, hook)
    return None if fn is default_of(hook) else fn
