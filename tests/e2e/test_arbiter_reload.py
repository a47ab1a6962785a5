"""`reload`: a worker whose code or extra files change exits, and the arbiter respawns it."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from pathlib import Path

from tests.e2e.conftest import CorralProcess, wait_until

Start = Callable[..., CorralProcess]

APP = """
def app(environ, start_response):
    body = b"{text}"
    start_response("200 OK", [("Content-Length", str(len(body)))])
    return [body]
"""


def write_app(path: Path, text: str) -> None:
    path.write_text(APP.format(text=text))
    # A later mtime than any the reloader may have recorded, even on a coarse-clock filesystem.
    later = time.time() + 2
    os.utime(path, (later, later))


def test_code_change_respawns_the_worker(corral_factory: Start, tmp_path: Path) -> None:
    module = tmp_path / "live_app.py"
    write_app(module, "version one")
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "--reload", "live_app:app")
    assert server.get()[1] == "version one"
    first = server.worker_pids()
    write_app(module, "version two")
    server.wait_for(f"Worker reloading: {module} modified")
    server.wait_for("Booting worker", count=2)
    wait_until(lambda: server.get()[1], lambda text: text == "version two", 10)
    # A new worker process serves the new code; the old one is gone.
    assert server.worker_pids().isdisjoint(first)
    assert "WORKER TIMEOUT" not in server.log_text()
    assert server.stop() == 0


def test_extra_file_change_respawns_the_worker(corral_factory: Start, tmp_path: Path) -> None:
    module = tmp_path / "live_app.py"
    write_app(module, "same code")
    template = tmp_path / "page.html"
    template.write_text("<p>one</p>")
    server = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "--reload",
        "--reload-extra-file", str(template), "live_app:app",
    )  # fmt: skip
    assert server.get()[0] == 200
    template.write_text("<p>two</p>")
    later = time.time() + 2
    os.utime(template, (later, later))
    server.wait_for(f"Worker reloading: {template} modified")
    server.wait_for("Booting worker", count=2)
    assert server.get()[0] == 200
    assert server.stop() == 0
