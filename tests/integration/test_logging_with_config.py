"""The Logger built from the real Config that `corral.config.load` returns, with gunicorn flags."""

from __future__ import annotations

import json
import logging
import os
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from corral.config import load
from corral.logs import AccessRecord, Logger
from corral.metrics import NullMetrics


@pytest.fixture(autouse=True)
def isolated_logging() -> Iterator[None]:
    yield
    for name in ("corral.error", "corral.access"):
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()


def test_logger_from_command_line_settings(tmp_path: Path) -> None:
    access_path, error_path = tmp_path / "access.log", tmp_path / "error.log"
    argv = [
        "--access-logfile",
        str(access_path),
        "--access-logformat",
        "json",
        "--error-logfile",
        str(error_path),
        "--log-level",
        "debug",
    ]
    log = Logger(load(argv, {}))
    try:
        assert isinstance(log.metrics, NullMetrics)
        log.debug("booting worker")
        log.access(
            AccessRecord(
                remote_addr="127.0.0.1",
                remote_port=50000,
                method="GET",
                path="/",
                query="",
                http_version="1.1",
                status=200,
                response_length=2,
                request_headers=[("User-Agent", "t")],
                response_headers=[],
                start_time=time.time(),
                duration=0.001,
                pid=os.getpid(),
            )
        )
    finally:
        log.close()
    assert error_path.read_text(encoding="utf-8").rstrip("\n").endswith("[DEBUG] booting worker")
    [line] = access_path.read_text(encoding="utf-8").splitlines()
    assert json.loads(line)["user_agent"] == "t"


def test_default_settings_log_errors_to_stderr_only(capsys: pytest.CaptureFixture[str]) -> None:
    log = Logger(load([], {}))
    try:
        assert not log.access_enabled
        log.info("hello")
    finally:
        log.close()
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("[INFO] hello\n")
