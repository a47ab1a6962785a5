"""The control socket against real servers: `corral ctl` and gunicornc driving real corral."""

from __future__ import annotations

import contextlib
import http.client
import json
import os
import re
import shutil
import signal
import stat
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import corral
from tests.e2e.conftest import APPS, CorralProcess, kill_leftovers, wait_until

Start = Callable[..., CorralProcess]
LISTENING_AT = r"Control socket listening at (\S+)"
SRC = str(Path(corral.__file__).resolve().parents[1])
SYSTEM_PYTHON = "/usr/bin/python3"


def start(factory: Start, *args: str, workers: int = 2) -> tuple[CorralProcess, str]:
    server = factory("-b", "127.0.0.1:0", "-w", str(workers), *args, "simple:app")
    path = server.wait_for(LISTENING_AT)[0].group(1)
    server.wait_workers(lambda pids: len(pids) == workers)
    return server, path


def ctl(
    path: str | None,
    *command: str,
    prefix: list[str] | None = None,
    env: dict[str, str] | None = None,
    stdin: str | None = None,
) -> subprocess.CompletedProcess[str]:
    """`corral ctl [-s PATH] ARGS...`, its output captured (`prefix`: run as another user)."""
    python = [sys.executable] if prefix is None else [*prefix, SYSTEM_PYTHON]
    socket_args = ["-s", path] if path is not None else []
    return subprocess.run(
        [*python, "-m", "corral", "ctl", *socket_args, *command],
        input=stdin,
        capture_output=True,
        text=True,
        timeout=30,
        check=False,
        env={**os.environ, "PYTHONPATH": SRC, **(env or {})},
    )


def ctl_json(path: str, command: str) -> dict[str, object]:
    done = ctl(path, "-c", command, "-j")
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert isinstance(data, dict)
    return data


def workers_of(path: str) -> list[dict[str, object]]:
    rows = ctl_json(path, "show workers")["workers"]
    assert isinstance(rows, list)
    return rows


# -- the socket itself -------------------------------------------------------------------------


def test_the_socket_is_at_gunicorns_default_path_with_mode_0600_and_goes_at_exit(
    corral_factory: Start, tmp_path: Path
) -> None:
    server, path = start(corral_factory)
    assert path == str(tmp_path / "gunicorn.ctl")  # $XDG_RUNTIME_DIR/gunicorn.ctl
    st = os.stat(path)
    assert stat.S_ISSOCK(st.st_mode) and stat.S_IMODE(st.st_mode) == 0o600
    assert ctl_json(path, "show stats")["pid"] == server.pid
    assert server.stop() == 0
    assert not os.path.exists(path)


def test_home_is_used_without_xdg_runtime_dir(corral_factory: Start, tmp_path: Path) -> None:
    home = tmp_path / "home"
    home.mkdir()
    server = corral_factory(
        "-b", "127.0.0.1:0", "simple:app", env={"XDG_RUNTIME_DIR": "", "HOME": str(home)}
    )
    path = server.wait_for(LISTENING_AT)[0].group(1)
    assert path == str(home / ".gunicorn" / "gunicorn.ctl")
    assert stat.S_IMODE(os.stat(home / ".gunicorn").st_mode) == 0o700
    done = ctl(None, "-c", "show stats", env={"HOME": str(home), "XDG_RUNTIME_DIR": ""})
    assert done.returncode == 0 and f"PID:              {server.pid}" in done.stdout


def test_no_control_socket_and_a_missing_socket_is_one_clear_line(
    corral_factory: Start, tmp_path: Path
) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "--no-control-socket", "simple:app")
    server.wait_for("Booting worker")
    assert not (tmp_path / "gunicorn.ctl").exists()
    assert not server.matches("Control socket")
    done = ctl(str(tmp_path / "gunicorn.ctl"), "-c", "show stats")
    assert done.returncode == 1 and done.stdout == ""
    assert done.stderr == (
        f"Error: no control socket at {tmp_path / 'gunicorn.ctl'}: is the server running, "
        "with this control_socket (or use -s PATH)?\n"
    )


def test_control_socket_mode_and_a_relative_path(corral_factory: Start, tmp_path: Path) -> None:
    _, path = start(
        corral_factory, "--control-socket", "run/app.ctl", "--control-socket-mode", "0660"
    )
    assert path == str(tmp_path / "run" / "app.ctl")  # from the working directory
    assert stat.S_IMODE(os.stat(path).st_mode) == 0o660
    assert ctl_json(path, "show config")["control_socket"] == "run/app.ctl"


# -- each command ------------------------------------------------------------------------------


def test_show_commands(corral_factory: Start) -> None:
    server, path = start(corral_factory)
    pids = server.worker_pids()
    wait_until(lambda: workers_of(path), lambda rows: all(r["booted"] for r in rows), 20)
    rows = workers_of(path)
    assert {row["pid"] for row in rows} == pids
    assert [row["age"] for row in rows] == [1, 2]
    assert {row["state"] for row in rows} == {"serving"}
    assert all(row["requests"] == 0 for row in rows)  # from the scoreboard
    assert all(row["kind"] == "sync" and row["threads"] for row in rows)
    table = ctl(path, "-c", "show workers").stdout.splitlines()
    assert table[0].split() == ["PID", "AGE", "BOOTED", "LAST_BEAT", "STATE", "REQUESTS", "BUSY"]
    assert {int(line.split()[0]) for line in table[2:4]} == pids
    assert table[-1] == "Total: 2 workers"

    stats = ctl_json(path, "show stats")
    assert (stats["pid"], stats["workers_current"], stats["workers_target"]) == (server.pid, 2, 2)
    assert (stats["workers_spawned"], stats["workers_killed"], stats["reloads"]) == (2, 0, 0)
    listeners = ctl_json(path, "show listeners")
    assert listeners["count"] == 1
    [listener] = listeners["listeners"]  # type: ignore[misc]
    assert (listener["address"], listener["type"]) == (server.urls[0], "tcp")
    config = ctl_json(path, "show config")
    assert (config["workers"], config["worker_class"], config["control_socket"]) == (
        2,
        "sync",
        path,
    )
    everything = ctl_json(path, "show all")
    assert everything["arbiter"] == {"pid": server.pid, "type": "arbiter", "role": "master"}
    assert everything["web_worker_count"] == 2
    assert ctl(path, "-c", "show dirty").stdout == "Dirty arbiter not running\n"
    helped = ctl(path, "-c", "help").stdout
    assert helped.startswith("Available commands:") and "worker kill <PID>" in helped


def test_worker_kill_retires_only_our_workers(corral_factory: Start) -> None:
    server, path = start(corral_factory)
    victim = min(server.worker_pids())
    assert ctl_json(path, f"worker kill {victim}") == {"success": True, "killed": victim}
    after = server.wait_workers(lambda pids: victim not in pids and len(pids) == 2)
    assert server.matches(
        rf"Worker \(pid:{victim}\) exited on SIGTERM|Worker exiting \(pid: {victim}\)"
    )
    done = ctl(path, "-c", f"worker kill {server.pid}")  # the master is not a worker
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"success": False, "error": f"Worker {server.pid} not found"}
    assert server.worker_pids() == after
    assert ctl_json(path, "show stats")["workers_killed"] == 1


def test_reload_and_reopen_act_as_hup_and_usr1(corral_factory: Start) -> None:
    server, path = start(corral_factory)
    old = server.worker_pids()
    assert ctl_json(path, "reload") == {"status": "reloading"}
    server.wait_for("Handling signal: hup")
    server.wait_workers(lambda pids: len(pids) == 2 and not pids & old)
    assert ctl_json(path, "show stats")["reloads"] == 1
    assert ctl_json(path, "reopen") == {"status": "reopening"}
    server.wait_for("Handling signal: usr1")


@pytest.mark.parametrize(("mode", "sig"), [("", "term"), ("graceful", "term"), ("quick", "int")])
def test_shutdown(corral_factory: Start, mode: str, sig: str) -> None:
    server, path = start(corral_factory)
    done = ctl(path, "-c", f"shutdown {mode}".strip())
    assert done.returncode == 0
    assert json.loads(done.stdout) == {"status": "shutting_down", "mode": mode or "graceful"}
    assert server.wait_exit() == 0
    assert server.matches(f"Handling signal: {sig}")
    assert not os.path.exists(path)


def test_bad_commands_are_one_line_errors(corral_factory: Start) -> None:
    _, path = start(corral_factory)
    for command, error in [
        ("bogus", "Invalid argument: Unknown command: bogus"),
        ("shutdown now", "Invalid argument: shutdown mode must be graceful or quick, not 'now'"),
    ]:
        done = ctl(path, "-c", command)
        assert (done.returncode, done.stdout, done.stderr) == (1, "", f"Error: {error}\n")


def test_every_reply_parses_as_json(corral_factory: Start) -> None:
    _, path = start(corral_factory)
    for command in ("show workers", "show stats", "show config", "show listeners", "show all"):
        assert ctl_json(path, command)
    assert set(ctl_json(path, "help")["commands"]) >= {"reload", "reopen", "dump"}  # type: ignore[arg-type]


# -- worker add / remove under load ------------------------------------------------------------


class Load:
    """Clients sending GETs back to back on kept-alive connections until stopped."""

    def __init__(self, addr: tuple[str, int], clients: int = 4) -> None:
        self.addr = addr
        self.ok = 0
        self.failures: list[str] = []
        self._stop = threading.Event()
        self._lock = threading.Lock()
        self._threads = [threading.Thread(target=self._run, daemon=True) for _ in range(clients)]
        for thread in self._threads:
            thread.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection(*self.addr, timeout=10)
        while not self._stop.is_set():
            try:
                conn.request("GET", "/")
                response = conn.getresponse()
                response.read()
                outcome = None if response.status == 200 else f"status {response.status}"
            except (OSError, http.client.HTTPException) as exc:
                outcome = repr(exc)
                conn.close()
            with self._lock:
                if outcome is None:
                    self.ok += 1
                else:
                    self.failures.append(outcome)
        conn.close()

    def stop(self) -> None:
        self._stop.set()
        for thread in self._threads:
            thread.join(timeout=15)


def test_worker_add_and_remove_under_keepalive_load_lose_no_request(
    corral_factory: Start,
) -> None:
    server, path = start(corral_factory, "-k", "threaded", workers=2)
    load = Load(server.addr)
    try:
        assert ctl_json(path, "worker add 3") == {"added": 3, "previous": 2, "total": 5}
        server.wait_workers(lambda pids: len(pids) == 5)
        wait_until(lambda: workers_of(path), lambda rows: all(r["booted"] for r in rows), 20)
        served_before = load.ok
        assert ctl_json(path, "worker remove 4") == {"removed": 4, "previous": 5, "total": 1}
        server.wait_workers(lambda pids: len(pids) == 1)
        assert ctl_json(path, "worker add") == {"added": 1, "previous": 1, "total": 2}
        server.wait_workers(lambda pids: len(pids) == 2)
        wait_until(lambda: load.ok, lambda ok: ok > served_before + 200, 20)
    finally:
        load.stop()
    assert load.failures == []
    assert load.ok > 200
    states = {row["state"] for row in workers_of(path)}
    assert states <= {"serving", "booting"}


# -- who may connect ---------------------------------------------------------------------------


@pytest.fixture
def open_dir() -> Iterator[Path]:
    """A directory anyone may enter (pytest's tmp_path is root's alone)."""
    path = Path(tempfile.mkdtemp(prefix="corral-ctl-"))
    path.chmod(0o755)
    try:
        yield path
    finally:
        shutil.rmtree(path, ignore_errors=True)


def as_nobody() -> list[str]:
    if os.geteuid() != 0:
        pytest.skip("needs root, to run the client as nobody")
    if shutil.which("setpriv") is None or not os.access(SYSTEM_PYTHON, os.X_OK):
        pytest.skip(f"needs setpriv and {SYSTEM_PYTHON} (the venv's python is root's alone)")
    return ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]


def test_another_user_is_refused_by_the_socket_mode(corral_factory: Start, open_dir: Path) -> None:
    nobody = as_nobody()
    server, path = start(corral_factory, "--control-socket", str(open_dir / "app.ctl"))
    done = ctl(path, "-c", "shutdown", prefix=nobody)
    assert done.returncode == 1
    assert done.stderr.startswith(f"Error: permission denied: {path} (run as the server's user")
    assert server.proc.poll() is None


def test_another_user_is_refused_by_its_credentials_when_the_file_mode_is_wrong(
    corral_factory: Start, open_dir: Path
) -> None:
    nobody = as_nobody()
    server, path = start(corral_factory, "--control-socket", str(open_dir / "app.ctl"))
    os.chmod(path, 0o666)  # widened by hand: the setting still says 0600
    done = ctl(path, "-c", "shutdown", prefix=nobody)
    assert (done.returncode, done.stderr) == (
        1,
        "Error: permission denied: uid 65534 may not use this control socket\n",
    )
    server.wait_for(r"control socket: refused pid \d+ \(uid 65534\)")
    assert server.proc.poll() is None and not server.matches("Handling signal: term")
    assert ctl_json(path, "show stats")["pid"] == server.pid  # root (and our uid) still served


def test_a_mode_open_to_others_lets_them_in(corral_factory: Start, open_dir: Path) -> None:
    nobody = as_nobody()
    _, path = start(
        corral_factory,
        "--control-socket",
        str(open_dir / "app.ctl"),
        "--control-socket-mode",
        "0666",
    )
    done = ctl(path, "-c", "show stats", "-j", prefix=nobody)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["workers_current"] == 2


# -- interactive mode --------------------------------------------------------------------------


def test_interactive_mode_through_a_pipe(corral_factory: Start) -> None:
    server, path = start(corral_factory)
    done = ctl(path, stdin="show stats\n\nworker add\nbogus\nquit\nshow stats\n")
    assert done.returncode == 0, done.stderr
    out = done.stdout
    assert out.startswith(f"Connected to {path}\nType 'help' for available commands")
    assert out.count("corral> ") == 5  # quit ends the session: the last line is not read
    assert f"PID:              {server.pid}" in out
    assert '"added": 1' in out
    assert "Error: Invalid argument: Unknown command: bogus" in out
    assert ctl_json(path, "show stats")["workers_target"] == 3


def test_interactive_mode_on_a_terminal_keeps_a_history(
    corral_factory: Start, tmp_path: Path
) -> None:
    import pty

    _, path = start(corral_factory)
    home = tmp_path / "home"
    home.mkdir()
    main, secondary = pty.openpty()
    proc = subprocess.Popen(
        [sys.executable, "-m", "corral", "ctl", "-s", path],
        stdin=secondary,
        stdout=secondary,
        stderr=secondary,
        env={**os.environ, "HOME": str(home), "PYTHONPATH": SRC, "TERM": "dumb"},
    )
    os.close(secondary)
    seen = b""

    def read_until(marker: bytes) -> None:
        nonlocal seen
        deadline = time.monotonic() + 20
        while marker not in seen:
            assert time.monotonic() < deadline, seen
            with contextlib.suppress(OSError):
                seen += os.read(main, 4096)

    try:
        read_until(b"corral> ")
        os.write(main, b"show workers\n")
        read_until(b"Total: 2 workers")
        os.write(main, b"quit\n")
        assert proc.wait(timeout=20) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
        os.close(main)
    assert "show workers" in (home / ".corral_ctl_history").read_text()


# -- an upgrade (USR2) -------------------------------------------------------------------------


def test_the_new_master_takes_the_socket_over_and_the_old_one_leaves_it(
    corral_factory: Start,
) -> None:
    old, path = start(corral_factory)
    old.signal(signal.SIGUSR2)
    found = old.wait_for(rf"\[(\d+)\] \[INFO\] {LISTENING_AT}", count=2)
    new_pid = int(found[1].group(1))
    try:
        assert new_pid != old.pid and found[1].group(2) == path
        assert not old.matches("was in use by pid")  # taken from its predecessor: no warning
        assert ctl_json(path, "show stats")["pid"] == new_pid
        old.signal(signal.SIGTERM)
        assert old.wait_exit() == 0
        assert os.path.exists(path)  # the old master left the new one's socket alone
        assert ctl_json(path, "show stats")["pid"] == new_pid
        assert ctl_json(path, "shutdown")["mode"] == "graceful"
        wait_until(lambda: os.path.exists(path), lambda exists: not exists, 20)
    finally:
        kill_leftovers([new_pid])


# -- gunicorn's client and server --------------------------------------------------------------


def _gunicorn() -> None:
    try:
        import gunicorn.ctl.cli  # noqa: F401
    except ImportError:
        pytest.skip("gunicorn 27 is not installed (pip install -e '.[bench]')")


def test_gunicornc_drives_corral(corral_factory: Start) -> None:
    _gunicorn()
    server, path = start(corral_factory)
    pids = server.worker_pids()
    env = {**os.environ, "PYTHONPATH": str(APPS)}

    def gunicornc(*args: str) -> str:
        done = subprocess.run(
            [sys.executable, "-m", "gunicorn.ctl.cli", "-s", path, *args],
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
            env=env,
        )
        assert done.returncode == 0, done.stderr
        return done.stdout

    table = gunicornc("-c", "show workers").splitlines()
    assert table[0].split() == ["PID", "AGE", "BOOTED", "LAST_BEAT"]
    assert {int(line.split()[0]) for line in table[2:4]} == pids
    assert json.loads(gunicornc("-c", "show stats", "-j"))["pid"] == server.pid
    assert json.loads(gunicornc("-c", "worker add 2")) == {"added": 2, "previous": 2, "total": 4}
    server.wait_workers(lambda now: len(now) == 4)
    assert "Workers target:   4" in gunicornc("-c", "show stats")
    assert gunicornc("-c", "shutdown").startswith("{")
    assert server.wait_exit() == 0


def test_corral_ctl_drives_gunicorn(tmp_path: Path) -> None:
    _gunicorn()
    path = str(tmp_path / "g.ctl")
    env = {**os.environ, "PYTHONPATH": str(APPS)}
    command = [sys.executable, "-m", "gunicorn", "-b", "127.0.0.1:0", "-w", "2"]
    proc = subprocess.Popen(
        [*command, "--control-socket", path, "simple:app"],
        cwd=tmp_path,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: os.path.exists(path), bool, 30)
        rows = wait_until(
            lambda: ctl_json(path, "show workers")["workers"],
            lambda found: len(found) == 2,  # type: ignore[arg-type]
            30,
        )
        assert {row["pid"] for row in rows} <= {int(p) for p in os.listdir("/proc") if p.isdigit()}  # type: ignore[union-attr]
        text = ctl(path, "-c", "show workers").stdout
        assert text.splitlines()[0].split() == ["PID", "AGE", "BOOTED", "LAST_BEAT"]
        assert ctl_json(path, "show stats")["pid"] == proc.pid
        assert ctl_json(path, "shutdown quick") == {"status": "shutting_down", "mode": "quick"}
        assert proc.wait(timeout=30) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()


def test_python_m_corral_still_serves_an_app_after_ctl_became_a_subcommand(
    corral_factory: Start,
) -> None:
    server = corral_factory("-b", "127.0.0.1:0", "--no-control-socket", "simple:app")
    assert server.get()[0] == 200
    assert re.search(r"corral ctl \(corral [\d.]+\)", ctl(None, "-v").stdout)
