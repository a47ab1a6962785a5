"""Settings table, part 5: gunicorn 27's newer names, the control socket, features corral lacks."""

# ruff: noqa: RUF009  (setting() returns a dataclasses.Field, the documented way to attach
# metadata; it is not a default computed once and shared.)

from __future__ import annotations

from dataclasses import dataclass

from corral.config import parsers as p
from corral.config.spec import setting
from corral.config.table_hooks import default_hook

N = "Not Implemented"
_NO_EFFECT = "corral accepts it so that gunicorn config files load; it has no effect."
_HTTP_PROTOCOLS = ("h1", "h2")


def _http_protocols(value: object) -> list[str]:
    # gunicorn's rule: comma-separated, in order of preference; empty means h1.
    items = [item.lower() for item in p.COMMA_LIST(value)] or ["h1"]
    for item in items:
        if item not in _HTTP_PROTOCOLS:
            raise p.Invalid("expected a comma-separated list of h1, h2")
    return items


_CLEARTEXT = p.choice(("off", "prior-knowledge", "upgrade", "both"))


def _http2_cleartext(value: object) -> str:
    # As in gunicorn, True means prior-knowledge and False (or None) means off.
    if value is None or isinstance(value, bool):
        return "prior-knowledge" if value else "off"
    return _CLEARTEXT(value)


def _ranged(low: int, high: int) -> p.Parser[int]:
    def convert(value: object) -> int:
        number = p.INT(value)
        if not low <= number <= high:
            raise p.Invalid(f"expected an integer from {low} to {high}")
        return number

    return p.Parser(f"an integer from {low} to {high}", convert)


def _mode(value: object) -> int:
    try:
        return p.UMASK(value)
    except p.Invalid:
        raise p.Invalid("expected a file mode such as 0o600 or 0600") from None


_MODE = p.Parser("octal mode", _mode)
_ASGI_LOOP = p.choice(("auto", "asyncio", "uvloop"))
_ASGI_LIFESPAN = p.choice(("auto", "on", "off"))


@dataclass
class CompatTable:
    """strict_config, root_path, gunicorn's asgi_* names, the control socket, and the gunicorn
    features corral lacks."""

    strict_config: bool = setting(
        False,
        section="Config File",
        parse=p.BOOL,
        cli=("--strict-config",),
        mode="true",
        corral_only=True,
        help="""
        Make an unknown name in the config file (or a misspelt `CORRAL_*` variable) an error.

        Without it, corral reads config files as gunicorn does: a module-level name that is not
        a setting is ignored, so helper variables (`cores = multiprocessing.cpu_count()`),
        loop variables and imports never stop the server. A name close to a setting
        (`preload` for `preload_app`, `acceslogformat` for `access_log_format`, a function
        `post_forks`) is ignored too, with one warning at start that names the setting it
        resembles; `--check-config` lists these warnings. Names from old gunicorn versions
        (`debug`, `logfile`...) are ignored with a note. With `strict_config`, every such name
        that holds plain data (a number, string, list, dict...) or a near-miss function stops
        corral with one line naming it and the file; names starting with `_`, ALL_CAPS
        constants, modules, classes and other objects are still ignored.
        """,
    )
    root_path: str = setting(
        "",
        section="Server Mechanics",
        parse=p.STRING,
        cli=("--root-path",),
        metavar="PATH",
        help="""
        The path the application is mounted at behind a proxy (`/api`), as in gunicorn and
        uvicorn.

        ASGI apps get it as the scope's `root_path` (the `path` is left as received, as in
        gunicorn); WSGI apps get it as `SCRIPT_NAME`, and `PATH_INFO` loses that prefix when
        the request's path starts with it. Empty (the default) falls back to the
        `SCRIPT_NAME` environment variable, as in gunicorn.
        """,
    )
    asgi_loop: str = setting(
        "auto",
        section="Worker Processes",
        parse=_ASGI_LOOP,
        cli=("--asgi-loop",),
        metavar="auto|asyncio|uvloop",
        same_as="loop",
        help="""
        gunicorn's name for `loop`: setting either sets both.
        """,
    )
    asgi_lifespan: str = setting(
        "auto",
        section="Worker Processes",
        parse=_ASGI_LIFESPAN,
        cli=("--asgi-lifespan",),
        metavar="auto|on|off",
        same_as="lifespan",
        help="""
        gunicorn's name for `lifespan`: setting either sets both.
        """,
    )
    asgi_disconnect_grace_period: int = setting(
        3,
        section="Worker Processes",
        parse=p.INT,
        cli=("--asgi-disconnect-grace-period",),
        metavar="INT",
        help="""
        Seconds gunicorn's ASGI worker lets a request run after its client left, before it
        cancels the request's task. Accepted; it changes nothing in corral.

        corral's asyncio worker never cancels a request because its client left: the app's
        `receive()` returns `http.disconnect` and the app finishes its cleanup in its own time.
        Bound a request's whole run with `request_timeout` instead.
        """,
    )

    # --- the control socket (gunicornc, corral ctl) -----------------------------------------
    control_socket: str = setting(
        "",
        section="Control",
        parse=p.STRING,
        cli=("--control-socket",),
        metavar="PATH",
        doc_default="$XDG_RUNTIME_DIR/gunicorn.ctl, else $HOME/.gunicorn/gunicorn.ctl",
        help="""
        The Unix socket of the control interface, for `corral ctl` and gunicorn's `gunicornc`.

        Commands sent there show the workers, the settings, statistics and listeners, add,
        remove or retire workers, and reload, reopen the logs or stop the server, as the
        signals do (see docs/deploy.md, "The control socket"). The default is gunicorn's:
        `$XDG_RUNTIME_DIR/gunicorn.ctl` when that directory exists, else
        `$HOME/.gunicorn/gunicorn.ctl` (the directory is made, mode 0700, if missing), so
        `gunicornc` and `corral ctl` find it without `-s`. A relative path is taken from the
        working directory after `chdir`. A socket file already there is replaced, as gunicorn
        does (a warning says so when a live server held it); a socket that cannot be made is a
        warning, and the server runs without one. On a USR2 upgrade the new master takes the
        path over; the old one never removes the new one's socket. An empty path, like
        `control_socket_disable`, means no socket (and is what a `Config()` made in code
        without `corral.config.load` holds: the default path comes from the environment
        `load` is given).
        """,
    )
    control_socket_mode: int = setting(
        0o600,
        section="Control",
        parse=_MODE,
        cli=("--control-socket-mode",),
        metavar="INT",
        doc_default="0o600 (384)",
        help="""
        Permissions of the control socket file: who may connect.

        The default, `0600`, lets only the server's own user (and root) in; `0660` also lets in
        the members of the file's group, `0666` anyone. The arbiter also checks each
        connection's credentials (SO_PEERCRED) against this setting, so a file whose mode is
        widened after it was made admits no one more.
        """,
    )
    control_socket_disable: bool = setting(
        False,
        section="Control",
        parse=p.BOOL,
        cli=("--no-control-socket",),
        mode="true",
        help="""
        Create no control socket: `corral ctl` and `gunicornc` cannot reach this server.
        """,
    )

    # --- HTTP/2 (gunicorn 27's names and defaults) ---------------------------------------------
    http_protocols: list[str] = setting(
        ["h1"],
        section="HTTP/2",
        parse=p.Parser("comma-separated list of h1, h2", _http_protocols),
        cli=("--http-protocols",),
        metavar="STRING",
        help="""
        HTTP versions to serve, in order of preference: `h1`, `h2` or both (`h2,h1`). With
        `h2`, TLS connections offer it by ALPN, and `http2_cleartext` may allow it without
        TLS. Served by the threaded and asyncio workers (the sync worker stays on HTTP/1.1
        and says so at boot); needs the `h2` library (`pip install 'corral[h2]'`).
        """,
    )
    http2_cleartext: str = setting(
        "off",
        section="HTTP/2",
        parse=p.Parser(_CLEARTEXT.type_name, _http2_cleartext),
        cli=("--http2-cleartext",),
        metavar="STRING",
        help="""
        HTTP/2 without TLS (h2c): `prior-knowledge` (the client starts with the HTTP/2
        preface, as `curl --http2-prior-knowledge` and proxies such as nginx's `grpc_pass`
        do), `upgrade` (an HTTP/1.1 request with `Upgrade: h2c`, RFC 7540 §3.2), `both`, or
        `off`. Needs `h2` in `http_protocols`.
        """,
    )
    http2_max_concurrent_streams: int = setting(
        100,
        section="HTTP/2",
        parse=p.POSITIVE_INT,
        cli=("--http2-max-concurrent-streams",),
        metavar="INT",
        help="Streams a client may have open at once on one connection (SETTINGS).",
    )
    http2_initial_window_size: int = setting(
        65535,
        section="HTTP/2",
        parse=_ranged(0, 2**31 - 1),
        cli=("--http2-initial-window-size",),
        metavar="INT",
        help="""
        Bytes of request body a client may send on a stream before the app reads them
        (flow control, RFC 9113 §6.9).
        """,
    )
    http2_max_frame_size: int = setting(
        16384,
        section="HTTP/2",
        parse=_ranged(16384, 16777215),
        cli=("--http2-max-frame-size",),
        metavar="INT",
        help="Largest frame payload a client may send.",
    )
    http2_max_header_list_size: int = setting(
        65536,
        section="HTTP/2",
        parse=p.INT,
        cli=("--http2-max-header-list-size",),
        metavar="INT",
        help="""
        Largest request header list, decoded (HPACK), and bound on a header block's size
        across CONTINUATION frames; a client over it loses its connection.
        """,
    )

    # --- gunicorn features corral lacks -----------------------------------------------------
    http_parser: str = setting(
        "auto",
        section=N,
        parse=p.choice(("auto", "fast", "python")),
        cli=("--http-parser",),
        metavar="auto|fast|python",
        help=f"Which of gunicorn's HTTP parsers to use. corral has its own; {_NO_EFFECT}",
    )
    protocol: str = setting(
        "http",
        section=N,
        parse=p.choice(("http", "uwsgi")),
        cli=("--protocol",),
        metavar="http|uwsgi",
        unsupported="corral speaks HTTP only; point nginx at it with proxy_pass, not uwsgi_pass",
        help="The protocol of incoming connections: `http` only.",
    )
    uwsgi_allow_ips: list[str] = setting(
        ["127.0.0.1", "::1"],
        section=N,
        parse=p.ADDRESS_LIST,
        cli=("--uwsgi-allow-from",),
        metavar="STRING",
        help=f"Peers allowed to speak uWSGI. {_NO_EFFECT}",
    )
    dirty_apps: list[str] = setting(
        [],
        section=N,
        parse=p.STRING_LIST,
        cli=("--dirty-app",),
        metavar="STRING",
        mode="append",
        help="""
        Apps for gunicorn's dirty worker pool. corral has no dirty workers: together with
        `dirty_workers` above 0 it stops corral with an error; alone it has no effect, as in
        gunicorn.
        """,
    )
    dirty_workers: int = setting(
        0,
        section=N,
        parse=p.INT,
        cli=("--dirty-workers",),
        metavar="INT",
        help="gunicorn's dirty worker processes; see `dirty_apps`.",
    )
    dirty_timeout: int = setting(
        300,
        section=N,
        parse=p.INT,
        cli=("--dirty-timeout",),
        metavar="INT",
        help=f"A dirty worker setting. {_NO_EFFECT}",
    )
    dirty_threads: int = setting(
        1,
        section=N,
        parse=p.INT,
        cli=("--dirty-threads",),
        metavar="INT",
        help=f"A dirty worker setting. {_NO_EFFECT}",
    )
    dirty_graceful_timeout: int = setting(
        30,
        section=N,
        parse=p.INT,
        cli=("--dirty-graceful-timeout",),
        metavar="INT",
        help=f"A dirty worker setting. {_NO_EFFECT}",
    )
    on_dirty_starting: p.Hook = setting(
        default_hook,
        section=N,
        parse=p.hook(1),
        help="`on_dirty_starting(arbiter)`: a dirty worker hook; corral never calls it.",
    )
    dirty_post_fork: p.Hook = setting(
        default_hook,
        section=N,
        parse=p.hook(2),
        help="`dirty_post_fork(arbiter, worker)`: a dirty worker hook; corral never calls it.",
    )
    dirty_worker_init: p.Hook = setting(
        default_hook,
        section=N,
        parse=p.hook(1),
        help="`dirty_worker_init(worker)`: a dirty worker hook; corral never calls it.",
    )
    dirty_worker_exit: p.Hook = setting(
        default_hook,
        section=N,
        parse=p.hook(2),
        help="`dirty_worker_exit(arbiter, worker)`: a dirty worker hook; corral never calls it.",
    )
