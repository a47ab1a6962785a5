"""Real Flask and Django apps on the sync and threaded workers, and a gunicorn config file."""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import APPS, CorralProcess

Factory = Callable[..., CorralProcess]

WORKERS = {"sync": ["-k", "sync"], "threaded": ["-k", "threaded", "--threads", "4"]}
APPS_UNDER_TEST = {
    "flask": ("flask_app:app", "/", "flask index", "/form", "/stream"),
    "django": ("django_project.wsgi:application", "/", "django index", "/form/", "/stream/"),
}


@pytest.mark.parametrize("worker", sorted(WORKERS))
@pytest.mark.parametrize("framework", sorted(APPS_UNDER_TEST))
def test_framework_app(corral_factory: Factory, worker: str, framework: str) -> None:
    app, index, index_text, form, stream = APPS_UNDER_TEST[framework]
    server = corral_factory(*WORKERS[worker], "-w", "2", "-b", "127.0.0.1:0", app)
    base = server.urls[0]
    with httpx.Client(base_url=base, timeout=10) as client:
        page = client.get(index)
        assert page.status_code == 200 and index_text in page.text

        posted = client.post(form, data={"name": "corral", "count": "3"})
        assert posted.status_code == 200
        assert posted.json() == {"name": "corral", "count": "3"}

        missing = client.get("/no/such/page")
        assert missing.status_code == 404

        with client.stream("GET", stream) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers.get("transfer-encoding") == "chunked"
            assert "".join(streamed.iter_text()) == "".join(f"part {i}\n" for i in range(5))


def test_gunicorn_conf_from_a_deployment_runs_unchanged(
    corral_factory: Factory, tmp_path: Path
) -> None:
    conf = tmp_path / "gunicorn.conf.py"
    shutil.copy(APPS / "gunicorn.conf.py", conf)
    server = corral_factory("-c", str(conf), "flask_app:app")
    booted = server.wait_for(re.compile(r"hook: post_fork worker \d+"), count=2)
    assert len(booted) == 2
    assert server.matches("hook: on_starting") and server.matches("hook: when_ready")
    response = httpx.get(server.urls[0] + "/", timeout=10)
    assert response.status_code == 200 and response.text == "flask index"
    # The access log format from the file, with %(D)s appended, went to stdout.
    server.wait_for(re.compile(r'"GET / HTTP/1\.1" 200 11 "-" "python-httpx/[\d.]+" \d+$'))
    server.wait_for("hook: post_request /")
    server.signal(signal.SIGTERM)
    assert server.wait_exit() == 0
    assert server.matches(re.compile(r"hook: worker_exit \d+"))
