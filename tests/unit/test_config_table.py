"""The settings table itself: complete, consistent, gunicorn's names and defaults."""

from __future__ import annotations

import dataclasses
from collections import Counter

import pytest

from corral.config import SECTIONS, Config, settings_table
from corral.config.flags import all_flags, build_parser
from corral.config.table_hooks import default_hook

# The settings issue 3 and the task name, by gunicorn section.
GUNICORN_NAMES = """
config wsgi_app bind backlog workers worker_class threads worker_connections max_requests
max_requests_jitter timeout graceful_timeout keepalive limit_request_line limit_request_fields
limit_request_field_size reload reload_engine reload_extra_files spew check_config
print_config preload_app sendfile reuse_port chdir daemon raw_env pidfile worker_tmp_dir user
group umask initgroups tmp_upload_dir secure_scheme_headers forwarded_allow_ips pythonpath
paste proxy_protocol proxy_allow_ips raw_paste_global_conf permit_obsolete_folding
strip_header_spaces permit_unconventional_http_method permit_unconventional_http_version
casefold_http_method header_map forwarder_headers accesslog disable_redirect_access_to_syslog
access_log_format errorlog loglevel capture_output logger_class logconfig logconfig_dict
logconfig_json syslog_addr syslog syslog_prefix syslog_facility enable_stdio_inheritance
statsd_host dogstatsd_tags statsd_prefix proc_name default_proc_name on_starting on_reload
when_ready pre_fork post_fork post_worker_init worker_int worker_abort pre_exec pre_request
post_request child_exit worker_exit nworkers_changed on_exit ssl_context keyfile certfile
asgi_loop asgi_lifespan asgi_disconnect_grace_period root_path control_socket
control_socket_mode control_socket_disable http_protocols http2_cleartext
http2_max_concurrent_streams http2_initial_window_size http2_max_frame_size
http2_max_header_list_size http_parser protocol uwsgi_allow_ips enable_backlog_metric
dirty_apps dirty_workers dirty_timeout dirty_threads dirty_graceful_timeout on_dirty_starting
dirty_post_fork dirty_worker_init dirty_worker_exit websocket_max_message_size
""".split()  # noqa: SIM905

CORRAL_ONLY = """
limit_request_body limit_request_head require_host server_header interface strict_config
websocket_ping_interval websocket_ping_timeout websocket_per_message_deflate header_timeout
max_threads cpu_affinity max_worker_memory request_timeout metrics_bind health_check_path
reload_include reload_exclude statsd_names keyfile_password ssl_min_version proxy_headers
body_timeout send_timeout
""".split()  # noqa: SIM905

# gunicorn's defaults (its documentation), which corral keeps unless the table says otherwise.
GUNICORN_DEFAULTS = {
    "bind": ["127.0.0.1:8000"],
    "backlog": 2048,
    "workers": 1,
    "worker_class": "sync",
    "threads": 1,
    "worker_connections": 1000,
    "max_requests": 0,
    "max_requests_jitter": 0,
    "timeout": 30,
    "graceful_timeout": 30,
    "limit_request_line": 4094,
    "limit_request_fields": 100,
    "limit_request_field_size": 8190,
    "errorlog": "-",
    "accesslog": None,
    "loglevel": "info",
    "access_log_format": '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"',
    "forwarded_allow_ips": ["127.0.0.1", "::1"],
    "proxy_protocol": "off",
    "header_map": "drop",
    "forwarder_headers": ["SCRIPT_NAME", "PATH_INFO"],
    "umask": 0,
    "syslog_facility": "user",
    "reload_engine": "auto",
    "proc_name": None,
    "preload_app": False,
}


def test_every_required_setting_is_present() -> None:
    missing = [name for name in GUNICORN_NAMES + CORRAL_ONLY if name not in settings_table()]
    assert missing == []


def test_corral_only_settings_are_marked() -> None:
    marked = sorted(name for name, row in settings_table().items() if row.spec.corral_only)
    assert marked == sorted(CORRAL_ONLY)


def test_every_setting_has_help_section_and_env_name() -> None:
    for name, row in settings_table().items():
        assert row.spec.short and row.spec.short[-1] in ".)", name
        assert row.spec.section in SECTIONS, name
        assert row.env == "CORRAL_" + name.upper()
        assert name == name.lower() and name.isidentifier()


def test_flags_are_unique_and_well_formed() -> None:
    flags = all_flags(build_parser())
    counts = Counter(flags)
    assert [flag for flag, n in counts.items() if n > 1] == []
    for name, row in settings_table().items():
        for flag in row.spec.cli:
            assert flag.startswith("--") or (len(flag) == 2 and flag[0] == "-"), name
        if row.spec.cli and row.spec.mode in ("store", "append", "optional"):
            assert row.spec.metavar, name


def test_gunicorn_flags_are_kept() -> None:
    flags = set(all_flags(build_parser()))
    for flag in ("-b", "-w", "-k", "-t", "-c", "-e", "-D", "-p", "-u", "-g", "-m", "-n", "-R"):
        assert flag in flags
    for flag in ("--keep-alive", "--limit-request-field_size", "--access-logfile", "--preload"):
        assert flag in flags
    for flag in ("--no-sendfile", "--log-file", "--error-logfile", "--proxy-allow-from"):
        assert flag in flags


def test_defaults_parse_to_themselves() -> None:
    cfg = Config()
    for name, row in settings_table().items():
        default = getattr(cfg, name)
        parsed = row.spec.parse(default)
        if callable(default):
            assert parsed is default, name
        else:
            assert parsed == default, name


@pytest.mark.parametrize("name", sorted(GUNICORN_DEFAULTS))
def test_gunicorn_defaults_are_kept(name: str) -> None:
    assert getattr(Config(), name) == GUNICORN_DEFAULTS[name]


def test_corral_defaults() -> None:
    cfg = Config()
    assert cfg.keepalive == 75
    assert cfg.limit_request_head == 65536
    assert cfg.limit_request_body == 0
    assert cfg.require_host is True
    assert cfg.server_header == "corral"
    assert (cfg.interface, cfg.loop, cfg.lifespan) == ("auto", "auto", "auto")
    assert cfg.websocket_max_message_size == 16 * 1024 * 1024
    assert cfg.header_timeout == 10
    assert cfg.max_threads == 0


def test_each_changed_default_says_why() -> None:
    changed = [n for n, row in settings_table().items() if row.spec.gunicorn_default is not None]
    assert "keepalive" in changed
    for name in changed:
        assert settings_table()[name].spec.differs_because, name


def test_hooks_default_to_doing_nothing() -> None:
    cfg = Config()
    hooks = [n for n, row in settings_table().items() if row.spec.section == "Server Hooks"]
    assert len(hooks) == 16
    for name in hooks:
        if name != "ssl_context":
            assert getattr(cfg, name) is default_hook
    assert cfg.post_fork(object(), object()) is None
    assert cfg.ssl_context(cfg, lambda: "ctx") == "ctx"


def test_instances_do_not_share_mutable_defaults() -> None:
    first, second = Config(), Config()
    first.bind.append("0.0.0.0:1")
    first.secure_scheme_headers["X"] = "y"
    assert second.bind == ["127.0.0.1:8000"]
    assert "X" not in second.secure_scheme_headers


def test_defaults_do_not_read_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("PORT", "9999")
    monkeypatch.setenv("WEB_CONCURRENCY", "7")
    monkeypatch.setenv("CORRAL_WORKERS", "5")
    cfg = Config()
    assert cfg.bind == ["127.0.0.1:8000"]
    assert cfg.workers == 1


def test_fields_are_the_table() -> None:
    assert [f.name for f in dataclasses.fields(Config)] == list(settings_table())
    assert len(settings_table()) >= len(GUNICORN_NAMES) + len(CORRAL_ONLY)


def test_source_of_unknown_setting_is_a_key_error() -> None:
    with pytest.raises(KeyError):
        Config().source_of("wrokers")


def test_gunicorns_tls_settings_are_all_there_and_served() -> None:
    table = settings_table()
    tls = [name for name, row in table.items() if row.spec.section == "SSL"] + ["ssl_context"]
    gunicorns = {"keyfile", "certfile", "ssl_version", "cert_reqs", "ca_certs", "ciphers"}
    gunicorns |= {"suppress_ragged_eofs", "do_handshake_on_connect", "ssl_context"}
    assert gunicorns <= set(tls)
    assert {table[name].spec.unsupported for name in tls} == {None}
