"""Logger against real files and streams: formats, levels, reopen, logging configs, capture."""

from __future__ import annotations

import json
import logging
import os
import re
import sys
import textwrap
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

from corral.logs import AccessRecord, Logger

ERROR_LINE = re.compile(
    r"^\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] "
    r"\[(?P<pid>\d+)\] \[(?P<level>[A-Z]+)\] (?P<msg>.*)$"
)


@dataclass
class Cfg:
    accesslog: str | None = None
    errorlog: str = "-"
    loglevel: str = "info"
    access_log_format: str = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'
    capture_output: bool = False
    logconfig: str | None = None
    logconfig_dict: dict[str, Any] = field(default_factory=dict)
    logconfig_json: str | None = None
    syslog: bool = False
    syslog_addr: str = "udp://localhost:514"
    syslog_prefix: str | None = None
    syslog_facility: str = "user"
    disable_redirect_access_to_syslog: bool = False
    proc_name: str | None = None
    statsd_host: str | None = None
    statsd_prefix: str = ""
    dogstatsd_tags: str = ""


def record(**overrides: Any) -> AccessRecord:
    fields: dict[str, Any] = {
        "remote_addr": "127.0.0.1",
        "remote_port": 40000,
        "method": "GET",
        "path": "/hello",
        "query": "",
        "http_version": "1.1",
        "status": 200,
        "response_length": 13,
        "request_headers": [("Host", "localhost"), ("User-Agent", "test-agent")],
        "response_headers": [("Content-Length", "13")],
        "start_time": time.time(),
        "duration": 0.002,
        "pid": os.getpid(),
    }
    fields.update(overrides)
    return AccessRecord(**fields)


@pytest.fixture(autouse=True)
def isolated_logging() -> Iterator[None]:
    """Logger and logging.config change process-wide state; put it back after each test."""
    root = logging.getLogger()
    saved_handlers, saved_level = list(root.handlers), root.level
    yield
    for name in ("corral.error", "corral.access", "gunicorn.error", "gunicorn.access", "myapp"):
        log = logging.getLogger(name)
        for handler in list(log.handlers):
            log.removeHandler(handler)
            handler.close()
        log.setLevel(logging.NOTSET)
        log.propagate = True
        log.disabled = False
    for handler in list(root.handlers):
        if handler not in saved_handlers:
            handler.close()
    root.handlers[:] = saved_handlers
    root.setLevel(saved_level)


@pytest.fixture
def make_logger() -> Iterator[Callable[..., Logger]]:
    made: list[Logger] = []

    def make(**settings: Any) -> Logger:
        log = Logger(Cfg(**settings))
        made.append(log)
        return log

    yield make
    for log in made:
        log.close()


def lines(path: Path) -> list[str]:
    return path.read_text(encoding="utf-8").splitlines() if path.exists() else []


def test_error_log_line_format(tmp_path: Path, make_logger: Callable[..., Logger]) -> None:
    path = tmp_path / "error.log"
    log = make_logger(errorlog=str(path))
    log.info("Listening at: %s (%s)", "http://127.0.0.1:8000", 123)
    [line] = lines(path)
    match = ERROR_LINE.match(line)
    assert match is not None, line
    assert match["pid"] == str(os.getpid())
    assert match["level"] == "INFO"
    assert match["msg"] == "Listening at: http://127.0.0.1:8000 (123)"


def test_error_log_defaults_to_stderr(
    capsys: pytest.CaptureFixture[str], make_logger: Callable[..., Logger]
) -> None:
    log = make_logger()
    log.error("boom %d", 7)
    captured = capsys.readouterr()
    assert captured.out == ""
    assert captured.err.endswith("[ERROR] boom 7\n")


@pytest.mark.parametrize(
    ("loglevel", "expected"),
    [
        ("debug", ["DEBUG d", "INFO i", "WARNING w", "ERROR e", "CRITICAL c"]),
        ("info", ["INFO i", "WARNING w", "ERROR e", "CRITICAL c"]),
        ("warning", ["WARNING w", "ERROR e", "CRITICAL c"]),
        ("ERROR", ["ERROR e", "CRITICAL c"]),
        ("critical", ["CRITICAL c"]),
    ],
)
def test_loglevel_filters(
    tmp_path: Path, make_logger: Callable[..., Logger], loglevel: str, expected: list[str]
) -> None:
    path = tmp_path / "error.log"
    log = make_logger(errorlog=str(path), loglevel=loglevel)
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    log.critical("c")
    found = [ERROR_LINE.match(line) for line in lines(path)]
    assert [f"{m['level']} {m['msg']}" for m in found if m] == expected


def test_log_accepts_a_level_name_or_number(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    path = tmp_path / "error.log"
    log = make_logger(errorlog=str(path))
    log.log("warning", "by name")
    log.log(logging.ERROR, "by number")
    assert [line.split("] ", 3)[-1] for line in lines(path)] == ["by name", "by number"]


def test_exception_includes_the_traceback(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    path = tmp_path / "error.log"
    log = make_logger(errorlog=str(path))
    try:
        raise RuntimeError("app failed")
    except RuntimeError:
        log.exception("Error handling request /x")
    text = path.read_text(encoding="utf-8")
    assert "[ERROR] Error handling request /x\nTraceback (most recent call last):" in text
    assert "RuntimeError: app failed" in text


def test_invalid_settings_raise_value_error(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    with pytest.raises(ValueError, match="loglevel"):
        make_logger(loglevel="chatty")
    with pytest.raises(ValueError, match="cannot open log file"):
        make_logger(errorlog=str(tmp_path / "missing-dir" / "error.log"))
    with pytest.raises(ValueError, match="access_log_format"):
        make_logger(access_log_format="%(h)s %s")
    with pytest.raises(ValueError, match="logconfig"):
        make_logger(accesslog="-", logconfig=str(tmp_path / "missing.ini"))
    assert logging.getLogger("corral.error").handlers == []
    assert logging.getLogger("corral.access").handlers == []


def test_access_log_to_file(tmp_path: Path, make_logger: Callable[..., Logger]) -> None:
    path = tmp_path / "access.log"
    log = make_logger(accesslog=str(path))
    assert log.access_enabled
    log.access(record(path="/a", query="x=1", status=404, response_length=9))
    log.access(record(path="/b", method="POST"))
    [first, second] = lines(path)
    assert re.fullmatch(
        r'127\.0\.0\.1 - - \[[^]]+\] "GET /a\?x=1 HTTP/1\.1" 404 9 "-" "test-agent"', first
    )
    assert '"POST /b HTTP/1.1" 200 13' in second


def test_access_log_dash_goes_to_stdout(
    capsys: pytest.CaptureFixture[str], make_logger: Callable[..., Logger]
) -> None:
    log = make_logger(accesslog="-", access_log_format="%(m)s %(U)s %(s)s")
    log.access(record())
    captured = capsys.readouterr()
    assert captured.out == "GET /hello 200\n"
    assert captured.err == ""


def test_access_log_off_by_default(
    capsys: pytest.CaptureFixture[str], make_logger: Callable[..., Logger]
) -> None:
    log = make_logger()
    assert not log.access_enabled
    log.access(record())
    assert capsys.readouterr() == ("", "")


def test_json_access_format(tmp_path: Path, make_logger: Callable[..., Logger]) -> None:
    path = tmp_path / "access.log"
    log = make_logger(accesslog=str(path), access_log_format="json")
    log.access(record(request_headers=[("X-Request-ID", "abc")], status=201))
    [line] = lines(path)
    doc = json.loads(line)
    assert (doc["status"], doc["request_id"], doc["method"]) == (201, "abc", "GET")


def test_handlers_added_through_logging_also_get_access_lines(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    path = tmp_path / "access.log"
    log = make_logger(accesslog=str(path), access_log_format="%(U)s")
    seen: list[str] = []

    class Collect(logging.Handler):
        def emit(self, rec: logging.LogRecord) -> None:
            seen.append(rec.getMessage())

    extra = Collect()
    logging.getLogger("corral.access").addHandler(extra)
    log.access(record(path="/one"))
    logging.getLogger("corral.access").removeHandler(extra)
    log.access(record(path="/two"))
    assert seen == ["/one"]
    assert lines(path) == ["/one", "/two"]


def test_access_log_failure_goes_to_the_error_log(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    error_path, access_path = tmp_path / "error.log", tmp_path / "access.log"
    log = make_logger(
        errorlog=str(error_path), accesslog=str(access_path), access_log_format="%(s)d"
    )
    log.access(record(status="200 OK", path="/broken"))  # a record the format cannot render
    assert lines(access_path) == []
    assert "[ERROR] access log failed for GET /broken" in error_path.read_text(encoding="utf-8")


def test_reopen_files_after_rename(tmp_path: Path, make_logger: Callable[..., Logger]) -> None:
    error_path, access_path = tmp_path / "error.log", tmp_path / "access.log"
    log = make_logger(
        errorlog=str(error_path), accesslog=str(access_path), access_log_format="%(U)s"
    )
    log.info("before")
    log.access(record(path="/before"))
    error_path.rename(tmp_path / "error.log.1")
    access_path.rename(tmp_path / "access.log.1")
    log.info("still old file")  # what logrotate sees between its rename and the USR1
    log.reopen_files()
    log.info("after")
    log.access(record(path="/after"))
    assert [line.rsplit("] ", 1)[-1] for line in lines(tmp_path / "error.log.1")] == [
        "before",
        "still old file",
    ]
    assert lines(tmp_path / "access.log.1") == ["/before"]
    assert [line.rsplit("] ", 1)[-1] for line in lines(error_path)] == ["after"]
    assert lines(access_path) == ["/after"]


def test_reopen_covers_handlers_from_a_logging_config(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    app_path = tmp_path / "app.log"
    log = make_logger(
        logconfig_dict={
            "version": 1,
            "handlers": {"app": {"class": "logging.FileHandler", "filename": str(app_path)}},
            "loggers": {"myapp": {"level": "INFO", "handlers": ["app"], "propagate": False}},
        }
    )
    logging.getLogger("myapp").info("one")
    app_path.rename(tmp_path / "app.log.1")
    log.reopen_files()
    logging.getLogger("myapp").info("two")
    assert lines(tmp_path / "app.log.1") == ["one"]
    assert lines(app_path) == ["two"]


def test_reopen_failure_is_logged_and_old_stream_kept(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    logdir = tmp_path / "logs"
    logdir.mkdir()
    access_path = logdir / "access.log"
    error_path = tmp_path / "error.log"
    log = make_logger(
        errorlog=str(error_path), accesslog=str(access_path), access_log_format="%(U)s"
    )
    access_path.rename(tmp_path / "access.log.1")
    logdir.rmdir()  # the old path can no longer be created
    log.reopen_files()
    log.access(record(path="/kept"))
    assert "cannot reopen log file" in error_path.read_text(encoding="utf-8")
    assert lines(tmp_path / "access.log.1") == ["/kept"]


def test_close_detaches_handlers(tmp_path: Path) -> None:
    path = tmp_path / "access.log"
    log = Logger(Cfg(accesslog=str(path), access_log_format="%(U)s"))
    log.access(record(path="/open"))
    log.close()
    log.access(record(path="/closed"))
    assert not log.access_enabled
    assert logging.getLogger("corral.access").handlers == []
    assert lines(path) == ["/open"]


def test_a_new_logger_replaces_the_previous_ones_handlers(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    path = tmp_path / "error.log"
    make_logger(errorlog=str(path))
    second = make_logger(errorlog=str(path))
    second.info("once")
    assert [line.rsplit("] ", 1)[-1] for line in lines(path)] == ["once"]


def dict_config(
    error_path: Path, access_path: Path, error_name: str, access_name: str
) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s %(levelname)s %(funcName)s %(message)s"}},
        "handlers": {
            "err": {
                "class": "logging.FileHandler",
                "filename": str(error_path),
                "formatter": "plain",
            },
            "acc": {
                "class": "logging.FileHandler",
                "filename": str(access_path),
                "formatter": "plain",
            },
        },
        "loggers": {
            error_name: {"level": "DEBUG", "handlers": ["err"], "propagate": False},
            access_name: {"level": "INFO", "handlers": ["acc"], "propagate": False},
        },
    }


@pytest.mark.parametrize(
    ("error_name", "access_name"),
    [("gunicorn.error", "gunicorn.access"), ("corral.error", "corral.access")],
)
def test_logconfig_dict_configures_our_loggers_by_either_name(
    tmp_path: Path, make_logger: Callable[..., Logger], error_name: str, access_name: str
) -> None:
    error_path, access_path = tmp_path / "error.log", tmp_path / "access.log"
    log = make_logger(
        logconfig_dict=dict_config(error_path, access_path, error_name, access_name),
        access_log_format="%(m)s %(U)s",
    )
    assert log.access_enabled
    log.debug("details")
    log.access(record())
    fn = "test_logconfig_dict_configures_our_loggers_by_either_name"
    assert lines(error_path) == [f"corral.error DEBUG {fn} details"]
    assert lines(access_path) == ["corral.access INFO access GET /hello"]
    # gunicorn's name shares corral's handlers (no second set that would print twice).
    assert (
        logging.getLogger("gunicorn.error").handlers is logging.getLogger("corral.error").handlers
    )


def test_logconfig_dict_without_our_loggers_keeps_the_errorlog_file(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    error_path, app_path = tmp_path / "error.log", tmp_path / "app.log"
    log = make_logger(
        errorlog=str(error_path),
        logconfig_dict={
            "version": 1,
            "handlers": {"app": {"class": "logging.FileHandler", "filename": str(app_path)}},
            "loggers": {"myapp": {"level": "INFO", "handlers": ["app"], "propagate": False}},
        },
    )
    log.info("server line")
    logging.getLogger("myapp").info("app line")
    assert [line.rsplit("] ", 1)[-1] for line in lines(error_path)] == ["server line"]
    assert lines(app_path) == ["app line"]


def test_logconfig_dict_error_names_the_setting(make_logger: Callable[..., Logger]) -> None:
    with pytest.raises(ValueError, match="logconfig_dict"):
        make_logger(logconfig_dict={"version": 1, "handlers": {"h": {"class": "no.such.Class"}}})


def test_logconfig_json(tmp_path: Path, make_logger: Callable[..., Logger]) -> None:
    error_path, access_path = tmp_path / "error.log", tmp_path / "access.log"
    config_path = tmp_path / "logging.json"
    config = dict_config(error_path, access_path, "gunicorn.error", "gunicorn.access")
    config_path.write_text(json.dumps(config), encoding="utf-8")
    log = make_logger(logconfig_json=str(config_path), access_log_format="%(U)s")
    log.warning("careful")
    log.access(record(path="/j"))
    assert lines(error_path) == ["corral.error WARNING test_logconfig_json careful"]
    assert lines(access_path) == ["corral.access INFO access /j"]


def test_logconfig_json_errors(tmp_path: Path, make_logger: Callable[..., Logger]) -> None:
    bad = tmp_path / "bad.json"
    bad.write_text("[1, 2]", encoding="utf-8")
    with pytest.raises(ValueError, match="expected a JSON object"):
        make_logger(logconfig_json=str(bad))
    with pytest.raises(ValueError, match="logconfig_json"):
        make_logger(logconfig_json=str(tmp_path / "missing.json"))


def test_logconfig_ini_with_gunicorn_qualnames(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    error_path, access_path = tmp_path / "error.log", tmp_path / "access.log"
    ini = tmp_path / "logging.ini"
    ini.write_text(
        textwrap.dedent(
            f"""\
            [loggers]
            keys=root, gunicorn.error, gunicorn.access

            [handlers]
            keys=err, acc

            [formatters]
            keys=plain

            [logger_root]
            level=WARNING
            handlers=

            [logger_gunicorn.error]
            level=INFO
            handlers=err
            propagate=0
            qualname=gunicorn.error

            [logger_gunicorn.access]
            level=INFO
            handlers=acc
            propagate=0
            qualname=gunicorn.access

            [handler_err]
            class=FileHandler
            formatter=plain
            args=({str(error_path)!r}, 'a')

            [handler_acc]
            class=FileHandler
            formatter=plain
            args=('%(here)s/access.log', 'a')

            [formatter_plain]
            format=%(name)s %(levelname)s %(message)s
            """
        ),
        encoding="utf-8",
    )
    log = make_logger(logconfig=str(ini), access_log_format="%(U)s")
    log.info("from ini")
    log.access(record(path="/ini"))
    assert lines(error_path) == ["corral.error INFO from ini"]
    assert lines(access_path) == ["corral.access INFO /ini"]


def test_logconfig_ini_errors(tmp_path: Path, make_logger: Callable[..., Logger]) -> None:
    with pytest.raises(ValueError, match="file not found"):
        make_logger(logconfig=str(tmp_path / "missing.ini"))
    broken = tmp_path / "broken.ini"
    broken.write_text("[loggers]\nkeys=root\n", encoding="utf-8")
    with pytest.raises(ValueError, match="logconfig"):
        make_logger(logconfig=str(broken))


class RecordingMetrics:
    """A Metrics back end that remembers counter increments."""

    def __init__(self) -> None:
        self.counts: list[tuple[str, int]] = []

    def request(self, duration_s: float, status: int) -> None:
        raise AssertionError("the logger does not report requests")

    def gauge(self, name: str, value: float) -> None:
        raise AssertionError("the logger does not set gauges")

    def incr(self, name: str, value: int = 1) -> None:
        self.counts.append((name, value))

    def close(self) -> None:
        self.counts.append(("closed", 0))


def test_error_level_calls_are_counted_in_metrics(tmp_path: Path) -> None:
    metrics = RecordingMetrics()
    log = Logger(Cfg(errorlog=str(tmp_path / "e.log"), loglevel="critical"), metrics=metrics)
    log.debug("d")
    log.info("i")
    log.warning("w")
    log.error("e")
    try:
        raise ValueError("x")
    except ValueError:
        log.exception("x")
    log.critical("c")
    log.close()
    # Counted even when the level filters the line out, as gunicorn's statsd logger does;
    # and a metrics object passed in belongs to the caller, so close() leaves it open.
    assert metrics.counts == [
        ("corral.log.warning", 1),
        ("corral.log.error", 1),
        ("corral.log.exception", 1),
        ("corral.log.critical", 1),
    ]


def test_redirect_stdio_is_a_no_op_without_a_file(make_logger: Callable[..., Logger]) -> None:
    before = os.fstat(1), os.fstat(2)
    make_logger(capture_output=True, errorlog="-").redirect_stdio()
    make_logger(capture_output=False).redirect_stdio()
    assert (os.fstat(1), os.fstat(2)) == before


def test_redirect_stdio_in_a_forked_child(tmp_path: Path) -> None:
    path = tmp_path / "error.log"
    pid = os.fork()
    if pid == 0:  # the child: what a worker does after fork
        code = 1
        try:
            # pytest swaps sys.stdout for its capture object; a worker has the real streams.
            assert sys.__stdout__ is not None and sys.__stderr__ is not None
            sys.stdout, sys.stderr = sys.__stdout__, sys.__stderr__
            log = Logger(Cfg(errorlog=str(path), capture_output=True))
            log.redirect_stdio()
            print("from print")
            os.write(1, b"raw fd 1\n")
            os.write(2, b"raw fd 2\n")
            log.info("from the logger")
            path.rename(tmp_path / "error.log.1")
            log.reopen_files()
            print("after reopen")
            sys.stderr.write("stderr after reopen\n")
            sys.stdout.flush()
            sys.stderr.flush()
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0
    old = lines(tmp_path / "error.log.1")
    assert old[:3] == ["from print", "raw fd 1", "raw fd 2"]
    assert old[3].endswith("[INFO] from the logger")
    assert lines(path) == ["after reopen", "stderr after reopen"]


def test_gunicorns_logger_names_are_corrals(
    tmp_path: Path, make_logger: Callable[..., Logger]
) -> None:
    """Flask's recipe takes logging.getLogger("gunicorn.error")'s handlers and level: they must
    be corral's, or the app's log lines go nowhere."""
    path = tmp_path / "error.log"
    make_logger(errorlog=str(path), loglevel="warning")
    theirs = logging.getLogger("gunicorn.error")
    assert theirs.handlers == logging.getLogger("corral.error").handlers != []
    assert theirs.level == logging.WARNING
    app_logger = logging.getLogger("myapp")
    app_logger.handlers = theirs.handlers
    app_logger.setLevel(theirs.level)
    app_logger.warning("from the app")
    theirs.error("straight to gunicorn.error")
    assert [ERROR_LINE.match(line)["msg"] for line in lines(path)] == [  # type: ignore[index]
        "from the app",
        "straight to gunicorn.error",
    ]
