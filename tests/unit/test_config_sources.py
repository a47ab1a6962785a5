"""load(): defaults < config file < environment < command line, with the source of each value."""

from __future__ import annotations

import textwrap
from pathlib import Path

import pytest

from corral.config import Config, load
from corral.errors import USAGE_ERROR, ConfigError


@pytest.fixture(autouse=True)
def _empty_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # No corral.conf.py / gunicorn.conf.py of the checkout gets picked up by default.
    monkeypatch.chdir(tmp_path)


def write(path: Path, text: str) -> str:
    path.write_text(textwrap.dedent(text))
    return str(path)


def error(argv: list[str], environ: dict[str, str] | None = None) -> str:
    with pytest.raises(ConfigError) as info:
        load(argv, environ or {})
    assert info.value.exit_code == USAGE_ERROR
    message = str(info.value)
    assert "\n" not in message
    return message


def test_defaults_only() -> None:
    cfg = load([], {})
    assert cfg.workers == 1
    assert cfg.source_of("workers") == "default"
    assert cfg.config is None
    assert cfg.app_uri is None


# --- precedence, pair by pair ----------------------------------------------------------------


def test_file_beats_default(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "workers = 3\n")
    cfg = load(["-c", conf], {})
    assert cfg.workers == 3
    assert cfg.source_of("workers") == f"config file {conf}"


def test_env_beats_file(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "workers = 3\n")
    cfg = load(["-c", conf], {"CORRAL_WORKERS": "4"})
    assert cfg.workers == 4
    assert cfg.source_of("workers") == "env CORRAL_WORKERS"


def test_cli_beats_env_and_file(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "workers = 3\n")
    cfg = load(["-c", conf, "--workers", "5"], {"CORRAL_WORKERS": "4"})
    assert cfg.workers == 5
    assert cfg.source_of("workers") == "command line --workers"
    assert load(["-w", "6"], {"CORRAL_WORKERS": "4"}).source_of("workers") == "command line -w"


def test_env_beats_default() -> None:
    assert load([], {"CORRAL_TIMEOUT": "9"}).timeout == 9


def test_cli_beats_file(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "timeout = 3\n")
    assert load(["-c", conf, "-t", "8"], {}).timeout == 8


def test_cmd_args_sit_between_env_and_cli() -> None:
    environ = {
        "CORRAL_WORKERS": "2",
        "GUNICORN_CMD_ARGS": "--workers=3 --threads 4 --timeout 5",
        "CORRAL_CMD_ARGS": "--workers 6 --threads=7",
    }
    cfg = load([], environ)
    assert (cfg.workers, cfg.threads, cfg.timeout) == (6, 7, 5)
    assert cfg.source_of("workers") == "env CORRAL_CMD_ARGS --workers"
    assert cfg.source_of("timeout") == "env GUNICORN_CMD_ARGS --timeout"
    cfg = load(["--threads", "8"], environ)
    assert cfg.threads == 8 and cfg.source_of("threads") == "command line --threads"


def test_gunicorn_cmd_args_alone_beats_env() -> None:
    cfg = load([], {"CORRAL_WORKERS": "2", "GUNICORN_CMD_ARGS": "-w 3 --bind=0.0.0.0:9"})
    assert cfg.workers == 3
    assert cfg.bind == ["0.0.0.0:9"]


def test_cmd_args_can_name_the_config_file(tmp_path: Path) -> None:
    conf = write(tmp_path / "from_env.py", "backlog = 64\n")
    other = write(tmp_path / "from_cli.py", "backlog = 32\n")
    assert load([], {"GUNICORN_CMD_ARGS": f"-c {conf}"}).backlog == 64
    assert load(["-c", other], {"GUNICORN_CMD_ARGS": f"-c {conf}"}).backlog == 32
    assert load([], {"CORRAL_CONFIG": conf}).backlog == 64


def test_cmd_args_with_bad_quoting() -> None:
    assert "env CORRAL_CMD_ARGS: cannot split" in error([], {"CORRAL_CMD_ARGS": "-n 'open"})


def test_list_from_cli_replaces_the_file_list(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "bind = ['127.0.0.1:1', '127.0.0.1:2']\n")
    cfg = load(["-c", conf, "-b", "127.0.0.1:3", "--bind", "unix:/tmp/x.sock"], {})
    assert cfg.bind == ["127.0.0.1:3", "unix:/tmp/x.sock"]
    assert cfg.source_of("bind") == "command line --bind"


def test_app_argument_sets_wsgi_app(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "wsgi_app = 'file:app'\n")
    assert load(["-c", conf], {}).app_uri == "file:app"
    cfg = load(["-c", conf, "cli:app"], {"CORRAL_WSGI_APP": "env:app"})
    assert cfg.app_uri == "cli:app"
    assert cfg.source_of("wsgi_app") == "command line APP"
    assert cfg.default_proc_name == "cli:app"


# --- gunicorn's plain environment variables ---------------------------------------------------


def test_port_and_web_concurrency_are_defaults_below_the_file(tmp_path: Path) -> None:
    environ = {"PORT": "5000", "WEB_CONCURRENCY": "3", "FORWARDED_ALLOW_IPS": "10.0.0.0/8"}
    cfg = load([], environ)
    assert cfg.bind == ["0.0.0.0:5000"]
    assert cfg.source_of("bind") == "env PORT"
    assert cfg.workers == 3
    assert cfg.forwarded_allow_ips == ["10.0.0.0/8"]
    conf = write(tmp_path / "c.py", "workers = 2\nbind = '127.0.0.1:1'\n")
    cfg = load(["-c", conf], environ)
    assert (cfg.workers, cfg.bind) == (2, ["127.0.0.1:1"])


def test_sendfile_env(tmp_path: Path) -> None:
    assert load([], {"SENDFILE": "0"}).sendfile is False
    assert load([], {}).sendfile is True
    assert load(["--no-sendfile"], {"SENDFILE": "1"}).sendfile is False


# --- config files ------------------------------------------------------------------------------

GUNICORN_CONF = """\
    import multiprocessing
    import os
    from pathlib import Path

    bind = "0.0.0.0:8000"
    workers = multiprocessing.cpu_count() * 2 + 1
    threads = 2
    worker_class = "gthread"
    timeout = 120
    graceful_timeout = 30
    keepalive = 5
    max_requests = 1000
    max_requests_jitter = 50
    accesslog = "-"
    errorlog = "-"
    loglevel = os.environ.get("LOG_LEVEL", "info")
    access_log_format = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s" %(D)s'
    forwarded_allow_ips = "*"
    secure_scheme_headers = {"X-Forwarded-Proto": "https"}
    raw_env = ["DJANGO_SETTINGS_MODULE=site.settings"]
    BASE_DIR = Path(__file__).parent
    _private = 1

    def post_fork(server, worker):
        server.log.info("Worker spawned (pid: %s)", worker.pid)

    def pre_request(worker, req):
        worker.log.debug("%s %s", req.method, req.path)

    def post_request(worker, req):
        pass

    def when_ready(server):
        server.log.info("Server is ready. Spawning workers")

    def worker_int(worker):
        worker.log.info("worker received INT or QUIT signal")

    def _helper():
        return 1

    def compute_something():
        return 2
"""


FASTAPI_GUNICORN_CONF = """\
    bind = "0.0.0.0:8000"
    workers = 4
    worker_class = {!r}
"""


@pytest.mark.parametrize(
    "given",
    [
        "uvicorn.workers.UvicornWorker",
        "uvicorn.workers.UvicornH11Worker",
        "uvicorn.workers:UvicornWorker",
        "uvicorn_worker.UvicornWorker",
        " uvicorn_worker.UvicornH11Worker ",
    ],
)
def test_fastapi_gunicorn_conf_with_uvicorns_worker_runs_asyncio(
    tmp_path: Path, given: str
) -> None:
    from corral.arbiter.reload import worker_class
    from corral.workers.aio import AsyncioWorker

    write(tmp_path / "gunicorn.conf.py", FASTAPI_GUNICORN_CONF.format(given))
    cfg = load(["main:app"], {})
    assert cfg.worker_class == "asyncio"
    assert cfg.given("worker_class") == given  # what the arbiter's log line names
    # uvicorn's class is never imported: corral's own worker serves the ASGI app.
    assert worker_class(cfg) is AsyncioWorker


def test_given_is_the_text_before_parsing() -> None:
    cfg = load(["-k", "gthread", "main:app"], {"CORRAL_WORKERS": "3"})
    assert (cfg.given("worker_class"), cfg.worker_class) == ("gthread", "threaded")
    assert (cfg.given("workers"), cfg.workers) == ("3", 3)
    assert cfg.given("timeout") is None
    with pytest.raises(KeyError):
        cfg.given("no_such_setting")


def test_typical_gunicorn_conf_loads_unchanged(tmp_path: Path) -> None:
    import multiprocessing

    write(tmp_path / "gunicorn.conf.py", GUNICORN_CONF)
    cfg = load(["myproject.wsgi"], {})
    path = str(tmp_path / "gunicorn.conf.py")
    assert cfg.config == path and cfg.source_of("config") == "default"
    assert cfg.bind == ["0.0.0.0:8000"]
    assert cfg.workers == multiprocessing.cpu_count() * 2 + 1
    assert (cfg.threads, cfg.worker_class, cfg.timeout, cfg.keepalive) == (2, "threaded", 120, 5)
    assert (cfg.accesslog, cfg.errorlog, cfg.loglevel) == ("-", "-", "info")
    assert cfg.forwarded_allow_ips == ["*"]
    assert cfg.secure_scheme_headers == {"X-FORWARDED-PROTO": "https"}
    assert cfg.post_fork.__name__ == "post_fork"
    assert cfg.source_of("post_fork") == f"config file {path}"
    # post_request given two parameters is called with gunicorn's four.
    assert cfg.post_request(object(), object(), {}, object()) is None
    assert cfg.app_uri == "myproject.wsgi"


def test_corral_conf_is_preferred_to_gunicorn_conf(tmp_path: Path) -> None:
    write(tmp_path / "gunicorn.conf.py", "workers = 2\n")
    assert load([], {}).workers == 2
    write(tmp_path / "corral.conf.py", "workers = 3\n")
    assert load([], {}).workers == 3


def test_python_module_config(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    write(tmp_path / "corral_test_settings_mod.py", "workers = 7\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    cfg = load(["-c", "python:corral_test_settings_mod"], {})
    assert cfg.workers == 7
    assert cfg.source_of("workers") == "config module corral_test_settings_mod"
    assert "cannot import" in error(["-c", "python:corral_test_no_such_settings"])


def test_file_prefix_and_any_extension(tmp_path: Path) -> None:
    conf = write(tmp_path / "settings.conf", "threads = 3\n")
    assert load(["-c", f"file:{conf}"], {}).threads == 3


def messages(cfg: Config) -> list[str]:
    return [m for u in cfg.unknown if (m := u.message())]


def test_unknown_name_in_file_is_ignored_with_a_suggestion(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "worker = 4\n")
    cfg = load(["-c", conf], {})
    assert cfg.workers == 1
    assert messages(cfg) == [
        f"config file {conf}: unknown setting 'worker' ignored (did you mean 'workers'?)"
    ]
    assert cfg.unknown[0].level == "WARNING"


def test_strict_config_makes_the_typo_fatal(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "worker = 4\n")
    message = error(["-c", conf, "--strict-config"])
    assert message.startswith(
        f"config file {conf}: unknown setting 'worker' (did you mean 'workers'?); strict_config"
    )
    conf = write(tmp_path / "s.py", "strict_config = True\ncores_zz = 4\n")
    message = error(["-c", conf])
    assert message.startswith(f"config file {conf}: unknown setting 'cores_zz'; strict_config")
    assert "did you mean" not in message


def test_unknown_plain_value_without_a_close_match_is_silent(tmp_path: Path) -> None:
    cfg = load(["-c", write(tmp_path / "c.py", "cores_zz = 4\n")], {})
    assert [(u.name, u.kind) for u in cfg.unknown] == [("cores_zz", "plain")]
    assert messages(cfg) == []


HELPERS_CONF = """\
    import multiprocessing
    import os

    cores = multiprocessing.cpu_count()
    workers_per_core_str = os.getenv("WORKERS_PER_CORE", "1")
    use_loglevel = os.getenv("LOG_LEVEL", "info")
    loglevel = use_loglevel
    web_concurrency = max(int(float(workers_per_core_str) * cores), 2)
    workers = web_concurrency
    host, port = "0.0.0.0", 8000
    bind = f"{host}:{port}"
    log_data = {"loglevel": loglevel, "workers": workers, "bind": bind}
    for k, v in sorted(log_data.items()):
        pass
    max_workers = 4
    env = "production"
"""


def test_helper_variables_are_ignored_without_a_word(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", HELPERS_CONF)
    cfg = load(["-c", conf], {})
    assert cfg.workers >= 2 and cfg.bind == ["0.0.0.0:8000"]
    assert messages(cfg) == []
    assert "cores" in [u.name for u in cfg.unknown]


@pytest.mark.parametrize(
    ("name", "meant"),
    [
        ("preload", "preload_app"),
        ("acceslogformat", "access_log_format"),
        ("access_logfile", "accesslog"),
        ("log_level", "loglevel"),
        ("keep_alive", "keepalive"),
        ("timout", "timeout"),
        ("graceful_timout", "graceful_timeout"),
        ("worker_connection", "worker_connections"),
        ("deamon", "daemon"),
        ("timeout_keep_alive", "keepalive"),
    ],
)
def test_near_misses(tmp_path: Path, name: str, meant: str) -> None:
    conf = write(tmp_path / "c.py", f"{name} = True\n")
    (unknown,) = load(["-c", conf], {}).unknown
    assert (unknown.kind, unknown.hint) == ("near", meant)


def test_old_gunicorn_names_get_a_note(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "debug = True\nlogfile = '/tmp/x.log'\ncommand = 'gunicorn'\n")
    cfg = load(["-c", conf], {})
    assert [(u.name, u.level) for u in cfg.unknown] == [
        ("debug", "INFO"),
        ("logfile", "INFO"),
        ("command", "INFO"),
    ]
    assert messages(cfg)[0].startswith(
        f"config file {conf}: 'debug' is not a gunicorn 27 setting, ignored: "
    )
    assert cfg.errorlog == "-"


def test_function_named_like_a_hook_is_a_warning(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "def post_forks(server, worker):\n    pass\n")
    assert messages(load(["-c", conf], {})) == [
        f"config file {conf}: 'post_forks' is not a server hook, ignored "
        "(did you mean 'post_fork'?)"
    ]
    assert "'post_forks' is not a server hook (did you mean 'post_fork'?); strict_config" in (
        error(["-c", conf, "--strict-config"])
    )


def test_hook_with_wrong_arity(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "def post_fork(server):\n    pass\n")
    message = error(["-c", conf])
    assert message.startswith("post_fork = <__config__.post_fork>")
    assert "expected a callable taking 2 positional arguments" in message


def test_config_in_a_config_file_has_no_effect(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "config = 'other.py'\n")
    cfg = load(["-c", conf, "--strict-config"], {})
    assert cfg.config == conf
    assert messages(cfg) == [
        f"config file {conf}: 'config' has no effect in a config file, ignored"
    ]


def test_missing_config_file(tmp_path: Path) -> None:
    assert "not found" in error(["-c", str(tmp_path / "nope.py")])


def test_config_file_syntax_error_names_the_line(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "workers = 2\nbind = [\n")
    message = error(["-c", conf])
    assert message.startswith(f"config file {conf}, line ")
    assert "SyntaxError" in message


def test_config_file_exception_names_the_line(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "workers = 2\nthreads = int('x')\n")
    assert error(["-c", conf]) == (
        f"config file {conf}, line 2: ValueError: invalid literal for int() with base 10: 'x'"
    )


# --- errors: one line naming setting, value and source ----------------------------------------


def test_bad_value_from_env() -> None:
    assert error([], {"CORRAL_WORKERS": "abc"}) == (
        "workers = 'abc' (from env CORRAL_WORKERS): expected an integer >= 0 (0 = auto), or auto"
    )


def test_bad_value_from_cli_and_file(tmp_path: Path) -> None:
    assert error(["--threads", "0"]) == (
        "threads = '0' (from command line --threads): expected an integer >= 1, or auto"
    )
    conf = write(tmp_path / "c.py", "timeout = 'soon'\n")
    assert error(["-c", conf]) == f"timeout = 'soon' (from config file {conf}): expected an integer"


def test_bad_value_from_cmd_args() -> None:
    message = error([], {"GUNICORN_CMD_ARGS": "--log-level loud"})
    assert message.startswith("loglevel = 'loud' (from env GUNICORN_CMD_ARGS --log-level)")


def test_unknown_flag_suggests_the_flag() -> None:
    assert error(["--wrkers", "3"]) == (
        "command line: unrecognized option '--wrkers' (did you mean --workers?)"
    )
    assert "(did you mean --keep-alive?)" in error(["--keepalive=5"])
    assert error([], {"CORRAL_CMD_ARGS": "--tmeout 3"}).startswith("env CORRAL_CMD_ARGS: ")


def test_flag_without_its_value() -> None:
    assert error(["-w"]) == "command line: argument -w/--workers: expected one argument"


def test_two_apps_are_refused() -> None:
    assert "unexpected argument 'b:app'" in error(["a:app", "b:app"])


def test_misspelt_env_variable_is_a_warning_other_corral_vars_are_not() -> None:
    cfg = load([], {"CORRAL_WOKRERS": "3"})
    assert messages(cfg) == [
        "unknown environment variable CORRAL_WOKRERS ignored (did you mean CORRAL_WORKERS?)"
    ]
    assert "did you mean CORRAL_WORKERS?); strict_config" in error(
        ["--strict-config"], {"CORRAL_WOKRERS": "3"}
    )
    assert load([], {"CORRAL_TEST_DATABASE_URL": "x"}).unknown == []


def test_env_lists_dicts_and_bools() -> None:
    environ = {
        "CORRAL_BIND": "127.0.0.1:1 '[::1]:2'",
        "CORRAL_RAW_ENV": "A=1 'B=two words'",
        "CORRAL_LOGCONFIG_DICT": '{"version": 1}',
        "CORRAL_PRELOAD_APP": "yes",
        "CORRAL_REQUIRE_HOST": "off",
        "CORRAL_POST_FORK": "os.path.join",
    }
    cfg = load([], environ)
    assert cfg.bind == ["127.0.0.1:1", "[::1]:2"]
    assert cfg.raw_env == ["A=1", "B=two words"]
    assert cfg.logconfig_dict == {"version": 1}
    assert cfg.preload_app is True and cfg.require_host is False
    import os.path

    assert cfg.post_fork is os.path.join
    assert "expected a JSON object" in error([], {"CORRAL_LOGCONFIG_DICT": "{nope"})


def test_toggle_and_optional_flags() -> None:
    assert load(["--no-require-host"], {}).require_host is False
    assert load(["--require-host"], {"CORRAL_REQUIRE_HOST": "false"}).require_host is True
    assert load(["--proxy-protocol"], {}).proxy_protocol == "auto"
    assert load(["--proxy-protocol", "v2"], {}).proxy_protocol == "v2"


def test_settings_asking_for_missing_features_fail_loudly(tmp_path: Path) -> None:
    assert load(["--http-protocols", "h2,h1"], {}).http_protocols == ["h2", "h1"]  # real now
    assert error(["--protocol", "uwsgi"]).endswith("not uwsgi_pass")
    conf = write(tmp_path / "d.py", "dirty_workers = 2\ndirty_apps = ['a.b:C']\n")
    assert "corral has no dirty worker pool" in error(["-c", conf])
    assert load(["--enable-backlog-metric"], {}).enable_backlog_metric is True  # real now


def test_settings_that_turn_missing_features_off_are_accepted(tmp_path: Path) -> None:
    conf = write(
        tmp_path / "c.py",
        """\
        control_socket = "/run/app.ctl"
        control_socket_disable = True
        control_socket_mode = 0o660
        http_protocols = "h1"
        http2_cleartext = False
        http2_max_concurrent_streams = 200
        http_parser = "python"
        protocol = "http"
        dirty_workers = 0
        dirty_apps = ["app.ml:Model"]
        enable_backlog_metric = False
        asgi_disconnect_grace_period = 10
        """,
    )
    cfg = load(["-c", conf], {})
    assert (cfg.http_protocols, cfg.control_socket_mode) == (["h1"], 0o660)
    assert load(["--no-control-socket", "--control-socket", "/x"], {}).control_socket == "/x"


def test_gevent_is_refused_unless_a_later_source_replaces_it(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "worker_class = 'gevent'\n")
    message = error(["-c", conf])
    assert message.startswith(
        f"worker_class = 'gevent' (from config file {conf}): corral has no gevent worker; "
        "use -k threaded"
    )
    assert "docs/migrating.md" in message
    assert load(["-c", conf, "-k", "threaded"], {}).worker_class == "threaded"
    assert "corral has no eventlet worker" in error(["-k", "eventlet"])
    assert "corral has no tornado worker" in error(
        ["-k", "gunicorn.workers.gtornado.TornadoWorker"]
    )


def test_asgi_names_are_synonyms_of_loop_and_lifespan(tmp_path: Path) -> None:
    conf = write(tmp_path / "c.py", "asgi_loop = 'asyncio'\nasgi_lifespan = 'off'\n")
    cfg = load(["-c", conf], {})
    assert (cfg.loop, cfg.asgi_loop, cfg.lifespan, cfg.asgi_lifespan) == (
        "asyncio",
        "asyncio",
        "off",
        "off",
    )
    assert cfg.source_of("loop") == f"config file {conf}"
    # The command line beats the file whichever name each used.
    cfg = load(["-c", conf, "--loop", "uvloop", "--lifespan", "on"], {})
    assert (cfg.asgi_loop, cfg.lifespan) == ("uvloop", "on")
    assert cfg.source_of("asgi_loop") == "command line --loop"


def test_logger_class_gunicorns_default_is_accepted_a_custom_one_is_refused(
    tmp_path: Path,
) -> None:
    for default in ("gunicorn.glogging.Logger", "simple", "corral.logging.Logger"):
        assert load(["--logger-class", default], {}).logger_class == "corral.logging.Logger"
    conf = write(tmp_path / "c.py", "logger_class = 'myapp.logs.JsonLogger'\n")
    message = error(["-c", conf])
    assert message.startswith(
        f"logger_class = 'myapp.logs.JsonLogger' (from config file {conf}): corral does not "
        "load logger classes"
    )
    assert "logconfig_dict" in message and "access_log_format = 'json'" in message


def test_max_threads_must_cover_threads() -> None:
    assert "expected 0 or at least threads (4)" in error(["--threads", "4", "--max-threads", "2"])
    assert load(["--threads", "4", "--max-threads", "16"], {}).max_threads == 16


def test_set_and_source_of_in_code() -> None:
    cfg = Config()
    cfg.set("workers", 3)
    assert cfg.source_of("workers") == "set in code"
    with pytest.raises(ConfigError, match=r"unknown setting 'wrokers' .*did you mean 'workers'"):
        cfg.set("wrokers", 3)
