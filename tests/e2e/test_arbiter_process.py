"""The master as a process: pidfile, binds, socket activation, titles, daemon mode, upgrades."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import stat
import subprocess
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import (
    APPS,
    CorralProcess,
    children_of,
    free_to_connect,
    http_get,
    kill_leftovers,
    proc_stat,
    wait_until,
)

Start = Callable[..., CorralProcess]


def unix_get(path: str, target: str = "/") -> bytes:
    """A raw HTTP/1.1 GET over a Unix socket; the whole response."""
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect(path)
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def cmdline(pid: int) -> str:
    with open(f"/proc/{pid}/cmdline", "rb") as f:
        return f.read().replace(b"\0", b" ").decode().strip()


def test_pidfile_created_and_removed(corral_factory: Start, tmp_path: Path) -> None:
    pidfile = tmp_path / "corral.pid"
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "--pid", str(pidfile), "simple:app")
    assert pidfile.read_text() == f"{server.pid}\n"
    assert server.stop() == 0
    assert not pidfile.exists()


def test_pidfile_of_a_live_server_refuses_a_second(corral_factory: Start, tmp_path: Path) -> None:
    pidfile = tmp_path / "corral.pid"
    first = corral_factory("-b", "127.0.0.1:0", "-w", "1", "--pid", str(pidfile), "simple:app")
    second = corral_factory(
        "-b", "127.0.0.1:0", "-w", "1", "--pid", str(pidfile), "simple:app", wait=False
    )
    assert second.wait_exit() != 0
    assert "still running" in second.log_text()
    assert second.booted_pids() == []
    assert pidfile.read_text() == f"{first.pid}\n"  # the loser did not remove the winner's file
    assert first.get()[0] == 200


HOOKS = """
def on_starting(server):
    server.log.info("hook: on_starting %s", server.pid)

def when_ready(server):
    server.log.info("hook: when_ready %s", server.pid)

def pre_fork(server, worker):
    server.log.info("hook: pre_fork age %s", worker.age)

def post_fork(server, worker):
    server.log.info("hook: post_fork %s", worker.pid)

def child_exit(server, worker):
    server.log.info("hook: child_exit %s", worker.pid)

def worker_exit(server, worker):
    server.log.info("hook: worker_exit %s master %s", worker.pid, server.pid)

def on_exit(server):
    server.log.info("hook: on_exit %s workers left %s", server.pid, len(server.WORKERS))
"""


def test_server_hooks_get_the_arbiter(corral_factory: Start, tmp_path: Path) -> None:
    conf = tmp_path / "corral.conf.py"
    conf.write_text(HOOKS)
    server = corral_factory("-c", str(conf), "-b", "127.0.0.1:0", "-w", "2", "simple:app")
    server.wait_for("Booting worker", count=2)
    workers = server.booted_pids()
    assert server.stop() == 0
    log = server.log_text()
    master = server.pid
    for line in (f"on_starting {master}", f"when_ready {master}", "pre_fork age 1"):
        assert f"hook: {line}" in log
    for pid in workers:
        assert f"hook: post_fork {pid}" in log
        assert f"hook: worker_exit {pid} master {master}" in log
        assert f"hook: child_exit {pid}" in log
    assert f"hook: on_exit {master} workers left 0" in log


def test_several_binds(corral_factory: Start, tmp_path: Path) -> None:
    sock_path = tmp_path / "app.sock"
    server = corral_factory(
        "-b", "127.0.0.1:0", "-b", "[::1]:0", "-b", f"unix:{sock_path}?mode=600",
        "-w", "1", "simple:app",
        listeners=3,
    )  # fmt: skip
    v4, v6, unix = server.urls
    assert v4.startswith("http://127.0.0.1:") and v6.startswith("http://[::1]:")
    assert unix == f"unix:{sock_path}"
    assert stat.S_IMODE(os.stat(sock_path).st_mode) == 0o600
    assert http_get(("127.0.0.1", int(v4.rsplit(":", 1)[1])))[0] == 200
    assert http_get(("::1", int(v6.rsplit(":", 1)[1])))[0] == 200
    response = unix_get(str(sock_path))
    assert response.startswith(b"HTTP/1.1 200") and b"hello from" in response
    assert server.stop() == 0
    assert not sock_path.exists()  # removed by the master on shutdown, not before


def test_unix_socket_survives_worker_exits(corral_factory: Start, tmp_path: Path) -> None:
    sock_path = tmp_path / "app.sock"
    server = corral_factory("-b", f"unix:{sock_path}", "-w", "2", "simple:app")
    before = server.wait_workers(lambda pids: len(pids) == 2)
    server.signal(signal.SIGTTOU)
    server.wait_workers(lambda pids: len(pids) == 1 and pids < before)
    assert sock_path.exists()
    assert unix_get(str(sock_path)).startswith(b"HTTP/1.1 200")


def test_systemd_socket_activation(corral_factory: Start) -> None:
    """Started the way systemd starts a socket-activated service: fd 3 and LISTEN_PID=$$."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    fd = sock.fileno()
    # Like systemd: put the socket on fd 3, name our own pid, then exec (which keeps the pid).
    launcher = (
        "import os, sys\n"
        f"os.dup2({fd}, 3)\n"
        "os.environ.update(LISTEN_FDS='1', LISTEN_PID=str(os.getpid()))\n"
        "os.execv(sys.executable, [sys.executable, '-m', 'corral', *sys.argv[1:]])\n"
    )
    env = dict(os.environ, PYTHONPATH=str(APPS), PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", launcher, "-b", "127.0.0.1:1", "-w", "1", "simple:app"],
        pass_fds=[fd],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    sock.close()
    try:
        assert http_get(("127.0.0.1", port))[0] == 200
        proc.send_signal(signal.SIGTERM)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
    text = out.decode()
    assert f"Listening at: http://127.0.0.1:{port} ({proc.pid})" in text
    assert "127.0.0.1:1 " not in text  # the configured bind is not used
    assert proc.returncode == 0


def test_sd_notify_ready_reloading_stopping(corral_factory: Start, tmp_path: Path) -> None:
    """A Type=notify unit hears READY=1 once workers can be forked, then RELOADING/STOPPING."""
    path = tmp_path / "notify.sock"
    with socket.socket(socket.AF_UNIX, socket.SOCK_DGRAM) as listener:
        listener.bind(str(path))
        listener.settimeout(20)
        server = corral_factory(
            "-b", "127.0.0.1:0", "-w", "1", "simple:app", env={"NOTIFY_SOCKET": str(path)}
        )
        ready = listener.recv(4096).decode()
        assert ready.splitlines()[:2] == ["READY=1", f"MAINPID={server.pid}"]
        server.signal(signal.SIGHUP)
        assert listener.recv(4096) == b"RELOADING=1"
        assert listener.recv(4096) == b"READY=1"
        server.signal(signal.SIGTERM)
        assert listener.recv(4096) == b"STOPPING=1"
        assert server.wait_exit() == 0


def test_process_titles(corral_factory: Start) -> None:
    pytest.importorskip("setproctitle")
    server = corral_factory("-b", "127.0.0.1:0", "-w", "1", "-n", "shop", "simple:app")
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    assert cmdline(server.pid).startswith("corral: master [shop]")
    wait_until(lambda: cmdline(worker), lambda t: t.startswith("corral: worker [shop]"), 10)


def ids_of(pid: int) -> tuple[int, int, list[int]]:
    """(effective uid, effective gid, supplementary groups) of a process."""
    fields = {}
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            key, _, value = line.partition(":")
            fields[key] = value.split()
    return int(fields["Uid"][1]), int(fields["Gid"][1]), [int(g) for g in fields["Groups"]]


@pytest.mark.skipif(os.geteuid() != 0, reason="switching users needs root")
def test_workers_drop_privileges(corral_factory: Start, tmp_path: Path) -> None:
    tmp_path.chmod(0o755)  # the workers, as nobody, serve from here
    sock_path = tmp_path / "app.sock"
    server = corral_factory(
        "-b", "127.0.0.1:0", "-b", f"unix:{sock_path}",
        "-u", "nobody", "-g", "nogroup", "-w", "1", "--timeout", "2", "simple:app",
        listeners=2,
    )  # fmt: skip
    (worker,) = server.wait_workers(lambda pids: len(pids) == 1)
    assert ids_of(server.pid)[0] == 0  # the master keeps root, to bind and signal
    wait_until(lambda: ids_of(worker), lambda ids: ids == (65534, 65534, [65534]), 10)
    st = os.stat(sock_path)
    assert (st.st_uid, st.st_gid) == (65534, 65534)
    # Serving as nobody, and heartbeating through a file it could only touch because it owns it.
    status, body = server.get()
    assert status == 200 and body == f"hello from {worker}"
    server.wait_for(rf"\[{worker}\] \[INFO\] Booting worker")
    assert "WORKER TIMEOUT" not in server.log_text()
    assert server.stop() == 0


@pytest.fixture
def daemon_pids() -> Iterator[list[int]]:
    pids: list[int] = []
    yield pids
    kill_leftovers(pids)


@pytest.mark.parametrize("keep_stdio", [False, True], ids=["devnull", "inherit-stdio"])
def test_daemon_mode(tmp_path: Path, daemon_pids: list[int], keep_stdio: bool) -> None:
    pidfile, errors, stdio = tmp_path / "corral.pid", tmp_path / "error.log", tmp_path / "stdio"
    env = dict(os.environ, PYTHONPATH=str(APPS))
    args = ["-D", "-b", "127.0.0.1:0", "-w", "1", "--pid", str(pidfile)]
    args += ["-R"] if keep_stdio else ["--log-file", str(errors)]
    with open(stdio, "wb") as out:
        launcher = subprocess.run(
            [sys.executable, "-m", "corral", *args, "simple:app"],
            cwd=tmp_path,
            env=env,
            stdout=out,
            stderr=out,
            timeout=30,
        )
    assert launcher.returncode == 0  # the foreground process returns at once
    log = stdio if keep_stdio else errors
    text = wait_until(lambda: log.read_text() if log.exists() else "", lambda t: "Booting" in t, 20)
    if not keep_stdio:
        assert stdio.read_text() == ""  # stdio went to /dev/null
    master = int(pidfile.read_text())
    daemon_pids.append(master)
    assert f"({master})" in text
    port = int(text.split("Listening at: http://127.0.0.1:")[1].split(" ")[0])
    assert http_get(("127.0.0.1", port))[0] == 200
    st = proc_stat(master)
    assert st is not None and st[1] != os.getpid()  # detached: not our child
    with open(f"/proc/{master}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    assert int(fields[3]) != os.getsid(0)  # a session of its own (setsid)
    os.kill(master, signal.SIGTERM)
    wait_until(lambda: proc_stat(master), lambda s: s is None or s[0] == "Z", 20)
    wait_until(lambda: pidfile.exists(), lambda exists: not exists, 10)
    assert free_to_connect(("127.0.0.1", port))


def test_usr2_upgrade(corral_factory: Start, tmp_path: Path) -> None:
    pidfile = tmp_path / "corral.pid"
    old = corral_factory("-b", "127.0.0.1:0", "-w", "2", "--pid", str(pidfile), "simple:app")
    old_workers = old.wait_workers(lambda pids: len(pids) == 2)
    old.signal(signal.SIGUSR2)
    url = old.urls[0]
    found = old.wait_for(rf"Listening at: {url} \((\d+)\)", count=2)
    new_pid = int(found[1].group(1))
    new_master: list[int] = [new_pid]
    try:
        assert new_pid != old.pid
        wait_until(lambda: pidfile.read_text() if pidfile.exists() else "", bool, 10)
        assert pidfile.read_text() == f"{new_pid}\n"
        assert Path(f"{pidfile}.oldbin").read_text() == f"{old.pid}\n"
        new_workers = wait_until(lambda: children_pids(new_pid), lambda p: len(p) == 2, 20)
        # WINCH: the old master stops its workers; the new ones serve alone.
        old.signal(signal.SIGWINCH)
        left = old.wait_workers(lambda pids: not pids & old_workers)
        assert left == {new_pid}  # the new master is the old one's only child now
        assert old_workers.isdisjoint(new_workers)
        for _ in range(4):
            status, body = old.get()
            assert status == 200 and int(body.rsplit(" ", 1)[1]) in new_workers
        old.signal(signal.SIGTERM)
        assert old.wait_exit() == 0
        assert not Path(f"{pidfile}.oldbin").exists()
        old.wait_for(rf"\[{new_pid}\] \[INFO\] Master promoted")  # it noticed being orphaned
        status, _ = http_get(old.addr)  # same socket, served by the new master
        assert status == 200
        os.kill(new_pid, signal.SIGTERM)
        wait_until(lambda: proc_stat(new_pid), lambda s: s is None or s[0] == "Z", 20)
        assert not pidfile.exists()
    finally:
        kill_leftovers(new_master + sorted(children_pids(new_pid)))


def children_pids(ppid: int) -> set[int]:
    with contextlib.suppress(FileNotFoundError):
        return children_of(ppid)
    return set()
