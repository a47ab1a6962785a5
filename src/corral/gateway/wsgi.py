"""PEP 3333 gateway: a request event becomes an environ, the app's response becomes HTTP bytes."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterable
from types import TracebackType
from typing import Any, Protocol
from urllib.parse import unquote_to_bytes

from corral import __version__
from corral.gateway.exchange import Exchange
from corral.gateway.file_wrapper import FileWrapper
from corral.gateway.forwarded import SchemeHeaders, TrustedPeers, forwarded_client
from corral.gateway.wsgi_input import BodySource, WSGIInput
from corral.http.errors import LocalProtocolError
from corral.http.events import Request

# A body given whole and larger than this is not joined to its head: the join would copy it
# (about 30 µs per MiB here). Both go in one write all the same (Transport.send_after); a
# smaller one is joined, which costs less than handing two buffers to the kernel.
JOIN_MAX = 256 * 1024

ExcInfo = tuple[type[BaseException], BaseException, TracebackType | None]
StartResponse = Callable[..., Callable[[bytes], None]]
WSGIApp = Callable[[dict[str, Any], StartResponse], Iterable[bytes]]


class Transport(BodySource, Protocol):
    """A driver's side of one connection, as the gateway needs it."""

    def send_after(self, head: bytes, body: bytes) -> None:
        """Send ``head`` then ``body`` without joining them (a large body stays uncopied)."""
        ...

    def sendfile(self, fd: int, offset: int, count: int) -> int:
        """Send ``count`` bytes of file ``fd`` from ``offset``; return how many were sent."""
        ...


class GatewaySettings(Protocol):
    """The settings the WSGI gateway reads."""

    header_map: str
    forwarded_allow_ips: list[str]
    proxy_headers: bool
    secure_scheme_headers: dict[str, str]
    forwarder_headers: list[str]
    sendfile: bool


def mount_point(cfg: object) -> str:
    """SCRIPT_NAME (WSGI) and root_path (ASGI): the `root_path` setting, else $SCRIPT_NAME.

    Read with getattr: settings objects made for the gateway alone may not carry it.
    """
    root = getattr(cfg, "root_path", "") or os.environ.get("SCRIPT_NAME", "")
    # "/api/" and "/api" mount the same point; PATH_INFO keeps its leading "/".
    return str(root).rstrip("/")


def _names(spec: list[str]) -> list[str]:
    return [s.strip().upper() for s in spec if s.strip()]


def _dashed_key(name: str) -> str:
    """PEP 3333: the environ key of a request field whose name holds no "_"."""
    upper = name.upper()
    if upper == "CONTENT-TYPE" or upper == "CONTENT-LENGTH":
        return upper.replace("-", "_")  # the two fields without an HTTP_ prefix
    return "HTTP_" + upper.replace("-", "_")


def _content_length(headers: list[tuple[str, str]]) -> int | None:
    """The app's Content-Length, when it set a valid one (the core rejects invalid ones)."""
    for name, value in headers:
        if name.lower() == "content-length":
            return int(value) if value.isascii() and value.isdigit() else None
    return None


class ResponseState:
    """What ``start_response`` and the app's iterable have produced so far for one request."""

    __slots__ = ("body_bytes", "head_sent", "headers", "reason", "status")

    def __init__(self) -> None:
        self.status = 0
        self.reason = ""
        self.headers: list[tuple[str, str]] = []
        self.head_sent = False
        self.body_bytes = 0


class WSGIGateway:
    """Runs one WSGI app: environ building, ``start_response``, body writing, error handling."""

    def __init__(
        self,
        app: WSGIApp,
        cfg: GatewaySettings,
        *,
        multithread: bool,
        log_warning: Callable[[str], None],
    ) -> None:
        self.app = app
        self._header_map = cfg.header_map
        self._trusted = TrustedPeers(cfg.forwarded_allow_ips)
        self._client_from_proxy = cfg.proxy_headers
        self._schemes = SchemeHeaders(cfg.secure_scheme_headers)
        # The environ keys the scheme fields arrive under: a request whose environ holds none of
        # them carries none (nor does any request when none is configured), and its headers
        # need no second scan. None when a name holds "_": header_map may keep such a field out
        # of the environ, so it is always scanned for.
        names = self._schemes.names
        self._scheme_keys: frozenset[str] | None = (
            None if any("_" in n for n in names) else frozenset(_dashed_key(n) for n in names)
        )
        self._forwarder = set(_names(cfg.forwarder_headers))
        self._sendfile_ok = cfg.sendfile is not False
        self._key_cache: dict[str, str] = {}
        self._statuses: dict[str, tuple[int, str]] = {}
        self._listener_keys: dict[tuple[Any, str], dict[str, Any]] = {}
        self._warn = log_warning
        self._warned_body_dropped = False
        self.base: dict[str, Any] = {
            "wsgi.version": (1, 0),
            "wsgi.errors": sys.stderr,
            "wsgi.multithread": multithread,
            "wsgi.multiprocess": True,
            "wsgi.run_once": False,
            "wsgi.input_terminated": True,
            "wsgi.file_wrapper": FileWrapper,
            "SERVER_SOFTWARE": "corral/" + __version__,
            "SCRIPT_NAME": mount_point(cfg),
        }

    def connection_environ(
        self, peer: Any, sockname: Any, scheme: str = "http"
    ) -> tuple[dict[str, Any], bool]:
        """The environ keys shared by every request on a connection, and whether it is trusted."""
        listener = self._listener_keys.get((sockname, scheme))
        if listener is None:
            listener = self._listener_environ(sockname, scheme)
        env = listener.copy()
        if isinstance(peer, tuple):
            env["REMOTE_ADDR"], env["REMOTE_PORT"] = peer[0], str(peer[1])
            addr = peer[0]
        else:
            env["REMOTE_ADDR"], env["REMOTE_PORT"] = "", ""
            addr = ""
        return env, self._trusted.trusts(addr)

    def _listener_environ(self, sockname: Any, scheme: str) -> dict[str, Any]:
        """The environ keys every connection to one listener shares, kept for the next ones."""
        env = dict(self.base)
        env["wsgi.url_scheme"] = scheme
        if isinstance(sockname, tuple):
            env["SERVER_NAME"], env["SERVER_PORT"] = str(sockname[0]), str(sockname[1])
        else:
            env["SERVER_NAME"], env["SERVER_PORT"] = str(sockname or "localhost"), ""
        if len(self._listener_keys) < 64:  # one per listener (and scheme): a few
            self._listener_keys[(sockname, scheme)] = env
        return env

    def _header_key(self, name: str, trusted: bool) -> str:
        """The environ key for a header name; "" when the header is dropped."""
        upper = name.upper()
        if "_" in name:
            # An underscore header could pose as its dashed twin (X_Forwarded_For vs
            # X-Forwarded-For) once both become HTTP_X_FORWARDED_FOR: drop or refuse it.
            # header_map = refuse never gets here: the HTTP core rejects the request.
            if trusted and upper in self._forwarder:
                return "=" + upper
            if self._header_map != "dangerous":
                return ""
            return "HTTP_" + upper.replace("-", "_")
        key = _dashed_key(name)
        if len(self._key_cache) < 1024:
            self._key_cache[name] = key
        return key

    def build_environ(
        self, base: dict[str, Any], trusted: bool, req: Request, body: WSGIInput
    ) -> dict[str, Any]:
        """The PEP 3333 environ for one request: the connection's keys, then the request's."""
        memo = req.memo
        if memo is not None and memo[0] is self and memo[1] is trusted:
            keys = memo[2]
        else:
            # The request's keys depend on its head alone (and on whether the peer is trusted),
            # so a repeated head (readers.parse_head_cached hands out one Request) reuses them.
            keys = self._request_keys(trusted, req)
            req.memo = (self, trusted, keys)
        environ = base.copy()
        environ.update(keys)
        environ["wsgi.input"] = body
        return environ

    def _request_keys(self, trusted: bool, req: Request) -> dict[str, Any]:
        """The environ keys a request head gives, over the connection's keys."""
        keys: dict[str, Any] = {
            "REQUEST_METHOD": req.method,
            "RAW_URI": req.target,
            "SERVER_PROTOCOL": "HTTP/" + req.http_version,
            "QUERY_STRING": req.query,
        }
        cache = self._key_cache
        for name, value in req.headers:
            key = cache.get(name) or self._header_key(name, trusted)
            if not key:
                continue
            if key[0] == "=":
                keys[key[1:]] = value
            elif key in keys:
                keys[key] += ", " + value
            else:
                keys[key] = value
        path = req.path
        if "%" in path:
            # PEP 3333: PATH_INFO is the decoded path as bytes carried in a latin-1 str.
            path = unquote_to_bytes(path).decode("latin-1")
        script = keys.get("SCRIPT_NAME", self.base["SCRIPT_NAME"])
        if script and path.startswith(script):
            path = path[len(script) :]
        keys["PATH_INFO"] = path
        if trusted and self._client_from_proxy:
            client = forwarded_client(req.headers, self._trusted)
            if client is not None:
                keys["REMOTE_ADDR"], keys["REMOTE_PORT"] = client, "0"
        names = self._scheme_keys
        # Asked of the dict's view, isdisjoint() walks the smaller side (these few keys).
        if trusted and (names is None or not keys.keys().isdisjoint(names)):
            scheme = self._schemes.scheme(req.headers)
            if scheme is not None:
                keys["wsgi.url_scheme"] = scheme
        return keys

    def run(
        self,
        environ: dict[str, Any],
        req: Request,
        conn: Exchange,
        transport: Transport,
        state: ResponseState,
    ) -> None:
        """Call the app and write its response into ``state``; the caller renders exceptions."""

        def write(data: bytes) -> None:
            self._send_chunk(state, conn, transport, data)

        def start_response(
            status: str, headers: list[tuple[str, str]], exc_info: ExcInfo | None = None
        ) -> Callable[[bytes], None]:
            if exc_info is not None:
                try:
                    if state.head_sent:
                        raise exc_info[1].with_traceback(exc_info[2])
                finally:
                    exc_info = None
            elif state.status:
                raise AssertionError("start_response called a second time without exc_info")
            try:
                parsed = statuses.get(status)
            except TypeError:  # unhashable, so not a str: _status says what is wrong
                parsed = None
            if parsed is None:
                parsed = self._status(status)
            state.status, state.reason = parsed
            state.headers = headers
            return write

        statuses = self._statuses

        result = self.app(environ, start_response)
        try:
            self._write(result, state, conn, transport)
        finally:
            close = getattr(result, "close", None)
            if close is not None:
                close()

    def _status(self, status: str) -> tuple[int, str]:
        """The code and reason of the app's status line ("200 OK"), checked once per line: an
        app sends a handful of them, so the short lines that passed are remembered (up to 256)."""
        code = status[:3] if isinstance(status, str) else ""
        valid = len(code) == 3 and code.isascii() and code.isdigit()
        if not valid or status[3:4] not in ("", " "):
            raise LocalProtocolError("invalid status line from the app: " + repr(status))
        parsed = int(code), status[4:]
        # Only plain short strings: a subclass equal to one would be answered by its entry, and
        # a reason phrase that changes on every response would hold 256 long strings for good.
        if type(status) is str and len(status) <= 64 and len(self._statuses) < 256:
            self._statuses[status] = parsed
        return parsed

    def _write(
        self,
        result: Iterable[bytes],
        state: ResponseState,
        conn: Exchange,
        transport: Transport,
    ) -> None:
        """Send what the app returned: one buffer, a file, or the pieces of an iterable."""
        if type(result) is list and len(result) == 1 and state.status and not state.head_sent:
            body = result[0]
            head, out = conn.send_full_parts(state.status, state.headers, body, state.reason)
            if len(out) <= JOIN_MAX or type(out) is not bytes:
                # Joined; a body that is not bytes fails here, before anything counts as sent.
                head += out
                out = b""
            state.head_sent = True
            state.body_bytes = len(body)
            if out:
                transport.send_after(head, out)
            else:
                transport.sendall(head)
            if conn.body_suppressed:
                self._note_suppressed(state)
        elif isinstance(result, FileWrapper) and self._sendfile_ok and result.fileno() >= 0:
            self._send_file(state, conn, transport, result)
        else:
            for chunk in result:
                if chunk:
                    self._send_chunk(state, conn, transport, chunk)
            self._finish(state, conn, transport)

    def _send_chunk(
        self, state: ResponseState, conn: Exchange, transport: Transport, data: bytes
    ) -> None:
        if not state.status:
            raise LocalProtocolError("the app sent body bytes before calling start_response")
        if state.head_sent:
            out = conn.send_data(data)
        else:
            out = conn.send_response(state.status, state.headers, state.reason)
            state.head_sent = True
            out += conn.send_data(data)
        state.body_bytes += len(data)
        if out:
            transport.sendall(out)

    def _finish(self, state: ResponseState, conn: Exchange, transport: Transport) -> None:
        if not state.status:
            raise LocalProtocolError("the app returned without calling start_response")
        if state.head_sent:
            transport.sendall(conn.send_end())
        else:
            out = conn.send_full(state.status, state.headers, b"", state.reason)
            state.head_sent = True
            transport.sendall(out)
        if conn.body_suppressed:
            self._note_suppressed(state)

    def _send_file(
        self,
        state: ResponseState,
        conn: Exchange,
        transport: Transport,
        wrapper: FileWrapper,
    ) -> None:
        if not state.status:
            raise LocalProtocolError("the app returned without calling start_response")
        fd = wrapper.fileno()
        offset, remaining = wrapper.span()
        declared = _content_length(state.headers)
        if remaining is None or state.head_sent or (declared or 0) > remaining:
            # Not a regular file, or the app promised more than the file holds: plain
            # iteration, which the core frames and checks like any other body.
            for chunk in wrapper:
                self._send_chunk(state, conn, transport, chunk)
            self._finish(state, conn, transport)
            return
        headers = state.headers
        if declared is None:
            headers = [*headers, ("Content-Length", str(remaining))]
        else:
            # The app's Content-Length bounds what leaves, never the file's size: bytes past
            # it would be read by the client as the start of the next response.
            remaining = declared
        out = conn.send_response(state.status, headers, state.reason)
        state.head_sent = True
        transport.sendall(out)
        if conn.body_allowed:
            while remaining > 0:
                sent = transport.sendfile(fd, offset, remaining)
                if sent <= 0:
                    break
                conn.count_body_bytes(sent)
                offset += sent
                remaining -= sent
                state.body_bytes += sent
        transport.sendall(conn.send_end())

    def _note_suppressed(self, state: ResponseState) -> None:
        if not self._warned_body_dropped:
            # RFC 9110 §6.4.1: no content for HEAD, 1xx, 204 and 304; say so once per worker.
            self._warned_body_dropped = True
            self._warn(
                f"the app sent a body with a {state.status} response to a request for which "
                "HTTP allows none; the body was dropped (logged once per worker)"
            )
