"""`reload` while code is edited: a syntax error keeps the server up, include/exclude patterns."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.e2e.conftest import CorralProcess, wait_until

Start = Callable[..., CorralProcess]
RELOAD_WAIT = 10.0

WSGI = """
def app(environ, start_response):
    body = {text!r}.encode()
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""
ASGI = """
async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    body = {text!r}.encode()
    await send({{"type": "http.response.start", "status": 200, "headers": []}})
    await send({{"type": "http.response.body", "body": body}})
"""
BROKEN = "def app(environ, start_response:\n    pass\n"


def save(path: Path, text: str) -> None:
    """Write as an editor saves; the mtime moves on even within the clock's granularity."""
    before = path.stat().st_mtime if path.exists() else 0.0
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    if path.stat().st_mtime <= before:
        os.utime(path, (before + 0.01, before + 0.01))


def answer(server: CorralProcess) -> tuple[int, str] | str:
    """The response, or the error a request met (a refused connection would show here)."""
    try:
        return server.get(timeout=5)
    except OSError as exc:
        return repr(exc)


def until_served(server: CorralProcess, expected: tuple[int, str]) -> None:
    wait_until(lambda: answer(server), lambda got: got == expected, RELOAD_WAIT, server.log_text)


@pytest.mark.parametrize(
    ("worker", "engine"), [("sync", "inotify"), ("threaded", "poll"), ("asyncio", "auto")]
)
def test_a_syntax_error_keeps_serving_and_the_fix_reloads(
    corral_factory: Start, tmp_path: Path, worker: str, engine: str
) -> None:
    module = tmp_path / "live_app.py"
    code = ASGI if worker == "asyncio" else WSGI
    save(module, code.format(text="version one"))
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "-k", worker, "--reload", "--reload-engine", engine,
        "live_app:app",
    )  # fmt: skip
    until_served(server, (200, "version one"))

    save(module, BROKEN)
    server.wait_for(r"\[ERROR\] cannot import module 'live_app': SyntaxError", timeout=RELOAD_WAIT)
    server.wait_for(r"def app\(environ, start_response:")  # the offending line, in the log
    status, body = server.get()
    assert status == 500 and "failed to load" in body
    assert server.proc.poll() is None and len(server.worker_pids()) == 1

    save(module, code.format(text="version two"))
    until_served(server, (200, "version two"))
    assert server.proc.poll() is None
    assert "Shutting down" not in server.log_text()
    if engine == "inotify":  # watchfiles is in the test extra: no fallback to polling
        assert "polling" not in server.log_text()
    assert server.stop() == 0


def test_a_broken_module_imported_by_the_app_is_watched(
    corral_factory: Start, tmp_path: Path
) -> None:
    # The module that fails is not in sys.modules afterwards: only the failure names its file.
    helper = tmp_path / "helper.py"
    save(helper, "TEXT = 'from helper'\n")
    save(tmp_path / "uses_helper.py", "from helper import TEXT\n" + WSGI.format(text="")
         .replace("''.encode()", "TEXT.encode()"))  # fmt: skip
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "--reload", "uses_helper:app")
    until_served(server, (200, "from helper"))
    save(helper, "TEXT = 'unclosed\n")
    server.wait_for("SyntaxError", timeout=RELOAD_WAIT)
    assert server.get()[0] == 500
    save(helper, "TEXT = 'helper fixed'\n")
    until_served(server, (200, "helper fixed"))
    assert server.stop() == 0


def test_a_module_broken_at_start_is_served_as_500_until_fixed(
    corral_factory: Start, tmp_path: Path
) -> None:
    module = tmp_path / "live_app.py"
    save(module, BROKEN)
    server = corral_factory("-b", "127.0.0.1:0", "-w", "2", "--reload", "live_app:app")
    server.wait_for("SyntaxError", count=2, timeout=RELOAD_WAIT)
    assert server.get()[0] == 500
    save(module, WSGI.format(text="fixed"))
    until_served(server, (200, "fixed"))
    assert server.stop() == 0


def test_without_reload_a_syntax_error_still_stops_the_server(
    corral_factory: Start, tmp_path: Path
) -> None:
    save(tmp_path / "live_app.py", BROKEN)
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "live_app:app", wait=False)
    assert server.wait_exit() != 0
    assert "SyntaxError" in server.log_text()


@pytest.mark.parametrize("engine", ["inotify", "poll"])
def test_include_and_exclude_patterns(corral_factory: Start, tmp_path: Path, engine: str) -> None:
    save(tmp_path / "live_app.py", WSGI.format(text="same code"))
    page = tmp_path / "templates" / "page.html"
    draft = tmp_path / "templates" / "drafts" / "draft.html"
    notes = tmp_path / "notes.txt"
    for path in (page, draft, notes):
        save(path, "one")
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "--reload", "--reload-engine", engine,
        "--reload-include", "*.html", "--reload-exclude", "drafts", "live_app:app",
    )  # fmt: skip
    until_served(server, (200, "same code"))
    time.sleep(0.05)  # a later mtime than the worker's start, even on a coarse clock
    # Neither an excluded match nor a file no pattern names reloads; saved before the
    # included file, either would be the change the worker reports first.
    save(draft, "two")
    save(notes, "two")
    save(page, "two")
    reloading = server.wait_for("Worker reloading", timeout=RELOAD_WAIT)[0]
    assert reloading.string.endswith(f"{page} modified")
    server.wait_for("Booting worker", count=2)
    until_served(server, (200, "same code"))
    assert "draft.html" not in server.log_text() and "notes.txt" not in server.log_text()
    assert "polling" not in server.log_text()
    assert server.stop() == 0
