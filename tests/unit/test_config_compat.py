"""gunicorn's and uvicorn's ways of giving settings: uvicorn's flags, GUNICORN_CMD_ARGS, paste."""

from __future__ import annotations

from pathlib import Path

import pytest

from corral.config import load
from corral.errors import ConfigError


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)


def error(argv: list[str], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(argv, environ or {})
    assert "\n" not in str(info.value)
    return str(info.value)


@pytest.mark.parametrize(
    ("argv", "bind"),
    [
        (["--host", "0.0.0.0", "--port", "9000"], ["0.0.0.0:9000"]),
        (["--port", "9001"], ["127.0.0.1:9001"]),
        (["--host", "::1"], ["[::1]:8000"]),
        (["--uds", "/tmp/app.sock"], ["unix:/tmp/app.sock"]),
        (["--fd", "3"], ["fd://3"]),
    ],
)
def test_uvicorn_address_flags_make_one_bind(argv: list[str], bind: list[str]) -> None:
    cfg = load(argv, {})
    assert cfg.bind == bind
    assert cfg.source_of("bind").startswith("command line --")


def test_uvicorn_address_flags_refuse_nonsense() -> None:
    assert error(["--port", "http"]) == (
        "command line: --port 'http': expected a port number from 0 to 65535"
    )
    assert "use one" in error(["--port", "1", "-b", "127.0.0.1:2"])


def test_uvicorn_command_line_maps_onto_the_same_settings() -> None:
    argv = [
        "--workers", "3", "--timeout-keep-alive", "5", "--limit-max-requests", "1000",
        "--timeout-graceful-shutdown", "12", "--log-level", "trace", "--root-path", "/api",
        "--lifespan", "off", "--loop", "asyncio", "--interface", "asgi3", "--no-access-log",
        "--proxy-headers", "--forwarded-allow-ips", "10.0.0.0/8", "--reload",
        "--reload-include", "*.html", "--reload-exclude", "*.tmp", "--app-dir", "src",
        "--no-server-header", "main:app",
    ]  # fmt: skip
    cfg = load(argv, {})
    assert (cfg.workers, cfg.keepalive, cfg.max_requests, cfg.graceful_timeout) == (3, 5, 1000, 12)
    assert (cfg.loglevel, cfg.root_path, cfg.interface) == ("debug", "/api", "asgi")
    assert (cfg.lifespan, cfg.asgi_lifespan, cfg.loop, cfg.asgi_loop) == (
        "off", "off", "asyncio", "asyncio"
    )  # fmt: skip
    assert cfg.accesslog is None and cfg.forwarded_allow_ips == ["10.0.0.0/8"]
    assert cfg.reload and cfg.reload_include == ["*.html"] and cfg.reload_exclude == ["*.tmp"]
    assert (cfg.pythonpath, cfg.server_header) == ("src", "")
    assert cfg.source_of("keepalive") == "command line --timeout-keep-alive"
    assert load(["--access-log"], {}).accesslog == "-"
    assert load(["--no-proxy-headers"], {}).forwarded_allow_ips == []


def test_gunicorn_cmd_args_takes_gunicorn_27_and_uvicorn_flags() -> None:
    args = (
        "--asgi-loop asyncio --root-path /api --no-control-socket --http-protocols h1 "
        "--workers 3 --port 9100 --asgi-disconnect-grace-period 5"
    )
    cfg = load([], {"GUNICORN_CMD_ARGS": args})
    assert (cfg.loop, cfg.root_path, cfg.control_socket_disable) == ("asyncio", "/api", True)
    assert (cfg.workers, cfg.bind, cfg.asgi_disconnect_grace_period) == (3, ["127.0.0.1:9100"], 5)
    assert cfg.source_of("loop") == "env GUNICORN_CMD_ARGS --asgi-loop"
    cfg = load([], {"GUNICORN_CMD_ARGS": "--http-protocols h2,h1 --http2-cleartext upgrade"})
    assert (cfg.http_protocols, cfg.http2_cleartext) == (["h2", "h1"], "upgrade")
    message = error([], {"GUNICORN_CMD_ARGS": "--http2-cleartext both"})
    assert message.startswith(
        "http2_cleartext = 'both' (from env GUNICORN_CMD_ARGS --http2-cleartext): needs h2 in "
        "http_protocols (now ['h1'])"
    ), message


def test_paste_setting_resolves_the_file_and_takes_its_logging(tmp_path: Path) -> None:
    pytest.importorskip("paste.deploy")
    (tmp_path / "development.ini").write_text(
        "[app:main]\nuse = call:x:y\n\n[loggers]\nkeys = root\n"
    )
    cfg = load(["--paste", "development.ini#main", "--paste-global", "who=me"], {})
    ini = str(tmp_path / "development.ini")
    assert cfg.paste == ini + "#main"
    assert cfg.app_uri is not None and cfg.app_uri.startswith("paste:" + ini + "#main?")
    assert (cfg.logconfig, cfg.default_proc_name) == (ini, ini)
    assert cfg.source_of("logconfig") == "default (the paste file's [loggers])"
    assert error(["--paste", "missing.ini"]) == (
        f"paste = 'missing.ini' (from command line --paste): {tmp_path / 'missing.ini'} not found"
    )


def test_uvicorn_and_granian_tls_flags_set_the_tls_settings() -> None:
    cfg = load(["--ssl-certificate", "/c.pem", "--ssl-keyfile", "/k.pem"], {})
    assert (cfg.certfile, cfg.keyfile) == ("/c.pem", "/k.pem")
    assert cfg.source_of("certfile") == "command line --ssl-certificate"
    assert load(["--ssl-certfile", "/c.pem"], {}).certfile == "/c.pem"
