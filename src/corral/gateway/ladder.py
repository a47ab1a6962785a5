"""The error ladder: what an exception raised while serving a request means, for every worker."""

from __future__ import annotations

from typing import Any, Protocol

from corral.http.errors import LocalProtocolError, ProtocolError
from corral.http.events import Request


class ClientDisconnected(OSError):
    """The peer went away, reset the connection, or stopped reading or sending for too long.

    An OSError, as ASGI 2.4 asks of what ``send()`` raises once the client has gone; WSGI apps
    see it from ``wsgi.input``.
    """


class BodyStalled(ClientDisconnected):
    """The client stopped sending a request body it had begun, for longer than body_timeout.

    Still there, unlike a client that left: it is answered with 408 (RFC 9110 §15.5.9) when
    no response has started, and the connection then closes.
    """


class RequestTimeout(BaseException):
    """request_timeout's stop, raised in the code serving a request that ran too long.

    A BaseException, so that an app's ``except Exception`` does not swallow it.
    """


class LadderLog(Protocol):
    """What the ladder logs with (corral's Logger)."""

    def debug(self, msg: str, *args: Any, **kwargs: Any) -> None: ...

    def error(self, msg: str, *args: Any, **kwargs: Any) -> None: ...

    def exception(self, msg: str, *args: Any, **kwargs: Any) -> None: ...


def answer(
    exc: BaseException,
    log: LadderLog,
    req: Request,
    *,
    stops: tuple[type[BaseException], ...] = (),
    gone: bool = False,
) -> int | None:
    """The status that answers ``exc`` (None: nobody is left to answer), logged once.

    ``stops`` are the exception types request_timeout stops a request with (they answer 504);
    ``gone`` says the client has already left, so an app's failure is no news. Anything else
    that is not an Exception (SystemExit, a cancel while the worker exits) is raised again:
    it is the worker's, not the request's.
    """
    if isinstance(exc, BodyStalled):
        log.debug("request body stalled for %s %s: %s", req.method, req.path, exc)
        return 408
    if isinstance(exc, ClientDisconnected):
        log.debug("client went away during %s %s: %s", req.method, req.path, exc)
        return None
    if isinstance(exc, ProtocolError):
        log.debug("rejected %s %s: %s %s", req.method, req.path, exc.status, exc.reason)
        return exc.status
    if isinstance(exc, LocalProtocolError):
        log.error("Invalid response from the app for %s %s: %s", req.method, req.path, exc)
        return 500
    if isinstance(exc, Exception):
        if gone:
            log.debug("app failed after the client went away: %s", req.target, exc_info=exc)
        else:
            log.exception("Error handling request %s", req.target, exc_info=exc)
        return 500
    if stops and is_stop(exc, stops):
        return 504
    raise exc


def is_stop(exc: BaseException, stops: tuple[type[BaseException], ...]) -> bool:
    """Whether ``exc`` is a request_timeout stop, alone or in a task group's exception group."""
    if isinstance(exc, stops):
        return True
    inner: tuple[BaseException, ...] = getattr(exc, "exceptions", ())  # BaseExceptionGroup
    return bool(inner) and all(is_stop(each, stops) for each in inner)
