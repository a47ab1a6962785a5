"""The corral command: exits, messages, process preparation and the hand-over to the arbiter."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from corral import __version__
from corral.cli import main, prepare_process
from corral.config import load
from corral.errors import APP_LOAD_ERROR, USAGE_ERROR, HaltServer

APPS = Path(__file__).parent / "apps"
SRC = Path(__file__).resolve().parents[2] / "src"


@pytest.fixture(autouse=True)
def _clean_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Run in an empty directory; restore sys.path and the environment afterwards."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    for var in list(os.environ):
        if var.startswith("CORRAL_") or var in ("GUNICORN_CMD_ARGS", "PORT", "WEB_CONCURRENCY"):
            monkeypatch.delenv(var)


def run_main(args: list[str], capsys: pytest.CaptureFixture[str]) -> tuple[int, str, str]:
    with pytest.raises(SystemExit) as info:
        main(args)
    out, err = capsys.readouterr()
    code = info.value.code
    assert isinstance(code, int)
    return code, out, err


def test_bad_value_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(["-w", "abc", "x:app"], capsys)
    assert code == USAGE_ERROR
    assert (
        err == "corral: error: workers = 'abc' (from command line -w): "
        "expected an integer >= 0 (0 = auto), or auto\n"
    )


def test_bad_env_value(capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CORRAL_WORKERS", "abc")
    code, _, err = run_main(["x:app"], capsys)
    assert (code, err) == (
        2,
        "corral: error: workers = 'abc' (from env CORRAL_WORKERS): "
        "expected an integer >= 0 (0 = auto), or auto\n",
    )


def test_no_app_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main([], capsys)
    assert code == USAGE_ERROR and "no application given" in err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--version"], capsys)
    assert (code, out) == (0, f"corral {__version__}\n")


def test_help_lists_sections_and_flags(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(["--help"], capsys)
    assert code == 0
    assert out.startswith("usage: corral [OPTIONS] APP")
    for text in (
        "Worker Processes:",
        "-w INT|auto, --workers INT|auto",
        "--keep-alive",
        "[default: 75]",
    ):
        assert text in out


def test_print_config_shows_values_and_sources(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CORRAL_TIMEOUT", "12")
    code, out, _ = run_main(["--print-config", "-w", "3"], capsys)
    assert code == 0
    lines = {line.split("=")[0].strip(): line for line in out.splitlines()}
    assert lines["workers"].endswith("= 3  # command line -w")
    assert lines["timeout"].endswith("= 12  # env CORRAL_TIMEOUT")
    assert lines["keepalive"].endswith("= 75  # default")
    assert lines["post_fork"].endswith("= <corral.config.table_hooks.default_hook>  # default")


def test_check_config_loads_the_app(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run_main(
        ["--check-config", "--pythonpath", str(APPS), "corral_testapp_asgi:router"], capsys
    )
    assert code == 0
    assert out == "corral: configuration OK; corral_testapp_asgi:router loads as an asgi app\n"


def test_check_config_reports_app_errors(capsys: pytest.CaptureFixture[str]) -> None:
    code, _, err = run_main(
        ["--check-config", "--pythonpath", str(APPS), "corral_testapp_empty"], capsys
    )
    assert code == APP_LOAD_ERROR
    assert err.startswith("corral: error: module 'corral_testapp_empty' has neither")


def test_prepare_process(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    target = tmp_path / "site"
    (target / "lib").mkdir(parents=True)
    monkeypatch.setenv("CORRAL_TEST_FLAG", "before")  # restored after the test
    cfg = load(
        ["--chdir", str(target), "--pythonpath", "lib,/opt/x", "-e", "CORRAL_TEST_FLAG=a=b"], {}
    )
    prepare_process(cfg)
    assert os.getcwd() == str(target)
    assert sys.path[:3] == [str(target / "lib"), "/opt/x", str(target)]
    assert os.environ["CORRAL_TEST_FLAG"] == "a=b"


def _fake_arbiter(monkeypatch: pytest.MonkeyPatch, run: Any) -> list[Any]:
    seen: list[Any] = []

    class Arbiter:
        def __init__(self, cfg: Any, *, cwd: str) -> None:
            seen.append(cfg)
            seen.append(cwd)

        def run(self) -> int:
            return int(run())

    module = types.ModuleType("corral.arbiter.arbiter")
    module.Arbiter = Arbiter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "corral.arbiter.arbiter", module)
    return seen


def test_main_hands_the_config_to_the_arbiter(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    seen = _fake_arbiter(monkeypatch, lambda: 7)
    code, _, _ = run_main(["-w", "2", "some.module:app"], capsys)
    assert code == 7
    assert seen[0].workers == 2 and seen[0].app_uri == "some.module:app"
    assert seen[1] == os.getcwd()  # where corral started, for HUP to re-read the config


def test_halt_server_exits_with_its_code(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    def halt() -> int:
        raise HaltServer("Worker failed to boot.", 3)

    _fake_arbiter(monkeypatch, halt)
    code, _, err = run_main(["some.module:app"], capsys)
    assert (code, err) == (3, "corral: Worker failed to boot.\n")


# --- python -m corral in a subprocess -----------------------------------------------------------


def corral(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("CORRAL_")}
    env.pop("GUNICORN_CMD_ARGS", None)
    env["PYTHONPATH"] = str(SRC)
    return subprocess.run(
        [sys.executable, "-m", "corral", *args],
        cwd=cwd,
        env=env,
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def test_subprocess_check_config_broken_app(tmp_path: Path) -> None:
    result = corral(
        "--check-config", "--pythonpath", str(APPS), "corral_testapp_broken:app", cwd=tmp_path
    )
    assert result.returncode == APP_LOAD_ERROR
    assert result.stdout == ""
    lines = result.stderr.splitlines()
    assert lines[0] == (
        "corral: error: cannot import module 'corral_testapp_broken': "
        "ZeroDivisionError: division by zero"
    )
    assert "return 1 / 0" in result.stderr
    assert "<frozen importlib" not in result.stderr
    assert len(lines) < 10


def test_subprocess_print_config_and_version(tmp_path: Path) -> None:
    (tmp_path / "gunicorn.conf.py").write_text("import multiprocessing\nworkers = 2\n")
    result = corral("--print-config", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    conf = tmp_path / "gunicorn.conf.py"
    assert re.search(
        rf"^workers +  = 2  # config file {re.escape(str(conf))}$", result.stdout, re.M
    )
    version = corral("--version", cwd=tmp_path)
    assert (version.returncode, version.stdout) == (0, f"corral {__version__}\n")


def test_subprocess_unknown_flag(tmp_path: Path) -> None:
    result = corral("--worker-clas", "sync", "app:app", cwd=tmp_path)
    assert result.returncode == USAGE_ERROR
    assert result.stderr == (
        "corral: error: command line: unrecognized option '--worker-clas' "
        "(did you mean --worker-class?)\n"
    )
