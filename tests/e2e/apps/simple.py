"""Tiny WSGI apps for the arbiter's e2e tests; each path is one behaviour a test needs.

- `/`            200, `hello from <pid>` (which worker answered)
- `/sleep?s=N`   logs `simple: sleeping <pid>` to stderr, sleeps N seconds, then answers
- `/hang`        never answers (a hung worker; the arbiter's timeout must end it)
- `/hang-hard`   the same, ignoring SIGABRT, so only SIGKILL ends it
- `/orphan`      double-forks a grandchild that outlives its parent by 0.5 s; answers its pid
- `/print?m=X`   writes X to stdout and stderr (capture_output, log reopening)
- `/spin?s=N`    runs Python code for N seconds (request_timeout stops it mid-loop)
- `/fail`        raises, so the worker answers 500
- `/grow?mb=N&s=S` keeps N more MiB alive in this worker, then sleeps as `/sleep?s=S` does
                 (memory-based recycling; without `s`, answers at once)
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Callable, Iterable
from urllib.parse import parse_qs

StartResponse = Callable[..., object]
HANG_SECONDS = 300  # far beyond any test's timeout: the arbiter has to end it


def app(environ: dict[str, object], start_response: StartResponse) -> Iterable[bytes]:
    path = str(environ.get("PATH_INFO", "/"))
    query = parse_qs(str(environ.get("QUERY_STRING", "")))
    handler = ROUTES.get(path, hello)
    body = handler(query)
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def hello(query: dict[str, list[str]]) -> bytes:
    return f"hello from {os.getpid()}".encode()


def sleep(query: dict[str, list[str]]) -> bytes:
    seconds = float(query.get("s", ["1"])[0])
    sys.stderr.write(f"simple: sleeping {os.getpid()}\n")
    sys.stderr.flush()
    time.sleep(seconds)
    return f"slept {seconds} in {os.getpid()}".encode()


def spin_in_python(query: dict[str, list[str]]) -> bytes:
    seconds = float(query.get("s", ["1"])[0])
    sys.stderr.write(f"simple: spinning {os.getpid()}\n")
    sys.stderr.flush()
    end = time.monotonic() + seconds
    turns = 0
    while time.monotonic() < end:
        turns += 1
    return f"spun {turns} turns in {os.getpid()}".encode()


def hang_forever_in_the_app(query: dict[str, list[str]]) -> bytes:
    sys.stderr.write(f"simple: hanging {os.getpid()}\n")
    sys.stderr.flush()
    time.sleep(HANG_SECONDS)
    return b"unreachable in the tests"


def hang_ignoring_abort(query: dict[str, list[str]]) -> bytes:
    signal.signal(signal.SIGABRT, signal.SIG_IGN)
    return hang_forever_in_the_app(query)


def orphan(query: dict[str, list[str]]) -> bytes:
    """Leave a grandchild behind: it is re-parented to the nearest subreaper (or PID 1)."""
    read_end, write_end = os.pipe()
    middle = os.fork()
    if middle == 0:
        os.close(read_end)
        grandchild = os.fork()
        if grandchild == 0:
            os.close(write_end)
            time.sleep(0.5)  # outlive the middle process, so someone else must reap us
            os._exit(0)
        os.write(write_end, str(grandchild).encode())
        os._exit(0)
    os.close(write_end)
    with os.fdopen(read_end, "rb") as pipe:
        pid = pipe.read().decode()
    os.waitpid(middle, 0)
    return pid.encode()


def print_both(query: dict[str, list[str]]) -> bytes:
    message = query.get("m", ["printed"])[0]
    print(f"stdout: {message}", flush=True)
    sys.stderr.write(f"stderr: {message}\n")
    sys.stderr.flush()
    return message.encode()


_KEPT: list[bytes] = []


def grow(query: dict[str, list[str]]) -> bytes:
    """Hold N MiB more for the life of the worker, written so that the pages are resident."""
    mib = int(query.get("mb", ["1"])[0])
    _KEPT.append(b"\x01" * (mib * 1024 * 1024))
    slept = sleep(query) + b", " if "s" in query else b""
    return slept + f"grew {os.getpid()} by {mib} MiB".encode()


def fail(query: dict[str, list[str]]) -> bytes:
    raise RuntimeError("simple: /fail asked for it")


ROUTES: dict[str, Callable[[dict[str, list[str]]], bytes]] = {
    "/": hello,
    "/sleep": sleep,
    "/hang": hang_forever_in_the_app,
    "/spin": spin_in_python,
    "/hang-hard": hang_ignoring_abort,
    "/orphan": orphan,
    "/print": print_both,
    "/grow": grow,
    "/fail": fail,
}
