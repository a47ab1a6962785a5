"""Settings table, part 1: config file, sockets, worker processes, security limits."""

# ruff: noqa: RUF009  (setting() returns a dataclasses.Field, the documented way to attach
# metadata; it is not a default computed once and shared.)

from __future__ import annotations

from dataclasses import dataclass

from corral.config import parsers as p
from corral.config.spec import setting
from corral.config.worker_names import WORKER_CLASS


@dataclass
class ServerTable:
    """Config File, Server Socket, Worker Processes and Security settings."""

    # --- Config File -------------------------------------------------------------------------
    config: str | None = setting(
        None,
        section="Config File",
        parse=p.OPTIONAL_STRING,
        cli=("-c", "--config"),
        metavar="CONFIG",
        doc_default="./corral.conf.py, else ./gunicorn.conf.py, when the file exists",
        gunicorn_default="./gunicorn.conf.py",
        differs_because=(
            "corral reads its own ./corral.conf.py first and falls back to ./gunicorn.conf.py, "
            "so a gunicorn deployment works unchanged."
        ),
        help="""
        The Python config file to read: `PATH`, `file:PATH` or `python:MODULE`.

        The file is executed, as gunicorn executes it, and each module-level name that is a
        setting sets it. Other names are ignored, as in gunicorn, so helper variables, loops
        and imports are fine; a name close to a setting (`preload`, `acceslogformat`) gets one
        warning at start saying which setting it resembles, and names from old gunicorn
        versions (`debug`, `logfile`) a note. `strict_config` makes such names errors.
        Without this setting, `./corral.conf.py` is read when it exists, else
        `./gunicorn.conf.py`.
        """,
    )
    wsgi_app: str | None = setting(
        None,
        section="Config File",
        parse=p.OPTIONAL_STRING,
        help="""
        The application to serve: `module:attr`, `module:factory(args)` or `module`.

        The APP argument on the command line sets the same setting. Despite the name (kept
        from gunicorn) it may name an ASGI application too.
        """,
    )

    # --- Server Socket -----------------------------------------------------------------------
    bind: list[str] = setting(
        ["127.0.0.1:8000"],
        section="Server Socket",
        parse=p.BIND_LIST,
        cli=("-b", "--bind"),
        metavar="ADDRESS",
        mode="append",
        legacy_env="PORT",
        legacy_env_format="0.0.0.0:{}",
        doc_default="['127.0.0.1:8000'], or ['0.0.0.0:$PORT'] when PORT is set",
        help="""
        Addresses to listen on; repeat the flag to listen on several.

        Each is `HOST`, `HOST:PORT`, `[IPv6]:PORT`, `unix:PATH` or `fd://FD`. As in gunicorn,
        when the `PORT` environment variable is set the default becomes `0.0.0.0:$PORT`.
        """,
    )
    backlog: int = setting(
        2048,
        section="Server Socket",
        parse=p.POSITIVE_INT,
        cli=("--backlog",),
        metavar="INT",
        help="""
        The most connections the kernel queues before they are accepted.

        Beyond it, new clients are refused or retried by the kernel. The kernel may cap it
        (`net.core.somaxconn`).
        """,
    )

    # --- Worker Processes --------------------------------------------------------------------
    workers: int = setting(
        1,
        section="Worker Processes",
        parse=p.WORKERS,
        cli=("-w", "--workers"),
        metavar="INT|auto",
        legacy_env="WEB_CONCURRENCY",
        doc_default="1, or $WEB_CONCURRENCY when set",
        help="""
        The number of worker processes, or `auto` to size them to the machine.

        As in gunicorn, the `WEB_CONCURRENCY` environment variable (set by some hosting
        platforms) gives the default. `auto` (stored as 0) counts the CPUs this process may
        run on (its CPU affinity), capped by its cgroup's CPU quota, so a container limited to
        2 CPUs on a 64-CPU host gets 2, not 64; then it starts 2 x CPUs + 1 sync workers
        (gunicorn's rule of thumb: a sync worker cannot overlap one request's waits with
        another's) or one threaded or asyncio worker per CPU (they overlap waits inside each
        process). A fractional quota counts to the nearest whole CPU, at least one (1.4 is 1,
        1.6 is 2). A Kubernetes pod with a CPU request but no CPU limit has no quota, so it
        is sized to every CPU of its node: set a limit, or a number. The count is resolved
        before the first hook runs, so hooks and `--print-config` see the number, not 0; so
        `WEB_CONCURRENCY=0` also means auto. The arbiter logs the count it chose.
        """,
    )
    worker_class: str = setting(
        "sync",
        section="Worker Processes",
        parse=WORKER_CLASS,
        cli=("-k", "--worker-class"),
        metavar="STRING",
        help="""
        The worker type: `sync`, `threaded` (alias `gthread`) or `asyncio` (alias `asgi`).

        `sync` serves one connection at a time; `threaded` serves WSGI apps on a pool of
        threads; `asyncio` serves ASGI apps. As in gunicorn, `sync` with `threads` above 1
        runs the threaded worker. gunicorn's class paths for these workers are accepted, and
        so is the dotted path of a corral `Worker` subclass.
        """,
    )
    threads: int = setting(
        1,
        section="Worker Processes",
        parse=p.THREADS,
        cli=("--threads",),
        metavar="INT|auto",
        doc_default="1 (left unset, the threaded worker sizes its pool itself)",
        help="""
        The most requests one threaded worker serves at once: its pool holds at most this
        many threads, as in gunicorn, so an app may size its database pool to it. Threads
        start on demand, one at first, so a large value costs nothing under light load.

        Left unset, or `auto`, the threaded worker sizes its pool itself: it grows while every
        thread is busy waiting (not computing), up to `max_threads`. More than 1 (or `auto`)
        with the `sync` worker selects the threaded worker, as in gunicorn.
        """,
    )
    max_threads: int = setting(
        0,
        section="Worker Processes",
        parse=p.INT,
        cli=("--max-threads",),
        metavar="INT",
        corral_only=True,
        help="""
        Upper bound on a threaded worker's pool that sizes itself (`threads` unset or `auto`).

        The pool starts with one thread and grows while every thread is busy waiting (not
        computing): it doubles up to 128 threads, then grows by an eighth at a time. 0 means
        the automatic bound, 160 threads. With `threads` set to a number it raises the bound
        above `threads`, and must then be at least `threads`.
        """,
    )
    worker_connections: int = setting(
        1000,
        section="Worker Processes",
        parse=p.POSITIVE_INT,
        cli=("--worker-connections",),
        metavar="INT",
        help="""
        The most connections one threaded or asyncio worker keeps open at once.
        """,
    )
    cpu_affinity: str = setting(
        "exclusive",
        section="Worker Processes",
        parse=p.choice(("off", "auto", "exclusive")),
        cli=("--cpu-affinity",),
        metavar="off|auto|exclusive",
        corral_only=True,
        help="""
        Pin each worker process to one CPU: `auto` spreads the workers over the CPUs the
        arbiter may run on, fewest workers per CPU first; `off` leaves placement to the kernel.

        With every thread of a worker on one CPU, handing the GIL from thread to thread is a
        wake-up on the same CPU rather than across CPUs, which costs less (on the reference VM,
        ~3 µs against 17-22 µs when the other CPU is idle: the benchmark report's wake-up line).
        On the `io` benchmark (a threaded worker with 128 threads waiting on I/O) a request took
        about 20 % less CPU, and the rate rose by 10-22 % in the runs in turns.
        Use it when corral has the machine, or its cpuset, to itself and `workers` is about the
        number of CPUs; restrict the set with `taskset` or a cpuset on the arbiter. Leave it
        off on a shared host, or under a CPU quota without a cpuset (a Kubernetes pod with
        limits but no static CPU policy): a pinned worker cannot move off a CPU that others
        keep busy.

        `exclusive` (the default) pins as `auto` does only when the CPUs are this server's
        alone, and logs its verdict and why at start: when the kernel marks its cpuset
        exclusive (a cgroup v2 partition, v1's `cpu_exclusive`), or when it may use some of
        the machine's CPUs, not all, and any CPU quota matches their number (Kubernetes' static
        CPU manager gives a Guaranteed pod with whole CPUs just that; so does `taskset -c 2-3`
        or `docker --cpuset-cpus 2-3 --cpus 2`). On every CPU of a machine it does not pin.
        """,
    )
    max_requests: int = setting(
        0,
        section="Worker Processes",
        parse=p.INT,
        cli=("--max-requests", "--limit-max-requests"),
        metavar="INT",
        help="""
        Restart a worker after it has served this many requests; 0 disables.

        A simple bound on the damage of a memory leak in the application.
        """,
    )
    max_requests_jitter: int = setting(
        0,
        section="Worker Processes",
        parse=p.INT,
        cli=("--max-requests-jitter",),
        metavar="INT",
        help="""
        Add a random 0..N to each worker's `max_requests`.

        Spreads the restarts so that the workers do not all restart at the same moment.
        """,
    )
    max_worker_memory: int = setting(
        0,
        section="Worker Processes",
        parse=p.INT,
        cli=("--max-worker-memory",),
        metavar="MiB",
        corral_only=True,
        help="""
        Replace a worker whose resident memory (RSS) is over this many MiB; 0 disables.

        The arbiter reads each worker's RSS from `/proc` about once a second. A worker over the
        limit is replaced the way a reload replaces workers: a new worker boots first, then the
        old one stops taking connections, finishes the requests it has, and exits, so no
        request is dropped and the number of serving workers never dips. One worker is
        replaced at a time, and only once it has served 3 s since booting. A limit below what a
        fresh worker needs replaces a worker every few seconds, each time with a warning that
        gives its size and age. Unlike `max_requests`, this restarts only the workers that grew,
        and only when they have. Shared pages count in full, as in `ps`, so with
        `preload_app` set the limit above a fresh worker's RSS. Linux only (it needs `/proc`).
        """,
    )
    timeout: int = setting(
        30,
        section="Worker Processes",
        parse=p.INT,
        cli=("-t", "--timeout"),
        metavar="INT",
        help="""
        Kill a worker whose heartbeat is older than this many seconds; 0 disables.

        Each worker updates a heartbeat while it is responsive; a worker silent for longer
        is taken as hung. The arbiter sends it SIGABRT first (the worker logs every
        thread's stack), then SIGKILL, and starts a replacement.
        """,
    )
    request_timeout: float = setting(
        0.0,
        section="Worker Processes",
        parse=p.seconds(allow_zero=True),
        cli=("--request-timeout",),
        metavar="SECONDS",
        corral_only=True,
        help="""
        Stop a request that runs longer than this many seconds; 0 (the default) disables.

        The worker logs the request and the stack of the code serving it, so the log shows
        where it was stuck. A WSGI request then gets `RequestTimeout`, a `BaseException` (an
        app's `except Exception` does not swallow it; `finally` blocks and context managers
        run), raised where it is; the client gets 504 if no response had started, and the
        connection closes. On the sync worker the exception interrupts blocking calls too
        (`time.sleep`, socket reads). On the threaded worker it lands when the thread next runs
        Python code, so a thread blocked in a call that never returns keeps running: when a
        request has not stopped `request_timeout` seconds after it was told to, the worker
        logs its stack again and is replaced: a new worker boots first, then this one finishes
        its other requests and exits (the stuck thread ends with it, after `graceful_timeout`
        at most).

        An ASGI request's task is cancelled (the app sees `asyncio.CancelledError`). ASGI code
        that holds the event loop (a blocking call in an `async def`) is shown too: once the
        loop has not run for this long, the worker logs the stack of the code holding it and,
        when that code serves a request, raises `RequestTimeout` in it. A request is timed
        until its response is complete, so a streamed response (server-sent events, a long
        poll) is stopped at the limit too, while work after the last byte (Starlette's
        background tasks) is not. WebSocket connections are not timed.

        The stop is delivered with `SIGURG`, which the worker then owns: an app that embeds a
        runtime using it (Go's scheduler, in a cgo extension) cannot use this setting.

        Unlike `timeout`, which takes the whole worker and every request on it, this stops
        only the late request. Keep it below `timeout` for the sync worker, whose heartbeat
        stops while it serves a request.
        """,
    )
    graceful_timeout: int = setting(
        30,
        section="Worker Processes",
        parse=p.INT,
        cli=("--graceful-timeout", "--timeout-graceful-shutdown"),
        metavar="INT",
        help="""
        Seconds a worker has to finish its requests after a graceful stop or restart.

        Workers still running after that are killed.
        """,
    )
    health_check_path: str = setting(
        "",
        section="Worker Processes",
        parse=p.STRING,
        cli=("--health-check-path",),
        metavar="PATH",
        corral_only=True,
        help="""
        A path corral answers itself, without calling the app: `200 OK` while the server
        serves, `503` once it is shutting down (after TERM); empty (the default) disables.

        Point a readiness probe or a load balancer's health check at it (for instance
        `--health-check-path /healthz`), so that it stops sending new requests while the
        workers finish the ones they have and serve the connections already waiting. It
        matches the path exactly (the query is ignored), answers any method, is not written to
        the access log and is not counted in metrics. On a worker that is only being replaced
        (HUP, TTOU, max_requests) it still answers 200: the server as a whole is serving.
        """,
    )
    keepalive: int = setting(
        75,
        section="Worker Processes",
        parse=p.INT,
        cli=("--keep-alive", "--timeout-keep-alive"),
        metavar="INT",
        gunicorn_default="2",
        differs_because=(
            "load balancers keep idle upstream connections open for 60 s and more (AWS ALB "
            "60 s, nginx upstream keepalive 60 s); a server that closes first races the "
            "balancer's next request and turns it into a 502. corral's threaded and asyncio "
            "workers hold an idle connection without holding a thread, so a long idle "
            "timeout costs a file descriptor, not a worker."
        ),
        help="""
        Seconds an idle keep-alive connection is kept open waiting for the next request.

        The sync worker closes each connection after one response and ignores this.
        """,
    )
    interface: str = setting(
        "auto",
        section="Worker Processes",
        parse=p.choice(("auto", "wsgi", "asgi"), {"asgi3": "asgi", "asgi2": "asgi"}),
        cli=("--interface",),
        metavar="auto|wsgi|asgi",
        corral_only=True,
        help="""
        Whether the application is WSGI or ASGI; `auto` detects it.

        Detection: a coroutine function, an object whose `__call__` is a coroutine function,
        or an awaitable class is ASGI; anything else is WSGI. uvicorn's `asgi3` and `asgi2`
        mean `asgi`.
        """,
    )
    loop: str = setting(
        "auto",
        section="Worker Processes",
        parse=p.choice(("auto", "asyncio", "uvloop")),
        cli=("--loop",),
        metavar="auto|asyncio|uvloop",
        same_as="asgi_loop",
        help="""
        Event loop of the asyncio worker; `auto` uses uvloop when it is installed.

        gunicorn calls it `asgi_loop`, uvicorn `--loop`: setting either name sets both.
        """,
    )
    lifespan: str = setting(
        "auto",
        section="Worker Processes",
        parse=p.choice(("auto", "on", "off")),
        cli=("--lifespan",),
        metavar="auto|on|off",
        same_as="asgi_lifespan",
        help="""
        ASGI lifespan protocol: `on` requires it, `off` skips it, `auto` tries it.

        With `auto`, an application that does not support lifespan is served anyway; with
        `on`, a failed startup stops the worker. gunicorn calls it `asgi_lifespan`, uvicorn
        `--lifespan`: setting either name sets both.
        """,
    )

    # --- Security ----------------------------------------------------------------------------
    limit_request_line: int = setting(
        4094,
        section="Security",
        parse=p.INT,
        cli=("--limit-request-line",),
        metavar="INT",
        help="""
        Longest request line in bytes (method, target and version); longer gets 414.

        0 removes this limit; `limit_request_head` still bounds the whole head.
        """,
    )
    limit_request_fields: int = setting(
        100,
        section="Security",
        parse=p.INT,
        cli=("--limit-request-fields",),
        metavar="INT",
        help="""
        Most header fields in a request; more gets 431.

        0 allows up to 32768, gunicorn's own ceiling; `limit_request_head` still bounds the head.
        """,
    )
    limit_request_field_size: int = setting(
        8190,
        section="Security",
        parse=p.INT,
        cli=("--limit-request-field_size", "--limit-request-field-size"),
        metavar="INT",
        help="""
        Longest header field line in bytes; longer gets 431.

        0 removes this limit; `limit_request_head` still bounds the whole head.
        """,
    )
    limit_request_head: int = setting(
        65536,
        section="Security",
        parse=p.POSITIVE_INT,
        cli=("--limit-request-head",),
        metavar="INT",
        corral_only=True,
        help="""
        Largest request head in bytes (request line and every header); larger gets 431.

        Bounds the memory one connection can make the server hold before the application
        sees the request, whatever the per-line limits are.
        """,
    )
    limit_request_body: int = setting(
        0,
        section="Security",
        parse=p.INT,
        cli=("--limit-request-body",),
        metavar="INT",
        corral_only=True,
        help="""
        Largest request body in bytes; larger gets 413. 0 means no limit.

        The default is no limit, as in gunicorn: the body is streamed to the application,
        never held whole in memory, so size alone costs the server nothing, and a default
        limit would break uploads that work under gunicorn. Set it when no proxy in front
        of corral limits bodies.
        """,
    )
    require_host: bool = setting(
        True,
        section="Security",
        parse=p.BOOL,
        cli=("--require-host",),
        mode="toggle",
        corral_only=True,
        help="""
        Reject HTTP/1.1 requests without exactly one valid Host header with 400.

        RFC 9112 section 3.2 requires this of a server.
        """,
    )
