"""The benchmark workloads: which app each serves, how many connections, and wrk's Lua script."""

from __future__ import annotations

from dataclasses import dataclass

ECHO_BODY_BYTES = 64 * 1024


@dataclass(frozen=True)
class Workload:
    """One kind of traffic: the app that answers it and the load wrk puts on it."""

    name: str
    app: str  # module:attr inside benchmarks/apps
    connections: int
    description: str
    lua: str | None = None  # wrk script body; None sends plain keep-alive GETs
    needs: str | None = None  # an importable module the app requires (e.g. flask)
    interface: str = "wsgi"  # "wsgi" or "asgi": which server configurations take part
    websocket: bool = False  # load from benchmarks/wsload.py (echo messages) instead of wrk
    deflate: bool = False  # WebSocket with permessage-deflate offered and used (wsload --deflate)
    tls: bool = False  # served over TLS (benchmarks/tls.py): wrk gets an https URL
    # A new TLS connection per request, resuming the session: loaded by `connections` parallel
    # `openssl s_time -reuse` processes (benchmarks/stime.py) instead of wrk.
    resume: bool = False

    @property
    def family(self) -> str:
        """The results table the workload belongs to: `wsgi`, `asgi` or `websocket`."""
        return "websocket" if self.websocket else self.interface


# Setting wrk.method/body/headers at the top level (and defining no request() function) keeps wrk
# on its pre-built request path, so the script costs nothing per request.
_CLOSE_LUA = 'wrk.headers["Connection"] = "close"\n'
_ECHO_LUA = (
    'wrk.method = "POST"\n'
    f'wrk.body = string.rep("x", {ECHO_BODY_BYTES})\n'
    'wrk.headers["Content-Type"] = "application/octet-stream"\n'
)

# A new request target on every request, so that no two heads a server sees are the same: a
# server that remembers heads it has parsed (corral does, http/readers.py) parses every one here.
# A request() function takes wrk off its pre-built request, at a cost in wrk's own CPU that every
# server pays alike.
_VARIED_LUA = (
    "local n = 0\n"
    'function setup(thread) thread:set("tag", tostring(math.random(1, 2^30))) end\n'
    "function request()\n"
    "  n = n + 1\n"
    '  return wrk.format(nil, "/?t=" .. tag .. "-" .. n)\n'
    "end\n"
)

WORKLOADS: tuple[Workload, ...] = (
    Workload("hello", "wsgi_apps:hello", 64, "13-byte body, keep-alive"),
    Workload("hello-close", "wsgi_apps:hello", 64, "13-byte body, `Connection: close`", _CLOSE_LUA),
    Workload("hello-varied", "wsgi_apps:hello", 64, "13-byte body, no head twice", _VARIED_LUA),
    Workload("io", "wsgi_apps:io", 256, "app sleeps 10 ms (a database call)"),
    Workload("cpu", "wsgi_apps:cpu", 64, "about 1 ms of pure-Python work"),
    Workload("big", "wsgi_apps:big", 16, "1 MiB response body"),
    Workload("echo", "wsgi_apps:echo", 16, "64 KiB POST body read, its length returned", _ECHO_LUA),
    Workload("flask", "flask_app:app", 64, "Flask hello route", needs="flask"),
    Workload("asgi-hello", "asgi_apps:hello", 64, "13-byte body, keep-alive", interface="asgi"),
    Workload(
        "ws-echo",
        "asgi_apps:ws_echo",
        32,
        "WebSocket echo of a 16-byte text message, one in flight per connection",
        interface="asgi",
        websocket=True,
    ),
    Workload(
        "ws-echo-deflate",
        "asgi_apps:ws_echo",
        32,
        "ws-echo with permessage-deflate offered by the client and agreed: every message "
        "compressed and inflated both ways",
        interface="asgi",
        websocket=True,
        deflate=True,
    ),
)

WORKLOAD_NAMES: tuple[str, ...] = tuple(w.name for w in WORKLOADS)


def select_workloads(names: list[str]) -> list[Workload]:
    """The workloads named, in the suite's order; an unknown name raises ValueError."""
    unknown = sorted(set(names) - set(WORKLOAD_NAMES))
    if unknown:
        raise ValueError(
            f"unknown workload(s): {', '.join(unknown)}; choose from {', '.join(WORKLOAD_NAMES)}"
        )
    return [w for w in WORKLOADS if w.name in names]
