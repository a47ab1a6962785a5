"""gunicorn config files in the styles people publish: corral serves with each, unchanged, and
prints the same effective settings as gunicorn 27 (printed.py lists the intended differences)."""

from __future__ import annotations

import http.client
import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from tests.compat.conftest import CONFIGS, compat_env, print_config
from tests.compat.printed import differences
from tests.e2e.conftest import CorralProcess


@dataclass(frozen=True)
class Case:
    """One config file, the app it serves, and what its run must show beyond a 200."""

    file: str
    app: str = "compat_app:app"
    env: dict[str, str] = field(default_factory=dict)
    path: str = "/"
    check: Callable[[CorralProcess, dict[str, object]], None] | None = None


def _logged(*needles: str) -> Callable[[CorralProcess, dict[str, object]], None]:
    def check(proc: CorralProcess, _body: dict[str, object]) -> None:
        for needle in needles:
            proc.wait_for(needle.replace("(", r"\(").replace(")", r"\)").replace("'", "'"))

    return check


def _body_env(expected: dict[str, str]) -> Callable[[CorralProcess, dict[str, object]], None]:
    def check(_proc: CorralProcess, body: dict[str, object]) -> None:
        assert body["env"] == expected

    return check


def _asgi_root(root: str, path: str) -> Callable[[CorralProcess, dict[str, object]], None]:
    def check(proc: CorralProcess, body: dict[str, object]) -> None:
        assert (body["root_path"], body["path"]) == (root, path)
        proc.wait_for("Using worker: asyncio")

    return check


def _warned_once(proc: CorralProcess, _body: dict[str, object]) -> None:
    for name, meant in [
        ("preload", "preload_app"),
        ("acceslogformat", "access_log_format"),
        ("timout", "timeout"),
    ]:
        pattern = rf"\[WARNING\] .*unknown setting '{name}' ignored \(did you mean '{meant}'\?\)"
        assert len(proc.matches(pattern)) == 1, proc.log_text()
    assert len(proc.matches(r"'post_forks' is not a server hook")) == 1


def _json_logs(proc: CorralProcess, _body: dict[str, object]) -> None:
    line = proc.wait_for(r'^\{"time": .*"msg": "Listening at: ')[0].string
    assert json.loads(line)["level"] == "INFO"


def _pidfile(proc: CorralProcess, _body: dict[str, object]) -> None:
    cwd = Path(f"/proc/{proc.pid}/cwd").resolve()
    assert (cwd / "app.pid").read_text().strip() == str(proc.pid)


CASES = [
    Case("docker_cpu_helpers.py", check=_logged('"workers_per_core": 1.0')),
    Case("supervisor_tutorial.py", check=_body_env({"COMPAT_FROM": "raw_env"})),
    Case("env_driven.py", env={"GUNICORN_WORKERS": "1", "GUNICORN_KEEPALIVE": "10"}),
    Case(
        "hooks_everywhere.py",
        check=_logged(
            "compat-hook when_ready", "compat-hook post_fork", "compat-hook post_request /"
        ),
    ),
    Case("prometheus_multiprocess.py"),  # its child_exit is checked after the stop
    Case("logconfig_dict_json.py", check=_json_logs),
    Case("statsd_datadog.py"),
    Case(
        "raw_env_list.py",
        check=_body_env({"COMPAT_ONE": "1", "COMPAT_TWO": "two words", "COMPAT_EMPTY": ""}),
    ),
    Case("bind_list.py"),
    Case("uvicorn_worker.py", app="compat_app:asgi", check=_asgi_root("", "/")),
    Case(
        "gunicorn27_asgi.py",
        app="compat_app:asgi",
        path="/api/items",
        check=_asgi_root("/api", "/api/items"),
    ),
    Case("typos.py", check=_warned_once),
    Case("old_names.py", check=_logged("'debug' is not a gunicorn 27 setting, ignored")),
    Case("gthread.py", check=_logged("Using worker: threaded")),
    Case("behind_proxy.py"),
    Case("env_loop.py", env={"GUNICORN_WORKERS": "2", "GUNICORN_TIMEOUT": "45"}),
    Case("security_limits.py"),
    Case("docker_shm.py", check=_logged("Using worker: threaded")),
    Case("preload_sendfile.py", check=_pidfile),
    Case("gunicorn27_off.py"),
    Case("logger_default_syslog.py"),
    Case("uppercase_and_objects.py", env={"COMPAT_WORKERS": "1"}),
]


def test_every_config_file_has_a_case() -> None:
    assert sorted(c.file for c in CASES) == sorted(p.name for p in CONFIGS.glob("*.py"))
    assert len(CASES) >= 20


def _get(addr: tuple[str, int], path: str) -> tuple[int, dict[str, object]]:
    conn = http.client.HTTPConnection(*addr, timeout=10)
    try:
        conn.request("GET", path, headers={"X-Forwarded-Proto": "https"})
        response = conn.getresponse()
        return response.status, json.loads(response.read())
    finally:
        conn.close()


@pytest.mark.parametrize("case", CASES, ids=[c.file.removesuffix(".py") for c in CASES])
def test_config_file_serves_and_prints_what_gunicorn_prints(
    case: Case, corral_factory: Callable[..., CorralProcess], tmp_path: Path
) -> None:
    extra = dict(case.env)
    if case.file.startswith("prometheus"):
        (tmp_path / "prom").mkdir()
        extra["PROMETHEUS_MULTIPROC_DIR"] = str(tmp_path / "prom")
    env = compat_env(extra)
    config = str(CONFIGS / case.file)
    # Our own shell's CORRAL_*/GUNICORN_* variables must not reach the server either.
    blanks = {k: "" for k in os.environ if k not in env}
    proc = corral_factory(
        "-c", config, "-b", "127.0.0.1:0", "--log-level", "info", case.app, env=env | blanks
    )
    status, body = _get(proc.addr, case.path)
    assert status == 200, proc.log_text()
    if case.check is not None:
        case.check(proc, body)
    assert proc.stop() == 0, proc.log_text()
    if case.file.startswith("prometheus"):
        dead = sorted(p.name for p in (tmp_path / "prom").iterdir())
        assert dead == sorted(f"dead_{pid}" for pid in set(proc.booted_pids())), proc.log_text()

    args = ["-c", config, case.app]
    ours = print_config("corral", args, env, tmp_path)
    theirs = print_config("gunicorn", args, env, tmp_path)
    assert differences(ours, theirs) == []
