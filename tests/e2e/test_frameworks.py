"""Real Flask and Django apps on the sync and threaded workers, and a gunicorn config file."""

from __future__ import annotations

import re
import shutil
import signal
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest

from tests.e2e.conftest import APPS, CorralProcess

Factory = Callable[..., CorralProcess]

WORKERS = {"sync": ["-k", "sync"], "threaded": ["-k", "threaded", "--threads", "4"]}


@dataclass(frozen=True)
class Expect:
    """What one framework's test app answers."""

    app: str
    index: str  # text within GET /
    form: str  # the form route
    form_status: int
    form_answer: Callable[[httpx.Response], object]
    form_expected: object
    stream: str  # the streamed route
    stream_body: str


APPS_UNDER_TEST = {
    "flask": Expect(
        "flask_app:app", "flask index", "/form", 200, lambda r: r.json(),
        {"name": "corral", "count": "3"}, "/stream", "".join(f"part {i}\n" for i in range(5)),
    ),
    "django": Expect(
        "django_project.wsgi:application", "served by wsgi", "/form/", 201, lambda r: r.text,
        "Hello, corral! (19 bytes)", "/stream/", "".join(f"line {i}\n" for i in range(5)),
    ),
}  # fmt: skip


@pytest.mark.parametrize("worker", sorted(WORKERS))
@pytest.mark.parametrize("framework", sorted(APPS_UNDER_TEST))
def test_framework_app(corral_factory: Factory, worker: str, framework: str) -> None:
    expect = APPS_UNDER_TEST[framework]
    server = corral_factory(*WORKERS[worker], "-w", "2", "-b", "127.0.0.1:0", expect.app)
    with httpx.Client(base_url=server.urls[0], timeout=10) as client:
        page = client.get("/")
        assert page.status_code == 200 and expect.index in page.text

        posted = client.post(expect.form, data={"name": "corral", "count": "3"})
        assert posted.status_code == expect.form_status
        assert expect.form_answer(posted) == expect.form_expected

        missing = client.get("/no/such/page")
        assert missing.status_code == 404

        with client.stream("GET", expect.stream) as streamed:
            assert streamed.status_code == 200
            assert streamed.headers.get("transfer-encoding") == "chunked"
            assert "".join(streamed.iter_text()) == expect.stream_body


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
