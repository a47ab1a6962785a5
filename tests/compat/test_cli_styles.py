"""The other ways gunicorn and uvicorn users start a server: GUNICORN_CMD_ARGS, uvicorn's flags,
--paste, and the one-line refusals (strict_config, gevent, a custom logger class, a control
socket), each against a real `python -m corral`."""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest

from tests.compat.conftest import CONFIGS, compat_env, print_config
from tests.compat.printed import differences
from tests.e2e.conftest import CorralProcess, http_get


def _json_get(proc: CorralProcess, path: str) -> dict[str, object]:
    status, text = http_get(proc.addr, path)
    assert status == 200, proc.log_text()
    body: dict[str, object] = json.loads(text)
    return body


def test_gunicorn_cmd_args_serves_and_prints_what_gunicorn_prints(
    corral_factory: Callable[..., CorralProcess], tmp_path: Path
) -> None:
    args = (
        "--workers 2 --threads 2 --keep-alive 7 --root-path /app --asgi-loop asyncio "
        "--no-control-socket --http-protocols h1 --max-requests 500 -e COMPAT_CMD=yes"
    )
    env = compat_env({"GUNICORN_CMD_ARGS": args})
    proc = corral_factory("-b", "127.0.0.1:0", "compat_app:app", env=env)
    body = _json_get(proc, "/app/x")
    assert (body["script_name"], body["path_info"]) == ("/app", "/x")
    assert body["env"] == {"COMPAT_CMD": "yes"}
    proc.wait_for("Using worker: threaded")
    assert proc.stop() == 0

    ours = print_config("corral", ["compat_app:app"], env, tmp_path)
    assert (
        "root_path                          = '/app'  # env GUNICORN_CMD_ARGS --root-path" in ours
    )
    assert differences(ours, print_config("gunicorn", ["compat_app:app"], env, tmp_path)) == []


UVICORN_ARGS = [
    "--host", "127.0.0.1", "--port", "0", "--workers", "2", "--interface", "asgi3",
    "--root-path", "/api", "--timeout-keep-alive", "5", "--lifespan", "on", "--loop", "asyncio",
    "--no-access-log", "--proxy-headers", "--forwarded-allow-ips", "127.0.0.1",
    "--limit-max-requests", "1000", "--timeout-graceful-shutdown", "10", "--log-level", "trace",
]  # fmt: skip


def test_uvicorn_command_line(corral_factory: Callable[..., CorralProcess], tmp_path: Path) -> None:
    proc = corral_factory("compat_app:asgi", *UVICORN_ARGS, env=compat_env())
    assert _json_get(proc, "/api/users") == {"root_path": "/api", "path": "/api/users"}
    proc.wait_for("Using worker: asyncio")
    assert proc.stop() == 0
    printed = print_config("corral", [*UVICORN_ARGS, "compat_app:asgi"], compat_env(), tmp_path)
    for line in [
        "bind = ['127.0.0.1:0']  # command line --host/--port",
        "keepalive = 5  # command line --timeout-keep-alive",
        "loglevel = 'debug'  # command line --log-level",
        "max_requests = 1000  # command line --limit-max-requests",
        "graceful_timeout = 10  # command line --timeout-graceful-shutdown",
        "accesslog = None  # command line --no-access-log",
        "worker_class = 'asyncio'  # default (interface = asgi)",
        "asgi_lifespan = 'on'  # command line --lifespan",
    ]:
        name, _, rest = line.partition(" = ")
        assert f"{name:<34} = {rest}" in printed


def test_root_path_gives_a_wsgi_app_its_script_name(
    corral_factory: Callable[..., CorralProcess],
) -> None:
    proc = corral_factory("-b", "127.0.0.1:0", "--root-path", "/shop/", "compat_app:app")
    assert _json_get(proc, "/shop/cart")["path_info"] == "/cart"
    assert _json_get(proc, "/shop")["script_name"] == "/shop"
    # A path outside the mount point reaches the app whole, as under gunicorn's SCRIPT_NAME.
    assert _json_get(proc, "/other")["path_info"] == "/other"


PASTE_INI = """\
[app:main]
use = call:compat_paste:make_app
greeting = hello from paste

[loggers]
keys = root

[handlers]
keys = console

[formatters]
keys = plain

[logger_root]
level = INFO
handlers = console

[handler_console]
class = StreamHandler
args = (sys.stderr,)
formatter = plain

[formatter_plain]
format = paste-log %(levelname)s %(message)s
"""

PASTE_MODULE = """\
def make_app(global_conf, **local_conf):
    text = (local_conf["greeting"] + " " + global_conf.get("who", "?")).encode()

    def app(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [text]

    return app
"""


def test_paste_deploy_config(corral_factory: Callable[..., CorralProcess], tmp_path: Path) -> None:
    pytest.importorskip("paste.deploy")
    (tmp_path / "development.ini").write_text(PASTE_INI)
    (tmp_path / "compat_paste.py").write_text(PASTE_MODULE)
    env = compat_env({"PYTHONPATH": f"{tmp_path}:{compat_env()['PYTHONPATH']}"})
    proc = corral_factory(
        "--paste", "development.ini", "--paste-global", "who=world", "-b", "127.0.0.1:0", env=env
    )
    assert http_get(proc.addr, "/") == (200, "hello from paste world")
    assert proc.stop() == 0
    printed = print_config("corral", ["--paste", "development.ini"], env, tmp_path)
    ini = tmp_path / "development.ini"
    # As in gunicorn: the ini's [loggers] configure logging, the process title names the file.
    assert f"= '{ini}'  # default (the paste file's [loggers])" in printed
    assert f"default_proc_name                  = '{ini}'  # default (the paste file)" in printed


def _refused(args: list[str], cwd: Path) -> str:
    result = subprocess.run(
        [sys.executable, "-m", "corral", *args],
        cwd=cwd,
        env=compat_env(),
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 2, result.stdout + result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    return lines[0]


def test_strict_config_refuses_the_first_unknown_name(tmp_path: Path) -> None:
    typos = str(CONFIGS / "typos.py")
    line = _refused(["--strict-config", "-c", typos, "compat_app:app"], tmp_path)
    assert line == (
        f"corral: error: config file {typos}: unknown setting 'preload' (did you mean "
        "'preload_app'?); strict_config makes unknown names an error (name helper variables "
        "with a leading '_')"
    )


def _conf(tmp_path: Path, text: str) -> str:
    path = tmp_path / "conf.py"  # not gunicorn.conf.py: later runs in this cwd would read it
    path.write_text(textwrap.dedent(text))
    return str(path)


def test_gevent_worker_is_refused_with_the_way_out(tmp_path: Path) -> None:
    conf = _conf(tmp_path, 'worker_class = "gevent"\nworker_connections = 1000\n')
    line = _refused(["-c", conf, "compat_app:app"], tmp_path)
    assert line.startswith(
        f"corral: error: worker_class = 'gevent' (from config file {conf}): corral has no "
        "gevent worker; use -k threaded, which serves many waiting requests per process "
        "without monkey-patching"
    )
    assert "docs/migrating.md" in line
    line = _refused(["-k", "eventlet", "compat_app:app"], tmp_path)
    assert "(from command line -k)" in line and "use -k threaded" in line


def test_custom_gunicorn_logger_class_is_refused_with_what_to_use(tmp_path: Path) -> None:
    conf = _conf(
        tmp_path,
        """\
        from gunicorn.glogging import Logger


        class HealthFilteringLogger(Logger):
            def access(self, resp, req, environ, request_time):
                if req.path != "/healthz":
                    super().access(resp, req, environ, request_time)


        logger_class = HealthFilteringLogger
        """,
    )
    line = _refused(["-c", conf, "compat_app:app"], tmp_path)
    assert line.startswith(
        f"corral: error: logger_class = '__config__.HealthFilteringLogger' (from config file "
        f"{conf}): corral does not load logger classes"
    )
    assert "logconfig_dict" in line and "health_check_path" in line


@pytest.mark.parametrize(
    ("args", "start"),
    [
        (["--http2-cleartext", "upgrade"], "http2_cleartext = 'upgrade' (from command line"),
        (["--protocol", "uwsgi"], "protocol = 'uwsgi' (from command line --protocol)"),
    ],
)
def test_asking_for_a_missing_gunicorn_feature_is_one_line(
    tmp_path: Path, args: list[str], start: str
) -> None:
    assert _refused([*args, "compat_app:app"], tmp_path).startswith("corral: error: " + start)
